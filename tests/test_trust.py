"""Signed commits only: real commits signed by git with ssh-keygen (gpg.format=ssh) and with
GnuPG in a throwaway home, judged by a real sync. A refused commit keeps the live release
serving and is journalled with its rule."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from dulwich.objects import Commit
from dulwich.repo import Repo

from skillsyncd.audit.commands import open_journal
from skillsyncd.config import Config, load_config
from skillsyncd.errors import ConfigError, ValidationRejected
from skillsyncd.release.releases import Releases
from skillsyncd.source.signatures import allowed_keys, split_commit, verify_commit
from skillsyncd.sync.assembly import build_syncer

PAST = "20200101T000000"


def run(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(argv, env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("keys")
    for name in ("trusted", "stranger"):
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@example.invalid",
            "-f", str(d / name))
    home = d / "gnupg"
    home.mkdir(mode=0o700)
    env = {"GNUPGHOME": str(home)}

    def gen(uid: str, expire: str, *extra: str) -> str:
        run("gpg", "--batch", "--passphrase", "", *extra, "--quick-gen-key", uid, "ed25519", "sign", expire,
            env=env)
        out = run("gpg", "--with-colons", "--list-keys", uid, env=env)
        return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr"))

    good = gen("Good <good@example.invalid>", "1y")
    expired = gen("Expired <old@example.invalid>", "1d", "--faked-system-time", PAST)
    revoked = gen("Revoked <rev@example.invalid>", "1y")
    unknown = gen("Unknown <who@example.invalid>", "1y")
    # Export the public keys the operator trusts (the unknown one stays out), then revoke one.
    trusted_keys = run("gpg", "--armor", "--export", good, expired, revoked, env=env)
    past = d / "gpg-past"
    past.write_text(f"#!/bin/sh\nexec gpg --faked-system-time {PAST} \"$@\"\n")
    past.chmod(0o755)
    return {"dir": d, "env": env, "good": good, "expired": expired, "revoked": revoked, "unknown": unknown,
            "gpg_keys": trusted_keys, "past": str(past), "home": home,
            "allowed": f"trusted@example.invalid {(d / 'trusted.pub').read_text().strip()}\n"}


def revoke(keys: dict[str, Any]) -> str:
    """The trusted keys again, with the 'revoked' key's revocation applied."""
    cert = (keys["home"] / "openpgp-revocs.d" / f"{keys['revoked']}.rev").read_text()
    cert = cert.replace(":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----")
    subprocess.run(["gpg", "--batch", "--import"], input=cert, text=True, capture_output=True,
                   env={**os.environ, **keys["env"]}, check=True)
    return run("gpg", "--armor", "--export", keys["good"], keys["expired"], keys["revoked"], env=keys["env"])


def commit(repo: Any, keys: dict[str, Any], msg: str, how: str) -> str:
    """A commit of a new skill version, signed as ``how`` says."""
    repo.add_skill("pdf", description=f"PDF, {msg}.")
    env = {**keys["env"]}
    sign: tuple[str, ...] = ()
    if how.startswith("ssh:"):
        sign = ("-c", "gpg.format=ssh", "-c", f"user.signingkey={keys['dir'] / how[4:]}.pub", "commit", "-S")
    elif how.startswith("gpg:"):
        program = keys["past"] if how == "gpg:expired" else "gpg"
        sign = ("-c", f"gpg.program={program}", "commit", f"-S{keys[how[4:]]}")
    else:
        sign = ("commit",)
    repo._git(*sign, "-q", "--allow-empty", "-m", msg, env={**repo._env, **env})
    return str(repo.head())


def cfg_for(repo: Any, tmp_path: Path, keys: dict[str, Any], mode: str,
            gpg_keys: str | None = None) -> Config:
    env = {"SKILLSYNC_VERIFY": mode, "SKILLSYNC_ALLOWED_SIGNERS": keys["allowed"],
           "SKILLSYNC_GPG_KEYS": gpg_keys if gpg_keys is not None else keys["gpg_keys"]}
    return load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "state")}, env=env)


def live_commit(cfg: Config) -> str | None:
    releases = Releases(cfg.state_dir)
    current = releases.current()
    return releases.manifest(current).commit if current else None


def test_ssh_signed_by_a_trusted_key_deploys_and_others_are_refused(
    repo: Any, tmp_path: Path, keys: dict[str, Any]
) -> None:
    good = commit(repo, keys, "good", "ssh:trusted")
    cfg = cfg_for(repo, tmp_path, keys, "ssh")
    assert build_syncer(cfg).sync().status == "deployed" and live_commit(cfg) == good
    for how, rule in (("ssh:stranger", "commit.unknown-signer"), ("none", "commit.unsigned"),
                      ("gpg:good", "commit.bad-signature")):  # a GPG signature when ssh is asked
        bad = commit(repo, keys, how, how)
        with pytest.raises(ValidationRejected, match=rule):
            build_syncer(cfg).sync()
        assert live_commit(cfg) == good  # the live release keeps serving
        events = [e for e in open_journal(cfg).read() if e.kind == "rejected"]
        assert events[-1].commit == bad and events[-1].findings[0]["rule"] == rule


@pytest.mark.parametrize(("how", "rule"), [
    ("gpg:good", None), ("gpg:unknown", "commit.unknown-signer"), ("gpg:expired", "commit.bad-signature"),
])
def test_gpg(repo: Any, tmp_path: Path, keys: dict[str, Any], how: str, rule: str | None) -> None:
    sha = commit(repo, keys, how, how)
    cfg = cfg_for(repo, tmp_path, keys, "gpg")
    if rule is None:
        assert build_syncer(cfg).sync().status == "deployed" and live_commit(cfg) == sha
    else:
        with pytest.raises(ValidationRejected, match=rule):
            build_syncer(cfg).sync()
        assert live_commit(cfg) is None


def test_revoked_gpg_key_is_refused(repo: Any, tmp_path: Path, keys: dict[str, Any]) -> None:
    commit(repo, keys, "revoked", "gpg:revoked")
    cfg = cfg_for(repo, tmp_path, keys, "gpg", gpg_keys=revoke(keys))
    with pytest.raises(ValidationRejected, match=r"commit.bad-signature.*revoked"):
        build_syncer(cfg).sync()


def test_tampered_commit_object_is_refused(repo: Any, tmp_path: Path, keys: dict[str, Any]) -> None:
    signed = commit(repo, keys, "signed", "ssh:trusted")
    r = Repo(str(repo.path))
    try:
        original = r[signed.encode()]
        assert isinstance(original, Commit)
        forged = Commit.from_string(original.as_raw_string().replace(b"Skill Author", b"Mallory Evil"))
        r.object_store.add_object(forged)
        r.refs[b"refs/heads/main"] = forged.id
    finally:
        r.close()
    cfg = cfg_for(repo, tmp_path, keys, "any")
    with pytest.raises(ValidationRejected, match=r"commit\.bad-signature"):
        build_syncer(cfg).sync()


def test_force_push_to_an_unsigned_commit_is_refused(repo: Any, tmp_path: Path, keys: dict[str, Any]) -> None:
    good = commit(repo, keys, "good", "ssh:trusted")
    cfg = cfg_for(repo, tmp_path, keys, "any")
    assert build_syncer(cfg).sync().status == "deployed"
    repo._git("checkout", "-q", "--orphan", "rewritten")  # history replaced, as by a force-push
    commit(repo, keys, "rewritten", "none")
    repo._git("branch", "-q", "-M", "main")
    with pytest.raises(ValidationRejected, match=r"commit\.unsigned"):
        build_syncer(cfg).sync()
    assert live_commit(cfg) == good
    assert build_syncer(cfg).sync().status == "rejected"  # remembered until the head moves


def test_pure_parts() -> None:
    raw = (b"tree 1\nauthor A <a> 1 +0000\ncommitter A <a> 1 +0000\ngpgsig -----BEGIN SSH SIGNATURE-----\n"
           b" AAAA\n -----END SSH SIGNATURE-----\n\nmessage\n")
    payload, sig = split_commit(raw)
    assert payload == b"tree 1\nauthor A <a> 1 +0000\ncommitter A <a> 1 +0000\n\nmessage\n"
    assert sig == b"-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"
    assert verify_commit(payload, "any").rule == "commit.unsigned"
    assert verify_commit(raw, "none").ok
    assert allowed_keys('a@x,b@x namespaces="git" ssh-ed25519 AAAAC3 c\n# x\n\n* ecdsa-sha2-nistp256 QQ') == (
        "ssh-ed25519 AAAAC3", "ecdsa-sha2-nistp256 QQ")


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="ALLOWED_SIGNERS"):
        load_config(flags={"repo": "x"}, env={"SKILLSYNC_VERIFY": "ssh"})
    with pytest.raises(ConfigError, match="verify must be"):
        load_config(flags={"repo": "x"}, env={"SKILLSYNC_VERIFY": "yes"})
