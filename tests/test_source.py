"""The git source over every transport, with real servers on 127.0.0.1."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from gitserver import RepoBuilder, run_git

import skillsyncd.source.local_fetch as local_fetch
from skillsyncd.cli import main
from skillsyncd.config import load_config
from skillsyncd.errors import SourceError
from skillsyncd.release.releases import Releases
from skillsyncd.source.remote import Source
from skillsyncd.source.snapshot import object_size
from skillsyncd.source.transport import redact_url
from skillsyncd.sync.assembly import build_syncer


def test_redact_url() -> None:
    assert redact_url("https://user:tok@github.com/o/r.git") == "https://github.com/o/r.git"
    assert redact_url("https://github.com/o/r.git") == "https://github.com/o/r.git"
    assert redact_url("git@github.com:o/r.git") == "git@github.com:o/r.git"


def test_file_url_and_local_path(repo: Any, tmp_path: Path) -> None:
    repo.add_skill("a", description="x")
    head = repo.commit("c")
    for url in (str(repo.path), f"file://{repo.path}"):
        cfg = load_config(flags={"repo": url, "state_dir": str(tmp_path / url[-6:])}, env={})
        assert Source(cfg).probe() == head


def test_ssh_transport_through_system_ssh_command(repo: Any, tmp_path: Path) -> None:
    """An ssh_command that runs the remote command locally stands in for sshd."""
    fake = tmp_path / "fake-ssh"
    fake.write_text(
        '#!/bin/sh\n# last argument is the remote command\nfor last; do :; done\nexec sh -c "$last"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    repo.add_skill("a", description="over ssh")
    head = repo.commit("c")
    cfg = load_config(flags={"repo": f"ssh://git@example.invalid{repo.path}",
                             "state_dir": str(tmp_path / "s")},
                      env={"SKILLSYNC_SSH_COMMAND": str(fake)})
    out = build_syncer(cfg).sync()
    assert out.status == "deployed" and out.commit == head


def test_http_first_sync_and_no_change_poll_fetches_nothing(
    http_git_server: Any, repo: Any, tmp_path: Path
) -> None:
    repo.add_skill("a", description="x")
    head = repo.commit("c")
    url = http_git_server.url_for(repo)
    cfg = load_config(flags={"repo": url, "state_dir": str(tmp_path / "s")}, env={})
    syncer = build_syncer(cfg)
    assert syncer.sync().commit == head
    http_git_server.requests.clear()
    assert syncer.sync().status == "no_change"
    # one ref round trip, and no upload-pack (object transfer) at all
    posts = [r for r in http_git_server.requests if r[0] == "POST"]
    assert len(http_git_server.requests) <= 2, http_git_server.requests
    assert not any("git-upload-pack" in r[1] and r[0] == "POST" and "ls-refs" not in r[1]
                   for r in posts[1:])


def test_git_daemon_transport(git_daemon_server: Any, repo: Any, tmp_path: Path) -> None:
    repo.add_skill("a", description="x")
    head = repo.commit("c")
    cfg = load_config(flags={"repo": git_daemon_server.url_for(repo),
                             "state_dir": str(tmp_path / "s")}, env={})
    assert build_syncer(cfg).sync().commit == head


def test_token_auth_accepted_and_never_stored(
    http_git_server: Any, repo: Any, tmp_path: Path, capfd: Any
) -> None:
    token = "ghs_testtoken0123456789abcdefABCDEF"
    http_git_server.require_auth("x-access-token", token)
    try:
        repo.add_skill("a", description="x")
        repo.commit("c")
        state = tmp_path / "s"
        code = main(["--once", "--repo", http_git_server.url_for(repo), "--state-dir", str(state)])
        assert code == 1  # no token: refused
        assert "authentication refused" in capfd.readouterr().err
        os.environ["GITHUB_TOKEN"] = token
        try:
            code = main(["--once", "--repo", http_git_server.url_for(repo),
                         "--state-dir", str(state)])
        finally:
            del os.environ["GITHUB_TOKEN"]
        out = capfd.readouterr()
        assert code == 0
        assert token not in out.out + out.err
        for path in state.rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), path
    finally:
        http_git_server.require_auth(None, None)


def test_bad_token_exit_1_current_untouched(http_git_server: Any, repo: Any, tmp_path: Path) -> None:
    repo.add_skill("a", description="x")
    repo.commit("c")
    state = tmp_path / "s"
    url = http_git_server.url_for(repo)
    assert main(["--once", "--repo", url, "--state-dir", str(state)]) == 0
    before = Releases(state).current()
    http_git_server.require_auth("x-access-token", "right")
    try:
        repo.add_skill("a", description="y")
        repo.commit("d")
        os.environ["SKILLSYNC_TOKEN"] = "wrong"
        try:
            assert main(["--once", "--repo", url, "--state-dir", str(state)]) == 1
        finally:
            del os.environ["SKILLSYNC_TOKEN"]
    finally:
        http_git_server.require_auth(None, None)
    assert Releases(state).current() == before


@pytest.mark.parametrize("status", [403, 404, 500])
def test_http_error_statuses_fail_cleanly(
    http_git_server: Any, repo: Any, tmp_path: Path, status: int
) -> None:
    repo.add_skill("a", description="x")
    repo.commit("c")
    cfg = load_config(flags={"repo": http_git_server.url_for(repo), "state_dir": str(tmp_path)},
                      env={})
    http_git_server.force_status(status)
    try:
        with pytest.raises(SourceError) as err:
            Source(cfg).probe()
    finally:
        http_git_server.force_status(None)
    if status == 404:
        assert "no repository there" in str(err.value) and "SKILLSYNC_REPO" in str(err.value)


def test_server_down_fails_fast(closed_port: int, tmp_path: Path) -> None:
    state = tmp_path / "s"
    start = time.monotonic()
    code = main(["--once", "--repo", f"http://127.0.0.1:{closed_port}/r.git", "--state-dir", str(state)])
    assert code == 1 and time.monotonic() - start < 10
    assert Releases(state).current() is None


@pytest.mark.parametrize("scheme", ["http", "git"])
def test_black_hole_is_bounded(black_hole: int, tmp_path: Path, scheme: str) -> None:
    cfg = load_config(flags={"repo": f"{scheme}://127.0.0.1:{black_hole}/r.git",
                             "state_dir": str(tmp_path)},
                      env={"SKILLSYNC_NETWORK_TIMEOUT": "1"})
    start = time.monotonic()
    with pytest.raises(SourceError, match=r"timed out|time"):
        Source(cfg).probe()
    assert time.monotonic() - start < 6


def test_pack_count_is_bounded(repo: Any, tmp_path: Path) -> None:
    cfg = load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "s")},
                      env={"SKILLSYNC_MAX_PACKS": "3"})
    syncer = build_syncer(cfg)
    for i in range(6):
        repo.add_skill("a", description=f"v{i}")
        repo.commit(f"v{i}")
        syncer.sync()
    packs = list((cfg.mirror_dir / "objects" / "pack").glob("*.pack"))
    assert 1 <= len(packs) <= 4


def test_corrupt_or_deleted_mirror_is_rebuilt(repo: Any, tmp_path: Path) -> None:
    repo.add_skill("a", description="v1")
    repo.commit("v1")
    cfg = load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "s")}, env={})
    syncer = build_syncer(cfg)
    syncer.sync()
    for damage in ("delete", "garbage"):
        if damage == "delete":
            subprocess.run(["rm", "-rf", str(cfg.mirror_dir)], check=True)
        else:
            cfg.mirror_dir.mkdir(exist_ok=True)
            (cfg.mirror_dir / "HEAD").write_text("garbage")
        repo.add_skill("a", description=f"after {damage}")
        head = repo.commit(damage)
        out = syncer.sync()
        assert out.status == "deployed" and out.commit == head


def test_remote_url_change_deploys_new_head(repo: Any, tmp_path: Path) -> None:
    repo.add_skill("a", description="v1")
    repo.commit("v1")
    state = tmp_path / "s"
    build_syncer(load_config(flags={"repo": str(repo.path), "state_dir": str(state)}, env={})).sync()
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(other)], check=True)
    cfg = load_config(flags={"repo": f"file://{other}", "state_dir": str(state)}, env={})
    out = build_syncer(cfg).sync()
    assert out.status == "no_change"  # same head, different URL: nothing to do
    assert "v1" in (Releases(state).dir(out.release or "") / "a" / "SKILL.md").read_text()


def test_git_daemon_trickling_one_pkt_line_is_cut_at_the_overall_deadline(tmp_path: Path) -> None:
    """Each byte arrives inside the socket timeout, so only the watchdog can end this."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            try:
                conn.sendall(b"fff0")  # a pkt-line of 65,516 bytes, sent one byte at a time
                while not stop.is_set():
                    conn.sendall(b"a")
                    time.sleep(0.1)
            except OSError:
                return  # the client gave up: what we want

    threading.Thread(target=trickle, daemon=True).start()
    cfg = load_config(flags={"repo": f"git://127.0.0.1:{port}/r.git",
                             "state_dir": str(tmp_path / "s")},
                      env={"SKILLSYNC_NETWORK_TIMEOUT": "0.5"})
    started = time.monotonic()
    try:
        with pytest.raises(SourceError, match="timed out"):
            Source(cfg).probe()
    finally:
        stop.set()
        listener.close()
    # Generous: the budget is 4 x 0.5 s; without the watchdog this takes ~2 hours.
    assert time.monotonic() - started < 30


# --- a local source repacked by git while a sync reads it -------------------------------------


def _repack_inside_the_fetch(monkeypatch: pytest.MonkeyPatch, repo: RepoBuilder,
                             times: int) -> list[str]:
    """At each of the first ``times`` blob-size reads of the local fetch, git writes a new
    pack of everything and deletes the old one (what ``git gc`` does), so a pack the open
    source repository has listed is gone when it is read. Returns the packs made."""
    made: list[str] = []

    def size_after_a_repack(store: Any, sha: str) -> int | None:
        if len(made) < times:
            repo.tag(f"repack-{len(made)}", message="a new object, so the new pack differs")
            run_git("repack", "-a", "-d", "-q", cwd=repo.path)
            (pack,) = (repo.git_dir / "objects" / "pack").glob("*.pack")  # the old one is gone
            made.append(pack.name)
        return object_size(store, sha)

    monkeypatch.setattr(local_fetch, "object_size", size_after_a_repack)
    return made


def _packed_source(repo: RepoBuilder) -> str:
    for name in ("a", "b", "c"):
        repo.add_skill(name, extra_files={"ref.md": f"{name}\n" * 100})
    head = repo.commit("three skills")
    run_git("repack", "-a", "-d", "-q", cwd=repo.path)  # what the fetch opens is one pack
    return head


def test_a_source_repacked_during_the_fetch_is_read_again(
    repo: RepoBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Was a PackFileDisappeared traceback and exit 1 (issue 29 item 19)."""
    head = _packed_source(repo)
    made = _repack_inside_the_fetch(monkeypatch, repo, times=1)
    state = tmp_path / "s"
    assert main(["--once", "--repo", str(repo.path), "--state-dir", str(state)]) == 0
    out = capfd.readouterr()
    assert len(made) == 1  # the repack did happen inside the fetch
    retried = [line for line in out.out.splitlines() if '"fetch_retried"' in line]
    assert len(retried) == 1 and "PackFileDisappeared" in retried[0], out.out
    assert Releases(state).manifest(Releases(state).current() or "").commit == head


def test_a_source_that_keeps_moving_fails_in_one_line(
    repo: RepoBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _packed_source(repo)
    made = _repack_inside_the_fetch(monkeypatch, repo, times=1000)
    code = main(["--once", "--repo", str(repo.path), "--state-dir", str(tmp_path / "s")])
    err = capfd.readouterr().err
    assert code == 1 and len(made) == local_fetch._ATTEMPTS  # bounded: one repack per attempt
    (line,) = err.splitlines()
    assert line.startswith(f"skillsyncd: fetch {repo.path}: the source repository's objects kept "
                           f"moving while they were read, {local_fetch._ATTEMPTS} times "
                           "(PackFileDisappeared: "), line
    assert line.endswith("; a git gc or repack runs there: a later sync tries again"), line


def test_an_object_missing_from_a_local_source_every_time_is_damage(
    repo: RepoBuilder, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    repo.add_skill("a", extra_files={"ref.md": "kept\n"})
    repo.commit("one skill")
    lost = repo.rev_parse("HEAD:a/ref.md")
    (repo.git_dir / "objects" / lost[:2] / lost[2:]).unlink()  # loose: the commit made it so
    code = main(["--once", "--repo", str(repo.path), "--state-dir", str(tmp_path / "s")])
    err = capfd.readouterr().err
    assert code == 1
    assert err.splitlines() == [
        f"skillsyncd: fetch {repo.path}: the source repository lacks git object {lost}; it is "
        "damaged or was pushed incompletely: run `git fsck` there and push again"]
