"""A remote that cannot be used fails in one line: the remote (redacted), what failed, what to do.

Every case meets a real peer on 127.0.0.1 (tests/gitserver.py): a closed port, a
server that never answers, smart HTTP forced to 401/403/404/500, git daemon
without the repository, a TLS server with a self-signed certificate, a server
that resets the connection. Name resolution is tried for a ``.invalid`` host
(RFC 2606: it never resolves) inside a network namespace of its own (``unshare
-rn``: loopback only), so the query cannot leave this machine.
"""

from __future__ import annotations

import contextlib
import errno
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from gitserver import GitDaemonServer, HttpGitServer, RepoBuilder, run_git
from test_daemon import _clean_env

from skillsyncd.config import load_config
from skillsyncd.source.failures import Failure, Remote, RemoteFailed, classify
from skillsyncd.source.remote import Source

HOST = "127.0.0.1"
TOKEN = "ghp_s3cretTokenValue0123456789abcdefABCD"
LIBRARY_TEXT = ("Max retries", "HTTPConnectionPool", "NewConnectionError", "Errno", "Traceback",
                "GitProtocolError", "urllib3")


def _fail(url: str, tmp_path: Path, **env: str) -> RemoteFailed:
    cfg = load_config(flags={"repo": url, "state_dir": str(tmp_path / "s")},
                      env={"SKILLSYNC_NETWORK_TIMEOUT": "1", **env})
    with pytest.raises(RemoteFailed) as err:
        Source(cfg).probe()
    message = str(err.value)
    assert "\n" not in message, message
    for text in LIBRARY_TEXT:
        assert text not in message, message
    return err.value


# --- each cause, told apart ---------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https", "git"])
def test_a_closed_port_is_connection_refused(scheme: str, closed_port: int, tmp_path: Path) -> None:
    url = f"{scheme}://{HOST}:{closed_port}/skills.git"
    err = _fail(url, tmp_path)
    assert err.failure is Failure.REFUSED
    assert str(err).startswith(f"ls-remote {url}: connection refused by {HOST}:{closed_port}; ")
    assert "check the host and port in SKILLSYNC_REPO" in str(err)


@pytest.mark.parametrize("scheme", ["http", "git"])
def test_a_server_that_never_answers_times_out(scheme: str, black_hole: int, tmp_path: Path) -> None:
    url = f"{scheme}://{HOST}:{black_hole}/skills.git"
    err = _fail(url, tmp_path)
    assert err.failure is Failure.TIMEOUT
    assert str(err).startswith(f"ls-remote {url}: timed out (")
    assert "SKILLSYNC_NETWORK_TIMEOUT" in str(err)


@pytest.mark.parametrize(("status", "failure", "what", "todo"), [
    (403, Failure.FORBIDDEN, "access denied (403)", "may read the repository"),
    (404, Failure.NOT_FOUND, "no repository there (404)", "check SKILLSYNC_REPO"),
    (500, Failure.HTTP_STATUS, "the server answered HTTP 500", "a later sync tries again"),
])
def test_http_statuses_are_named(status: int, failure: Failure, what: str, todo: str,
                                 http_git_server: HttpGitServer, repo: RepoBuilder,
                                 tmp_path: Path) -> None:
    repo.add_skill("a")
    repo.commit("c")
    http_git_server.force_status(status)
    err = _fail(http_git_server.url_for(repo), tmp_path)
    assert err.failure is failure
    assert f": {what}; " in str(err) and todo in str(err), err


def test_401_says_whether_a_token_was_sent_and_never_shows_it(
    http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path
) -> None:
    repo.add_skill("a")
    repo.commit("c")
    http_git_server.require_auth("x-access-token", "the-right-one")
    url = http_git_server.url_for(repo)
    without = _fail(url, tmp_path)
    assert without.failure is Failure.UNAUTHORIZED
    assert "authentication refused (401); no token is set: set SKILLSYNC_TOKEN" in str(without)
    wrong = _fail(url, tmp_path, SKILLSYNC_TOKEN=TOKEN)
    assert wrong.failure is Failure.UNAUTHORIZED
    assert "authentication refused (401); check GITHUB_TOKEN/SKILLSYNC_TOKEN" in str(wrong)
    assert TOKEN not in str(wrong)
    in_url = url.replace("http://", f"http://x-access-token:{TOKEN}@")
    redacted = _fail(in_url, tmp_path)
    assert redacted.failure is Failure.UNAUTHORIZED
    assert TOKEN not in str(redacted) and url in str(redacted)


def test_git_daemon_without_the_repository_is_not_found(
    git_daemon_server: GitDaemonServer, tmp_path: Path
) -> None:
    url = f"{git_daemon_server.base_url}/no-such-skills"
    err = _fail(url, tmp_path)
    assert err.failure is Failure.NOT_FOUND
    assert str(err).startswith(f"ls-remote {url}: no repository there (")
    assert "check the path in SKILLSYNC_REPO and that the server exports it" in str(err)


def test_a_local_path_that_is_no_repository_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    err = _fail(str(tmp_path / "empty"), tmp_path)
    assert err.failure is Failure.NOT_FOUND
    assert "check SKILLSYNC_REPO: it must name a git repository" in str(err)


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-handshake is what these tests do: no traceback."""


class _TlsServer:
    """HTTPS on 127.0.0.1 with a self-signed certificate made by openssl for this test
    (``tls=False``: the same server speaking plain HTTP)."""

    def __init__(self, workdir: Path, tls: bool = True) -> None:
        self._httpd = _QuietServer((HOST, 0), http.server.BaseHTTPRequestHandler)
        if tls:
            cert, key = workdir / "cert.pem", workdir / "key.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                            "1", "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=IP:{HOST}",
                            "-keyout", str(key), "-out", str(cert)],
                           check=True, capture_output=True, timeout=60)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[_TlsServer]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a self-signed certificate")
    server = _TlsServer(tmp_path)
    yield server
    server.close()


def test_a_self_signed_certificate_is_a_tls_failure(tls_server: _TlsServer, tmp_path: Path) -> None:
    url = f"https://{HOST}:{tls_server.port}/skills.git"
    err = _fail(url, tmp_path)
    assert err.failure is Failure.TLS
    assert "TLS certificate not trusted (self-signed certificate)" in str(err)
    assert "SSL_CERT_FILE" in str(err)


def test_https_to_a_plain_http_port_is_a_tls_failure(tmp_path: Path) -> None:
    plain = _TlsServer(tmp_path, tls=False)
    try:
        err = _fail(f"https://{HOST}:{plain.port}/skills.git", tmp_path)
    finally:
        plain.close()
    assert err.failure is Failure.TLS
    assert "TLS handshake failed" in str(err) and "does that port speak https?" in str(err)


@pytest.mark.parametrize("scheme", ["http", "git"])
def test_a_connection_reset_is_connection_lost(scheme: str, reset_server: int,
                                               tmp_path: Path) -> None:
    err = _fail(f"{scheme}://{HOST}:{reset_server}/skills.git", tmp_path)
    assert err.failure is Failure.CONNECTION_LOST
    assert "a later sync tries again" in str(err)


@pytest.mark.parametrize(("says", "failure", "todo"), [
    ("git@skills.example: Permission denied (publickey).", Failure.UNAUTHORIZED,
     "check the SSH key (SKILLSYNC_SSH_COMMAND)"),
    ("ssh: Could not resolve hostname skills.invalid: Name or service not known", Failure.DNS,
     "this machine's DNS settings"),
    ("ssh: connect to host 127.0.0.1 port 22: Connection refused", Failure.REFUSED,
     "that the SSH server is running"),
    ("Host key verification failed.", Failure.HOST_KEY, "known_hosts"),
    ("ERROR: Repository not found.", Failure.NOT_FOUND, "check SKILLSYNC_REPO"),
])
def test_what_ssh_says_before_it_exits_is_kept_and_named(
    says: str, failure: Failure, todo: str, tmp_path: Path
) -> None:
    """A stand-in for system ssh that fails the way it does: a line on stderr, exit 255."""
    fake = tmp_path / "fake-ssh"
    fake.write_text(f"#!/bin/sh\necho '{says}' >&2\nexit 255\n")
    fake.chmod(0o755)
    err = _fail("git@skills.invalid:org/skills.git", tmp_path, SKILLSYNC_SSH_COMMAND=str(fake))
    assert err.failure is failure
    shown = says.removeprefix("ERROR: ")  # dulwich keeps the server's words, not git's label
    assert shown in str(err) and todo in str(err), err


# --- what the operator sees --------------------------------------------------------------------


def run_once(url: str, state: Path, *, offline: bool = False) -> subprocess.CompletedProcess[str]:
    """``skillsyncd --once`` in a subprocess; ``offline``: in a network namespace of its own,
    where only an unused loopback exists, so nothing it sends can leave this machine."""
    argv = [sys.executable, "-m", "skillsyncd", "--once", "--repo", url, "--state-dir", str(state)]
    if offline:
        argv = ["unshare", "-rn", *argv]
    env = _clean_env({"SKILLSYNC_NETWORK_TIMEOUT": "2"})
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def network_namespace_available() -> bool:
    """Whether ``unshare -rn`` works here (unprivileged user and network namespaces)."""
    if shutil.which("unshare") is None:
        return False
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True,
                              timeout=30, check=False).returncode == 0
    return False


def test_once_on_a_refused_remote_prints_one_line_and_logs_no_library_text(
    closed_port: int, tmp_path: Path
) -> None:
    url = f"http://x-access-token:{TOKEN}@{HOST}:{closed_port}/skills.git"
    done = run_once(url, tmp_path / "s")
    assert done.returncode == 1
    safe = f"http://{HOST}:{closed_port}/skills.git"
    assert done.stderr.splitlines() == [
        f"skillsyncd: ls-remote {safe}: connection refused by {HOST}:{closed_port}; nothing "
        "listens there: check the host and port in SKILLSYNC_REPO and that the git server is running"
    ]
    assert TOKEN not in done.stdout + done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    failed = [e for e in events if e["event"] == "fetch_failed"]
    assert len(failed) == 1 and failed[0]["exc_type"] == "RemoteFailed"
    assert not [e for e in events if e["level"] == "warning"], events  # no raw urllib3 retry line
    for text in LIBRARY_TEXT:
        assert text not in done.stdout, text


@pytest.mark.parametrize("scheme", ["https", "git"])
def test_an_unresolvable_host_is_a_dns_failure(scheme: str, tmp_path: Path) -> None:
    if not network_namespace_available():
        pytest.skip("needs `unshare -rn` (a network namespace) to keep the DNS query on this machine")
    url = f"{scheme}://skills.invalid/org/skills.git"
    done = run_once(url, tmp_path / "s", offline=True)
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"skillsyncd: ls-remote {url}: the host name skills.invalid does not "
                           "resolve (DNS: "), line
    assert line.endswith("check the host in SKILLSYNC_REPO and this machine's DNS settings"), line


def test_the_failure_is_recorded_as_the_last_error(closed_port: int, tmp_path: Path) -> None:
    state = tmp_path / "s"
    done = run_once(f"git://{HOST}:{closed_port}/skills", state)
    assert done.returncode == 1
    shown = subprocess.run([sys.executable, "-m", "skillsyncd", "status", "--json",
                            "--state-dir", str(state)], env=_clean_env({}), capture_output=True,
                           text=True, timeout=60, check=False)
    lines = shown.stdout.splitlines()  # log lines (JSON, one per line) may precede the document
    doc = json.loads("\n".join(lines[lines.index("{"):]))
    assert doc["last_error"] == done.stderr.strip().removeprefix("skillsyncd: ")


def test_a_reachable_remote_still_fetches(http_git_server: HttpGitServer, repo: RepoBuilder,
                                          tmp_path: Path) -> None:
    """The mapping only names failures: the same client reaches a working server."""
    repo.add_skill("a")
    head = repo.commit("c")
    cfg = load_config(flags={"repo": http_git_server.url_for(repo), "state_dir": str(tmp_path)},
                      env={})
    assert Source(cfg).probe() == head == run_git("rev-parse", "HEAD", cwd=repo.path).strip()


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "No space left on device"),
                                             (errno.EROFS, "Read-only file system")])
def test_a_full_or_read_only_mirror_is_not_blamed_on_the_remote(code: int, words: str) -> None:
    """The fetch writes the mirror inside the same guarded operation: a disk error there is
    told as this machine's, with the file (the classification is pure; the real full disk is
    test_faults.py's)."""
    remote = Remote("http://127.0.0.1:9/skills.git", token_set=False, network_timeout=1)
    written = "/data/skillsync/mirror.git/objects/tmp_pack_x"
    diagnosis = classify(OSError(code, os.strerror(code), written), remote)
    assert diagnosis.failure is Failure.LOCAL_DISK
    assert diagnosis.what == f"this machine's disk failed writing {written} ({words})"
    assert "the remote is not at fault" in diagnosis.todo
