"""Commit signature verification: deploy a commit only when a trusted key signed it.

``SKILLSYNC_VERIFY`` chooses what counts: ``ssh`` (git's ``gpg.format=ssh``
signatures, checked against keys in git's ``allowed_signers`` format),
``gpg`` (OpenPGP signatures, checked against the armored public keys in
``SKILLSYNC_GPG_KEYS``), ``any`` (either) or ``none``. The cryptography is not
ours: ``sshsig`` checks SSH signatures, GnuPG (through ``python-gnupg``, in a
throwaway home holding only the trusted keys) checks OpenPGP ones.

A commit is refused by one of three rules: ``commit.unsigned``,
``commit.bad-signature`` (it does not verify over the commit, or the key has
expired or been revoked) and ``commit.unknown-signer`` (it verifies, but with a
key nobody trusted). :func:`split_commit` is pure; :func:`verify_commit` only
runs the verifiers.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

MODES = ("none", "ssh", "gpg", "any")
_SIG_HEADERS = (b"gpgsig", b"gpgsig-sha256")


@dataclass(frozen=True)
class Verdict:
    """Whether a commit may deploy; the rule and a message when it may not."""

    ok: bool
    rule: str | None = None
    message: str = ""
    signer: str | None = None


def split_commit(raw: bytes) -> tuple[bytes, bytes | None]:
    """The signed payload (the commit without its signature header) and the signature, if any.

    Git signs the commit object as written without the ``gpgsig`` header; the
    header's value continues on lines that start with a space.
    """
    head, sep, message = raw.partition(b"\n\n")
    kept: list[bytes] = []
    signature: list[bytes] | None = None
    in_sig = False
    for line in head.split(b"\n"):
        if in_sig and line.startswith(b" "):
            assert signature is not None
            signature.append(line[1:])
            continue
        in_sig = False
        name = line.split(b" ", 1)[0]
        if name in _SIG_HEADERS and signature is None:
            signature = [line[len(name) + 1:]]
            in_sig = True
            continue
        kept.append(line)
    payload = b"\n".join(kept) + sep + message
    return payload, (b"\n".join(signature) + b"\n") if signature is not None else None


def kind_of(signature: bytes) -> str:
    if b"-----BEGIN SSH SIGNATURE-----" in signature:
        return "ssh"
    if b"-----BEGIN PGP SIGNATURE-----" in signature:
        return "gpg"
    return "unknown"


def verify_commit(raw: bytes, mode: str, allowed_signers: str = "", gpg_keys: str = "",
                  commit: str = "") -> Verdict:
    """Judge one commit object's signature under ``mode`` (see the module docstring)."""
    if mode == "none":
        return Verdict(True)
    short = commit[:12] or "the commit"
    payload, signature = split_commit(raw)
    if signature is None:
        return Verdict(False, "commit.unsigned",
                       f"{short} is not signed; SKILLSYNC_VERIFY={mode} deploys signed commits only")
    kind = kind_of(signature)
    if kind == "unknown" or (mode != "any" and kind != mode):
        return Verdict(False, "commit.bad-signature",
                       f"{short} carries a {kind} signature, but SKILLSYNC_VERIFY={mode}")
    if kind == "ssh":
        return _verify_ssh(payload, signature, allowed_signers, short)
    return _verify_gpg(payload, signature, gpg_keys, short)


_KEY_TYPE = re.compile(r"^(?:ssh-|ecdsa-|sk-)")


def allowed_keys(allowed_signers: str) -> tuple[str, ...]:
    """The public keys (``type base64``) listed in git's allowed_signers format.

    Each line is ``principals [options] keytype base64 [comment]``; principals and
    options are not checked (git does not tie a signature to the committer either):
    every listed key is trusted.
    """
    keys = []
    for line in allowed_signers.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        for i, word in enumerate(words[:-1]):
            if _KEY_TYPE.match(word):
                keys.append(f"{word} {words[i + 1]}")
                break
    return tuple(keys)


def _verify_ssh(payload: bytes, signature: bytes, allowed_signers: str, short: str) -> Verdict:
    import sshsig

    try:
        key = sshsig.check_signature(payload, signature, namespace="git")
    except (sshsig.InvalidSignature, ValueError, NotImplementedError) as exc:
        return Verdict(False, "commit.bad-signature",
                       f"{short}: the SSH signature does not verify over the commit ({exc or 'mismatch'})")
    trusted = []
    for text in allowed_keys(allowed_signers):
        try:
            trusted.append(sshsig.PublicKey.from_openssh_str(text))
        except Exception:  # an unreadable line trusts nobody; the others still count
            continue
    if all(key != k for k in trusted):
        return Verdict(False, "commit.unknown-signer",
                       f"{short} is signed by SSH key {key.openssh_str()[:60]}..., which is not in "
                       "SKILLSYNC_ALLOWED_SIGNERS")
    return Verdict(True, signer=key.openssh_str())


_GPG_BAD = re.compile(r"expired|revoked|bad", re.IGNORECASE)


def _verify_gpg(payload: bytes, signature: bytes, gpg_keys: str, short: str) -> Verdict:
    import gnupg

    with tempfile.TemporaryDirectory(prefix="skillsyncd-gnupg-") as home:
        gpg = gnupg.GPG(gnupghome=home)
        if gpg_keys.strip():
            gpg.import_keys(gpg_keys)
        sig = Path(home) / "commit.sig"
        sig.write_bytes(signature)
        result = gpg.verify_data(str(sig), payload)
    status = str(result.status or "")
    if result.valid and not _GPG_BAD.search(status) and not getattr(result, "key_status", None):
        return Verdict(True, signer=str(result.fingerprint))
    if status == "no public key" or (not result.fingerprint and not status):
        return Verdict(False, "commit.unknown-signer",
                       f"{short} is signed by OpenPGP key {result.key_id or '?'}, which is not in "
                       "SKILLSYNC_GPG_KEYS")
    detail = status or "the signature does not verify"
    key_status = getattr(result, "key_status", None)
    if key_status:
        detail += f", {key_status}"
    return Verdict(False, "commit.bad-signature", f"{short}: OpenPGP {detail}")


__all__ = ["MODES", "Verdict", "kind_of", "split_commit", "verify_commit"]
