"""The test peers themselves: if these fail, every transport test downstream means nothing."""

from __future__ import annotations

import gzip
import http.client
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from dulwich.client import HTTPUnauthorized, get_transport_and_path
from dulwich.errors import GitProtocolError, NotGitRepository
from dulwich.repo import Repo
from gitserver import (
    GitDaemonServer,
    GitRoot,
    HttpGitServer,
    RepoBuilder,
    git_env,
    run_git,
)

MAIN = b"refs/heads/main"


def fetch_into_bare(url: str, dest: Path, **client_kwargs: str) -> Repo:
    """Fetch everything from ``url`` into a new bare repo and set its refs, as dulwich leaves them unset."""
    client, path = get_transport_and_path(url, **client_kwargs)
    target = Repo.init_bare(str(dest), mkdir=True)
    result = client.fetch(path, target)
    for ref, sha in result.refs.items():
        if ref.startswith(b"refs/") and not ref.endswith(b"^{}") and sha is not None:
            target.refs[ref] = sha
    return target


def read_path(repo: Repo, commit: str, path: str) -> bytes:
    """Content of ``path`` at ``commit`` in a dulwich repo."""
    tree = repo[repo[commit.encode()].tree]
    _mode, sha = tree.lookup_path(repo.__getitem__, path.encode())
    return repo[sha].data


def ls_refs_request() -> bytes:
    """A protocol v2 ls-refs request as pkt-lines: command, delimiter, one argument, flush."""
    def pkt(line: bytes) -> bytes:
        return f"{len(line) + 4:04x}".encode() + line

    return pkt(b"command=ls-refs\n") + b"0001" + pkt(b"symrefs\n") + b"0000"


# --------------------------------------------------------------------------- RepoBuilder


def test_repo_builder_records_modes_links_gitlinks_and_removals(repo: RepoBuilder) -> None:
    repo.add_skill("alpha", description="First.", version="1.2",
                   extra_files={"scripts/run.sh": "echo hi\n", "data.bin": b"\x00\xff"})
    repo.write("alpha/scripts/run.sh", "echo hi\n", mode=0o755)
    repo.symlink("alpha/link", "/etc/passwd")
    repo.add_gitlink("vendored", "1" * 40)
    repo.add_skill("doomed", description="Gone soon.", extra_files={"a/b.md": "x"})
    first = repo.commit("everything")
    repo.remove("doomed")
    second = repo.commit("drop doomed")

    entries = {line.split("\t")[1]: line.split()[0]
               for line in run_git("ls-tree", "-r", first, cwd=repo.path).splitlines()}
    assert entries == {
        "alpha/SKILL.md": "100644", "alpha/data.bin": "100644", "alpha/link": "120000",
        "alpha/scripts/run.sh": "100755", "doomed/SKILL.md": "100644", "doomed/a/b.md": "100644",
        "vendored": "160000",
    }
    skill_md = run_git("show", f"{first}:alpha/SKILL.md", cwd=repo.path)
    assert skill_md.startswith("---\nname: alpha\ndescription: First.\nversion: 1.2\n---\n")
    assert run_git("cat-file", "-p", f"{first}:alpha/link", cwd=repo.path) == "/etc/passwd"
    after = run_git("ls-tree", "--name-only", second, cwd=repo.path).split()
    assert after == ["alpha", "vendored"] and not (repo.path / "doomed").exists()
    assert repo.head() == second != first


def test_repo_builder_commit_tag_and_force_reset(repo: RepoBuilder) -> None:
    repo.add_skill("a", description="v1")
    base = repo.commit("v1")
    empty = repo.commit("nothing staged still makes a commit")
    assert empty != base and repo.rev_parse(f"{empty}^") == base
    assert repo.tag("v1.0") == empty
    assert repo.tag("v0.9", base, message="annotated") != base  # the tag object, not the commit
    assert repo.rev_parse("v0.9^{commit}") == base
    repo.force_reset(base)
    repo.add_skill("a", description="rewritten")
    rewritten = repo.commit("rewrite")
    assert repo.head() == rewritten and repo.rev_parse(f"{rewritten}^") == base
    assert "rewritten" in (repo.path / "a" / "SKILL.md").read_text()
    times = run_git("log", "--format=%ct", cwd=repo.path).split()
    assert len(set(times)) == len(times), "commit times must be distinct"


# --------------------------------------------------------------------------- smart HTTP


def test_http_get_refs_sees_commits_made_after_start(http_git_server: HttpGitServer,
                                                     repo: RepoBuilder) -> None:
    repo.add_skill("a", description="one")
    first = repo.commit("one")
    client, path = get_transport_and_path(http_git_server.url_for(repo))
    assert client.get_refs(path).refs[MAIN] == first.encode()
    repo.add_skill("a", description="two")
    second = repo.commit("two")
    assert client.get_refs(path).refs[MAIN] == second.encode()
    assert http_git_server.url_for(repo) == f"http://127.0.0.1:{http_git_server.port}/{repo.name}"


def test_http_fetch_into_bare_repo(http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path) -> None:
    repo.add_skill("a", description="fetched", extra_files={"ref.md": "payload\n"})
    head = repo.commit("c")
    target = fetch_into_bare(http_git_server.url_for(repo), tmp_path / "mirror")
    assert target.refs[MAIN] == head.encode()
    assert read_path(target, head, "a/ref.md") == b"payload\n"
    posts = [r for r in http_git_server.requests if r.method == "POST"]
    assert posts and all(r.status == 200 and "git-upload-pack" in r.path for r in posts)


def test_http_request_log_counts_round_trips_and_bytes(http_git_server: HttpGitServer, repo: RepoBuilder,
                                                      tmp_path: Path) -> None:
    repo.write("blob.bin", os.urandom(200_000))  # incompressible: the pack must carry it all
    repo.commit("big")
    client, path = get_transport_and_path(http_git_server.url_for(repo))
    client.get_refs(path)
    after_refs = list(http_git_server.requests)
    assert after_refs[0].method == "GET"
    assert after_refs[0].path == f"/{repo.name}/info/refs?service=git-upload-pack"
    assert all(r.status == 200 and r.nbytes > 0 for r in after_refs)
    assert sum(r.nbytes for r in after_refs) < 10_000

    http_git_server.requests.clear()
    fetch_into_bare(http_git_server.url_for(repo), tmp_path / "mirror")
    assert http_git_server.bytes_sent() > 200_000
    assert len(http_git_server.requests) >= 2
    assert all(r.headers["user-agent"].startswith("git/dulwich") for r in http_git_server.requests)


def test_http_basic_auth_accepted_and_refused(http_git_server: HttpGitServer, repo: RepoBuilder) -> None:
    head = repo.commit("c")
    url = http_git_server.url_for(repo)
    http_git_server.require_auth("x-access-token", "s3cret")
    for creds in ({}, {"username": "x-access-token", "password": "wrong"},
                  {"username": "someone", "password": "s3cret"}):
        client, path = get_transport_and_path(url, **creds)
        with pytest.raises(HTTPUnauthorized):
            client.get_refs(path)
    assert [r.status for r in http_git_server.requests] == [401, 401, 401]

    client, path = get_transport_and_path(url, username="x-access-token", password="s3cret")
    assert client.get_refs(path).refs[MAIN] == head.encode()
    assert http_git_server.requests[-1].status == 200

    http_git_server.require_auth(None, None)
    client, path = get_transport_and_path(url)
    assert client.get_refs(path).refs[MAIN] == head.encode()


@pytest.mark.parametrize(("status", "error"), [(403, GitProtocolError), (404, NotGitRepository),
                                               (500, GitProtocolError)])
def test_http_forced_status(http_git_server: HttpGitServer, repo: RepoBuilder, status: int,
                            error: type[Exception]) -> None:
    head = repo.commit("c")
    client, path = get_transport_and_path(http_git_server.url_for(repo))
    http_git_server.force_status(status)
    with pytest.raises(error):
        client.get_refs(path)
    assert {r.status for r in http_git_server.requests} == {status}
    http_git_server.force_status(None)
    assert client.get_refs(path).refs[MAIN] == head.encode()


def test_http_unknown_repo_is_404(http_git_server: HttpGitServer) -> None:
    client, path = get_transport_and_path(f"{http_git_server.base_url}/no-such-repo")
    with pytest.raises(NotGitRepository):
        client.get_refs(path)
    assert http_git_server.requests[-1].status == 404


def test_http_slow_mode_trickles(http_git_server: HttpGitServer, repo: RepoBuilder) -> None:
    head = repo.commit("c")
    client, path = get_transport_and_path(http_git_server.url_for(repo))
    http_git_server.slow(0.02, chunk=64)
    start = time.monotonic()
    assert client.get_refs(path).refs[MAIN] == head.encode()
    elapsed = time.monotonic() - start
    chunks = sum(-(-r.nbytes // 64) for r in http_git_server.requests)
    assert chunks >= 3 and elapsed >= 0.02 * chunks * 0.9

    # a reader whose per-read timeout is shorter than the gap between chunks gives up
    http_git_server.slow(0.5, chunk=16)
    conn = http.client.HTTPConnection("127.0.0.1", http_git_server.port, timeout=0.2)
    conn.request("GET", f"/{repo.name}/info/refs?service=git-upload-pack")
    resp = conn.getresponse()
    resp.read(16)
    with pytest.raises(TimeoutError):
        resp.read(16)
    conn.close()


@pytest.mark.parametrize("encoding", ["plain", "gzip", "chunked"])
def test_http_request_bodies_gzip_and_chunked(http_git_server: HttpGitServer, repo: RepoBuilder,
                                              encoding: str) -> None:
    """A protocol v2 ls-refs POST, sent the ways git and dulwich may send it."""
    head = repo.commit("c")
    body = ls_refs_request()
    headers = {"Content-Type": "application/x-git-upload-pack-request", "Git-Protocol": "version=2"}
    conn = http.client.HTTPConnection("127.0.0.1", http_git_server.port, timeout=5)
    url = f"/{repo.name}/git-upload-pack"
    if encoding == "gzip":
        conn.request("POST", url, body=gzip.compress(body), headers={**headers, "Content-Encoding": "gzip"})
    elif encoding == "chunked":
        conn.request("POST", url, body=iter([body[:7], body[7:]]), headers=headers, encode_chunked=True)
    else:
        conn.request("POST", url, body=body, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    assert resp.status == 200, payload
    assert resp.getheader("Content-Type") == "application/x-git-upload-pack-result"
    assert f"{head} refs/heads/main".encode() in payload
    assert b"symref-target:refs/heads/main" in payload  # HEAD line: the symrefs argument got through
    assert http_git_server.requests[-1].headers["git-protocol"] == "version=2"


# --------------------------------------------------------------------------- git daemon


def test_git_daemon_get_refs_and_fetch(git_daemon_server: GitDaemonServer, repo: RepoBuilder,
                                       tmp_path: Path) -> None:
    repo.add_skill("a", description="over git://", extra_files={"ref.md": "daemon\n"})
    first = repo.commit("one")
    url = git_daemon_server.url_for(repo)
    assert url == f"git://127.0.0.1:{git_daemon_server.port}/{repo.name}"
    client, path = get_transport_and_path(url)
    assert client.get_refs(path).refs[MAIN] == first.encode()
    second = repo.commit("after start")
    target = fetch_into_bare(url, tmp_path / "mirror")
    assert target.refs[MAIN] == second.encode()
    assert read_path(target, second, "a/ref.md") == b"daemon\n"


def test_git_daemon_unknown_repo_fails(git_daemon_server: GitDaemonServer) -> None:
    client, path = get_transport_and_path(f"{git_daemon_server.base_url}/no-such-repo")
    with pytest.raises((GitProtocolError, NotGitRepository)):
        client.get_refs(path)


def test_git_daemon_close_leaves_no_process(tmp_path: Path) -> None:
    daemon = GitDaemonServer(GitRoot(tmp_path / "root"))
    pid, port = daemon.proc.pid, daemon.port
    daemon.close()
    assert daemon.proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


# --------------------------------------------------------------------------- git CLI


@pytest.mark.parametrize("server_name", ["http_git_server", "git_daemon_server"])
def test_git_clone_cli(request: pytest.FixtureRequest, repo: RepoBuilder, tmp_path: Path,
                       server_name: str) -> None:
    server = request.getfixturevalue(server_name)
    repo.add_skill("a", description="cloned", extra_files={"big.bin": os.urandom(50_000)})
    head = repo.commit("c")
    dest = tmp_path / "clone"
    proc = subprocess.run(["git", "clone", "-q", server.url_for(repo), str(dest)], env=git_env(),
                          capture_output=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert run_git("rev-parse", "HEAD", cwd=dest).strip() == head
    assert (dest / "a" / "big.bin").read_bytes() == (repo.path / "a" / "big.bin").read_bytes()


# --------------------------------------------------------------------------- dead ends


def test_black_hole_accepts_then_times_out(black_hole: int) -> None:
    with socket.create_connection(("127.0.0.1", black_hole), timeout=1) as sock:
        sock.settimeout(0.3)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            sock.recv(1)
        assert 0.25 <= time.monotonic() - start < 2


def test_closed_port_refuses(closed_port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", closed_port), timeout=1).close()


def test_reset_server_resets(reset_server: int) -> None:
    with socket.create_connection(("127.0.0.1", reset_server), timeout=2) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            sock.recv(1)


def test_repo_fixture_is_exported_and_url_for_registers(git_root: GitRoot, repo: RepoBuilder,
                                                        http_git_server: HttpGitServer,
                                                        tmp_path: Path) -> None:
    assert (git_root.root / repo.name).resolve() == repo.path.resolve()
    other = RepoBuilder(tmp_path / "other", name="other-unregistered")
    head = other.commit("c")
    client, path = get_transport_and_path(http_git_server.url_for(other))
    try:
        assert client.get_refs(path).refs[MAIN] == head.encode()
    finally:
        git_root.unregister(other.name)
    assert not (git_root.root / other.name).exists()
