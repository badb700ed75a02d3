"""GitHub App credentials against a local GitHub API that checks GitHub's documented shape
(tests/github_app_api.py) and a real ``git http-backend`` that requires the minted token.

The app's JWT is checked there for its RS256 signature against the test's public key and
for its iss/iat/exp claims; a 401 and a 403 answer are one line each; a token close to
its expiry is minted again; commit statuses carry the same token.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from github_app_api import FakeGitHubApp
from gitserver import HttpGitServer, RepoBuilder
from structlog.testing import capture_logs

from skillsyncd.cli import main
from skillsyncd.config import Config, load_config, secret_env_names
from skillsyncd.errors import ConfigError, SourceError
from skillsyncd.notify import commit_status
from skillsyncd.notify.commit_status import Status
from skillsyncd.source.github_app import (
    REFRESH_MARGIN,
    GitHubAppError,
    InstallationTokens,
    app_jwt,
    http_credentials,
)
from skillsyncd.sync.assembly import build_syncer

APP_ID = "424242"
INSTALLATION = "987654"
SHA = "d" * 40


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def pem(key: rsa.RSAPrivateKey, tmp_path: Path) -> Path:
    path = tmp_path / "app.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    return path


@pytest.fixture
def api(key: rsa.RSAPrivateKey) -> Iterator[FakeGitHubApp]:
    server = FakeGitHubApp(APP_ID, INSTALLATION, key.public_key())
    yield server
    server.close()


def _env(api: FakeGitHubApp, pem: Path) -> dict[str, str]:
    return {"SKILLSYNC_GITHUB_APP_ID": APP_ID, "SKILLSYNC_GITHUB_APP_INSTALLATION_ID": INSTALLATION,
            "SKILLSYNC_GITHUB_APP_PRIVATE_KEY_FILE": str(pem), "SKILLSYNC_GITHUB_API_URL": api.url}


def _cfg(api: FakeGitHubApp, pem: Path, tmp_path: Path, **flags: Any) -> Config:
    return load_config(flags={"state_dir": str(tmp_path / "state"), **flags}, env=_env(api, pem))


def test_the_jwt_is_shaped_as_github_documents(key: rsa.RSAPrivateKey, pem: Path) -> None:
    now = 1_800_000_000.0
    token = app_jwt(APP_ID, pem.read_text(), now)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, key.public_key(), algorithms=["RS256"], issuer=APP_ID,
                        options={"verify_exp": False, "verify_iat": False})
    assert claims == {"iss": APP_ID, "iat": int(now) - 60, "exp": int(now) + 540}
    assert claims["exp"] - claims["iat"] <= 600
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(jwt.exceptions.InvalidSignatureError):
        jwt.decode(token, other.public_key(), algorithms=["RS256"],
                   options={"verify_exp": False, "verify_iat": False})


def test_half_an_app_and_a_bad_key_are_config_errors(api: FakeGitHubApp, pem: Path,
                                                     tmp_path: Path) -> None:
    cfg = dataclasses.replace(_cfg(api, pem, tmp_path), github_app_installation_id=None)
    with pytest.raises(ConfigError, match="needs all of"):
        http_credentials(cfg)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match="not a usable RSA private key"):
        InstallationTokens(_cfg(api, bad, tmp_path)).get()
    assert api.minted == []


def test_fetches_over_https_with_the_installation_token(
        api: FakeGitHubApp, pem: Path, tmp_path: Path, repo: RepoBuilder,
        http_git_server: HttpGitServer, capsys: Any) -> None:
    repo.add_skill("alpha", description="Behind an app.")
    head = repo.commit("c1")
    expected = "ghs_InstallationToken0001abcdef0123456789"  # the first token the API mints
    http_git_server.require_auth("x-access-token", expected)
    cfg = _cfg(api, pem, tmp_path, repo=http_git_server.url_for(repo))
    syncer = build_syncer(cfg)
    with capture_logs() as logs:
        first = syncer.sync()
        repo.add_skill("alpha", description="Behind an app, v2.")
        second = repo.commit("c2")
        again = syncer.sync()
    assert first.status == "deployed" and first.commit == head
    assert again.status == "deployed" and again.commit == second
    assert api.minted == [expected]  # cached: two syncs (probe + fetch each), one token
    assert api.problems == []
    assert [c["iss"] for c in api.claims] == [APP_ID]
    text = repr(logs) + capsys.readouterr().err + cfg.journal_file.read_text()
    assert expected not in text and "PRIVATE KEY" not in text
    assert any(e["event"] == "github_app_token_minted" for e in logs)


@pytest.mark.parametrize(("code", "says"), [
    (401, "GitHub refused the app's JWT (401): check SKILLSYNC_GITHUB_APP_ID"),
    (403, f"GitHub refused a token for installation {INSTALLATION} (403)"),
])
def test_a_refused_app_is_one_line(code: int, says: str, api: FakeGitHubApp, pem: Path,
                                   tmp_path: Path, repo: RepoBuilder,
                                   http_git_server: HttpGitServer, capsys: Any,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    repo.add_skill("alpha")
    repo.commit("c1")
    http_git_server.require_auth("x-access-token", "never-minted")
    api.answers = [code]
    for name, value in _env(api, pem).items():
        monkeypatch.setenv(name, value)
    rc = main(["--once", "--repo", http_git_server.url_for(repo),
               "--state-dir", str(tmp_path / "state")])
    assert rc == 1
    lines = [ln for ln in capsys.readouterr().err.splitlines() if says in ln]
    assert len(lines) == 1, lines
    assert api.minted == [] and api.problems == []
    assert http_git_server.requests == [] or all(r.status == 401 for r in http_git_server.requests)


def test_a_token_near_its_expiry_is_minted_again(api: FakeGitHubApp, pem: Path,
                                                  tmp_path: Path) -> None:
    tokens = InstallationTokens(_cfg(api, pem, tmp_path))
    api.expires_in = REFRESH_MARGIN - 60  # GitHub says it expires within the margin
    first = tokens.get()
    second = tokens.get()
    assert first != second and api.minted == [first, second]
    api.expires_in = 3600
    third = tokens.get()
    assert tokens.get() == third and api.minted == [first, second, third]


def test_the_cached_token_is_minted_again_once_the_clock_nears_its_expiry(
        key: rsa.RSAPrivateKey, pem: Path, tmp_path: Path) -> None:
    now = [time.time()]
    api = FakeGitHubApp(APP_ID, INSTALLATION, key.public_key(), clock=lambda: now[0])
    try:
        tokens = InstallationTokens(_cfg(api, pem, tmp_path), clock=lambda: now[0])
        first = tokens.get()  # valid for an hour
        now[0] += 3600 - REFRESH_MARGIN - 30  # more than the margin still left
        assert tokens.get() == first and api.minted == [first]
        now[0] += 60  # less than the margin left
        second = tokens.get()
        assert second != first and api.minted == [first, second] and api.problems == []
        assert api.claims[1]["iat"] == int(now[0]) - 60  # minted with a fresh JWT
    finally:
        api.close()


def test_commit_statuses_carry_the_installation_token(api: FakeGitHubApp, pem: Path,
                                                      tmp_path: Path) -> None:
    cfg = dataclasses.replace(_cfg(api, pem, tmp_path, repo="https://github.com/acme/skills.git"),
                              commit_status=True, replica_id="r1")
    poster = commit_status.build(cfg)
    assert poster is not None
    poster.outbox.put(Status(SHA, "success", "deployed 1 skill", "skillsyncd/r1"))
    assert poster.outbox.flush(10)
    assert api.problems == [] and len(api.minted) == 1
    assert api.statuses == [{"state": "success", "description": "deployed 1 skill",
                             "context": "skillsyncd/r1", "owner": "acme", "repo": "skills",
                             "sha": SHA}]


def test_a_refused_app_switches_nothing_off_but_warns(api: FakeGitHubApp, pem: Path,
                                                      tmp_path: Path) -> None:
    cfg = dataclasses.replace(_cfg(api, pem, tmp_path, repo="https://github.com/acme/skills.git"),
                              commit_status=True, replica_id="r1")
    poster = commit_status.build(cfg)
    assert poster is not None
    api.answers = [403]
    with capture_logs() as logs:
        poster.outbox.put(Status(SHA, "success", "deployed 1 skill", "skillsyncd/r1"))
        assert poster.outbox.flush(10)
    warned = [e for e in logs if e["event"] == "commit_status_failed"]
    assert len(warned) == 1 and "(403)" in warned[0]["error"]
    assert poster.outbox.counts["failed"] == 1 and api.statuses == []
    with pytest.raises(GitHubAppError):  # the same refusal reaches a fetch as a SourceError
        api.answers = [403]
        InstallationTokens(cfg).get()


def test_a_token_the_git_server_refuses_names_the_app(api: FakeGitHubApp, pem: Path,
                                                      tmp_path: Path, repo: RepoBuilder,
                                                      http_git_server: HttpGitServer) -> None:
    repo.add_skill("alpha")
    repo.commit("c1")
    http_git_server.require_auth("x-access-token", "a-token-of-another-installation")
    cfg = _cfg(api, pem, tmp_path, repo=http_git_server.url_for(repo))
    with pytest.raises(SourceError) as err:
        build_syncer(cfg).sync()
    assert "authentication refused (401)" in str(err.value)
    assert "GitHub App is installed on the repository" in str(err.value)
    assert len(api.minted) == 1 and api.minted[0] not in str(err.value)


def test_a_key_pasted_into_one_line_and_kept_from_child_commands(
        api: FakeGitHubApp, pem: Path, tmp_path: Path) -> None:
    one_line = pem.read_text().strip().replace("\n", "\\n")
    cfg = load_config(flags={"state_dir": str(tmp_path / "s")}, env={
        **{k: v for k, v in _env(api, pem).items() if not k.endswith("_FILE")},
        "SKILLSYNC_GITHUB_APP_PRIVATE_KEY": one_line})
    assert InstallationTokens(cfg).get() == api.minted[0] and api.problems == []
    assert one_line not in repr(cfg)
    assert {"SKILLSYNC_GITHUB_APP_PRIVATE_KEY",
            "SKILLSYNC_GITHUB_APP_PRIVATE_KEY_FILE"} <= secret_env_names()


def test_the_toml_file_names_an_app(api: FakeGitHubApp, pem: Path, tmp_path: Path) -> None:
    toml = tmp_path / "skillsyncd.toml"
    toml.write_text(f'github_app_id = {APP_ID}\ngithub_app_installation_id = {INSTALLATION}\n'
                    f'github_app_private_key_file = "{pem}"\ngithub_api_url = "{api.url}"\n'
                    f'ref = "semver:>=1.2.0,<2"\n')
    cfg = load_config(flags={"state_dir": str(tmp_path / "s")}, env={}, config_file=toml)
    assert cfg.github_app_id == APP_ID and cfg.github_app_private_key.file == pem
    assert http_credentials(cfg) == ("x-access-token", api.minted[0])
    assert api.problems == [] and [c["iss"] for c in api.claims] == [APP_ID]
