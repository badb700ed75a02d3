"""Faults under a live release: the remote misbehaves, the disk fills, state is damaged.

Each case deploys a first release, injects one fault, runs a real sync, and then
checks the promises: the live release keeps serving (``current`` unchanged and
intact), the command fails with a clear one-line message (no traceback), ``status
--json`` says what is wrong, and once the fault clears the next sync converges
on its own. test_source.py covers the same faults at the Source level (that an
error is raised, and fast); this file covers what the operator and the gateway see.

Network faults go through FaultProxy, a small HTTP server in front of the real
``git http-backend`` server that breaks only the response carrying the pack, so
the probe succeeds and the fault hits mid-fetch. Disk faults use a tmpfs inside an
unprivileged user+mount namespace (``unshare -Urm``): a real ENOSPC and a real
read-only mount, not a patched function.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from gitserver import HttpGitServer, RepoBuilder
from polling import wait_for
from test_daemon import SKILLSYNCD, Daemon, _clean_env
from test_source_failures import network_namespace_available, run_once

from skillsyncd.cli import main
from skillsyncd.config import load_config
from skillsyncd.publish.publisher import verify_published
from skillsyncd.release.releases import Releases
from skillsyncd.release.verify import verify_release

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


# --- a proxy that breaks the pack ---------------------------------------------------------


class FaultProxy:
    """HTTP proxy to a git server; ``mode`` says how to mangle the response that carries a pack.

    pass | status:N (every request) | blackhole (every request) | trickle | reset |
    truncate | corrupt | down (nothing listens on the port) -- set ``mode`` any time.
    """

    def __init__(self, upstream: HttpGitServer) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.closed = threading.Event()
        self.packs_broken = 0
        self.port = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._listen()

    def _listen(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                proxy._handle(self)

            def do_POST(self) -> None:
                proxy._handle(self)

        ThreadingHTTPServer.allow_reuse_address = True
        httpd = ThreadingHTTPServer((HOST, self.port), Handler)
        httpd.daemon_threads = True
        httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.port = httpd.server_address[1]
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        self._httpd = httpd

    def set(self, mode: str) -> None:
        """Switch mode; ``down`` stops listening, leaving ``down`` listens again on the same port."""
        if mode == "down" and self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        elif mode != "down" and self._httpd is None:
            self._listen()
        self.mode = mode

    def url_for(self, repo: RepoBuilder) -> str:
        return f"http://{HOST}:{self.port}/{self.upstream.git_root.name_of(repo)}"

    def close(self) -> None:
        self.closed.set()
        self.set("down")

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        mode = self.mode
        if mode == "blackhole":
            self.closed.wait(60)
            return
        if mode.startswith("status:"):
            code = int(mode.split(":")[1])
            body = f"forced {code}\n".encode()
            h.send_response(code)
            if code == 401:
                h.send_header("WWW-Authenticate", 'Basic realm="git"')
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        conn = http.client.HTTPConnection(HOST, self.upstream.port, timeout=30)
        headers = {k: v for k, v in h.headers.items()
                   if k.lower() not in ("host", "connection", "content-length")}
        conn.request(h.command, h.path, body=body, headers=headers)
        resp = conn.getresponse()
        out = resp.read()
        conn.close()
        pack = out.find(b"PACK")
        if pack < 0 or mode == "pass":
            self._reply(h, resp, out, len(out))
            return
        self.packs_broken += 1
        if mode == "corrupt":
            # flip bytes well inside the pack's object data (pkt-line framing stays intact)
            spot = pack + min(200, (len(out) - pack) // 2)
            out = out[:spot] + bytes(b ^ 0xFF for b in out[spot:spot + 8]) + out[spot + 8:]
            self._reply(h, resp, out, len(out))
        elif mode == "truncate":
            self._reply(h, resp, out[: pack + (len(out) - pack) // 2], len(out))
            h.close_connection = True
        elif mode == "reset":
            self._reply(h, resp, out[: pack + (len(out) - pack) // 2], len(out))
            h.wfile.flush()
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
            h.close_connection = True
        elif mode == "trickle":
            h.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                    h.send_header(k, v)
            h.send_header("Content-Length", str(len(out)))
            h.end_headers()
            with contextlib.suppress(OSError):
                for i in range(0, len(out), 8):
                    if self.closed.is_set():
                        break
                    h.wfile.write(out[i:i + 8])
                    h.wfile.flush()
                    time.sleep(0.2)

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, resp: http.client.HTTPResponse, out: bytes,
               declared: int) -> None:
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                h.send_header(k, v)
        h.send_header("Content-Length", str(declared))
        h.end_headers()
        with contextlib.suppress(OSError):
            h.wfile.write(out)


@pytest.fixture
def proxy(http_git_server: HttpGitServer) -> Iterator[FaultProxy]:
    p = FaultProxy(http_git_server)
    yield p
    p.close()


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("SKILLSYNC_", "GITHUB_", "NEO4J_", "POLLING_", "MAX_SKILL")):
            monkeypatch.delenv(key)
    # generous while the remote is healthy (a loaded CI box); faulty phases lower it
    monkeypatch.setenv("SKILLSYNC_NETWORK_TIMEOUT", "5")
    monkeypatch.setenv("SKILLSYNC_LOCK_TIMEOUT", "5")


def once(url: str, state: Path, capfd: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["--once", "--repo", url, "--state-dir", str(state), *extra])
    return code, capfd.readouterr().err


def status(state: Path, capfd: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """`status --json`; log lines (JSON, one per line) may precede the document on stdout."""
    capfd.readouterr()
    assert main(["status", "--json", "--state-dir", str(state)]) == 0
    lines = capfd.readouterr().out.splitlines()
    start = lines.index("{")
    return dict(json.loads("\n".join(lines[start:])))


def intact(state: Path) -> str:
    releases = Releases(state)
    current = releases.current()
    assert current is not None, "no complete release behind current"
    assert verify_release(releases, current) == []
    return current


def deploy_first(repo: RepoBuilder, url: str, state: Path, capfd: Any) -> str:
    for name in ("alpha", "beta", "gamma"):
        repo.add_skill(name, description=f"{name} v1",
                       extra_files={"notes.md": f"{name}\n" * 300, "data.bin": os.urandom(3000)})
    repo.commit("v1")
    code, err = once(url, state, capfd)
    assert code == 0, err
    return intact(state)


def push_change(repo: RepoBuilder) -> str:
    repo.add_skill("alpha", description="alpha v2", extra_files={"more.bin": os.urandom(5000)})
    repo.add_skill("delta", description="delta, new")
    return repo.commit("v2")


# --- the remote misbehaves --------------------------------------------------------------------

NETWORK_FAULTS = {
    "down": r"refused|Connection|connect",
    "blackhole": r"timed out|time",
    "reset": r"reset|closed|IncompleteRead|Connection|broken|protocol|pack",
    "truncate": r"IncompleteRead|incomplete|truncat|closed|short|pack|Connection",
    "corrupt": r"checksum|corrupt|pack|zlib|invalid|delta|mismatch",
    "status:401": r"authentication refused \(401\)",
    "status:403": r"403",
    "status:404": r"404|not found|NotGitRepository",
    "status:500": r"500",
}


@pytest.mark.parametrize("fault", list(NETWORK_FAULTS))
def test_remote_fault_keeps_release_reports_and_recovers(
    fault: str, proxy: FaultProxy, repo: RepoBuilder, tmp_path: Path,
    capfd: pytest.CaptureFixture[str], clean_env: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = tmp_path / "state"
    url = proxy.url_for(repo)
    live = deploy_first(repo, url, state, capfd)
    head = push_change(repo)

    proxy.set(fault)
    monkeypatch.setenv("SKILLSYNC_NETWORK_TIMEOUT", "1")
    started = time.monotonic()
    code, err = once(url, state, capfd)
    took = time.monotonic() - started
    monkeypatch.setenv("SKILLSYNC_NETWORK_TIMEOUT", "5")
    assert code == 1, err
    assert "Traceback" not in err and err.startswith("skillsyncd: "), err
    assert re.search(NETWORK_FAULTS[fault], err, re.I), err
    assert f"127.0.0.1:{proxy.port}" in err  # the message names the remote
    # Liveness, not speed: the deadline is 1 s; only a sync that never gives up trips 120 s.
    print(f"{fault}: gave up after {took:.1f} s")
    assert took < 120, f"{fault}: a sync must give up in bounded time, took {took:.0f}s"
    if fault in ("reset", "truncate", "corrupt", "trickle"):
        assert proxy.packs_broken >= 1, "the fault must hit the pack, after a good probe"
    assert intact(state) == live
    doc = status(state, capfd)
    assert doc["current_release"] == live and doc["failure_streak"] >= 1
    assert doc["last_error"] and re.search(NETWORK_FAULTS[fault], doc["last_error"], re.I)

    proxy.set("pass")
    code, err = once(url, state, capfd)
    assert code == 0, err
    doc = status(state, capfd)
    assert doc["deployed_commit"] == head and doc["failure_streak"] == 0
    assert doc["last_error"] is None
    assert intact(state) != live


def test_trickling_remote_is_abandoned_in_bounded_time(
    proxy: FaultProxy, repo: RepoBuilder, tmp_path: Path, capfd: pytest.CaptureFixture[str],
    clean_env: None,
) -> None:
    state = tmp_path / "state"
    url = proxy.url_for(repo)
    live = deploy_first(repo, url, state, capfd)
    push_change(repo)
    proxy.set("trickle")
    env = _clean_env({"SKILLSYNC_NETWORK_TIMEOUT": "0.5"})
    proc = subprocess.Popen([SKILLSYNCD, "--once", "--repo", url, "--state-dir", str(state)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # the budget is 4 x 0.5 s; 15 s leaves room for start-up on a loaded machine and
        # is still far below the ~2 minutes this trickle needs to deliver the pack
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("a trickling remote held the sync past 4x its network timeout") from None
    finally:
        assert intact(state) == live
    assert proc.returncode == 1 and "timed out" in err and proxy.packs_broken >= 1


def test_dns_failure_names_the_host_and_recovers(
    repo: RepoBuilder, tmp_path: Path, capfd: pytest.CaptureFixture[str], clean_env: None
) -> None:
    state = tmp_path / "state"
    live = deploy_first(repo, str(repo.path), state, capfd)
    if not network_namespace_available():
        pytest.skip("needs `unshare -rn` (a network namespace) to keep the DNS query on this machine")
    done = run_once("https://skills.invalid/org/skills.git", state, offline=True)
    code, err = done.returncode, done.stderr
    assert code == 1 and "Traceback" not in err
    assert "skills.invalid" in err and "does not resolve (DNS" in err
    assert intact(state) == live
    assert "skills.invalid" in (status(state, capfd)["last_error"] or "")
    head = push_change(repo)
    code, err = once(str(repo.path), state, capfd)
    assert code == 0, err
    assert status(state, capfd)["deployed_commit"] == head


# --- state damaged on disk ------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["state-garbage", "state-deleted", "state-wrong-type",
                                    "current-deleted", "current-garbage", "current-outside",
                                    "current-incomplete", "mirror-deleted", "mirror-packs-truncated",
                                    "mirror-stale-lock", "orphaned-temp-files"])
def test_damaged_state_is_repaired_automatically(
    damage: str, repo: RepoBuilder, tmp_path: Path, capfd: pytest.CaptureFixture[str],
    clean_env: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = tmp_path / "state"
    published = tmp_path / "published"
    monkeypatch.setenv("SKILLSYNC_PUBLISH_MODE", "mirror")
    monkeypatch.setenv("SKILLSYNC_PUBLISH_DIR", str(published))
    url = str(repo.path)
    live = deploy_first(repo, url, state, capfd)
    cfg = load_config(flags={"repo": url, "state_dir": str(state)}, env=dict(os.environ))
    current = state / "current"
    if damage == "state-garbage":
        (state / "state.json").write_bytes(b"\x00{not json")
    elif damage == "state-deleted":
        (state / "state.json").unlink()
    elif damage == "state-wrong-type":
        (state / "state.json").write_text('["a list", 1]')
    elif damage == "current-deleted":
        current.unlink()
    elif damage == "current-garbage":
        current.unlink()
        current.symlink_to("releases/not-a-release")
    elif damage == "current-outside":
        current.unlink()
        current.symlink_to("/etc")
    elif damage == "current-incomplete":
        (state / "releases" / "20990101T000000Z-0123456789ab").mkdir()
        current.unlink()
        current.symlink_to("releases/20990101T000000Z-0123456789ab")
    elif damage == "mirror-deleted":
        shutil.rmtree(cfg.mirror_dir)
    elif damage == "mirror-packs-truncated":
        for pack in (cfg.mirror_dir / "objects" / "pack").glob("*.pack"):
            pack.write_bytes(pack.read_bytes()[:40])
    elif damage == "mirror-stale-lock":
        # what a fetch killed while updating its ref leaves behind (found by tests/chaos)
        (cfg.mirror_dir / "refs" / "skillsyncd").mkdir(parents=True, exist_ok=True)
        (cfg.mirror_dir / "refs" / "skillsyncd" / "fetched.lock").write_text("0" * 40 + "\n")
        (cfg.mirror_dir / "objects" / "pack" / "tmpab12cd34.pack").write_bytes(b"PACK\x00\x00")

    elif damage == "orphaned-temp-files":
        # what a kill inside atomic_write leaves (found by tests/chaos); another writer's
        # temp file (the Neo4j cursor, written outside the deploy lock) is not ours to remove
        for name in (".state.json.ab12cd34.tmp", ".published.json.zz_9yy8x.tmp",
                     ".neo4j-cursor.json.q1w2e3r4.tmp"):
            (state / name).write_text("{}")

    # `status` on the damaged state says what is (not) live, without crashing
    doc = status(state, capfd)
    if damage.startswith("current-"):
        assert doc["current_release"] is None
    else:
        assert doc["current_release"] == live

    # the next sync repairs: the same release (nothing changed upstream) is live again
    code, err = once(url, state, capfd)
    assert code == 0, err
    assert intact(state) == live
    assert os.readlink(current) == f"releases/{live}"
    assert verify_published(cfg, live) == []
    doc = status(state, capfd)
    assert doc["current_release"] == live and doc["failure_streak"] == 0
    assert json.loads((state / "state.json").read_text())["release"] == live

    # and it keeps converging when upstream moves
    head = push_change(repo)
    code, err = once(url, state, capfd)
    assert code == 0, err
    assert status(state, capfd)["deployed_commit"] == head
    assert not list((state / "releases").glob("20990101T000000Z-*"))
    assert not list(cfg.mirror_dir.rglob("*.lock"))
    temps = sorted(p.name for p in state.glob(".*.tmp"))
    assert temps == ([".neo4j-cursor.json.q1w2e3r4.tmp"] if damage == "orphaned-temp-files" else [])


# --- full and read-only disks, for real, in a user+mount namespace -----------------------------

NAMESPACE_DRIVER = r"""
import json, os, subprocess, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from gitserver import RepoBuilder
from skillsyncd.cli import main
from skillsyncd.release.releases import Releases
from skillsyncd.release.verify import verify_release
import io, contextlib

work, case = Path(sys.argv[2]), sys.argv[3]
state = work / "state"
state.mkdir()
out = {}

def sh(*args):
    subprocess.run(args, check=True)

def once():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["--once", "--repo", str(work / "origin"), "--state-dir", str(state)])
        except BaseException as exc:
            code, err = 99, io.StringIO(f"uncaught {type(exc).__name__}: {exc}")
    return code, err.getvalue()

def status():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(["status", "--json", "--state-dir", str(state)])
    return json.loads(buf.getvalue())

def intact():
    rel = Releases(state)
    cur = rel.current()
    return cur, (verify_release(rel, cur) if cur else ["no current"])

repo = RepoBuilder(work / "origin")
repo.add_skill("alpha", description="v1")
repo.commit("v1")
def fill(path):
    # every free byte of the filesystem (tmpfs: whole pages, then single bytes)
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 20, 4096, 1):
            try:
                while True:
                    f.write(b"x" * chunk)
            except OSError:
                pass

if case == "enospc":
    (state / "store").mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(state / "store"))
else:
    sh("mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(state))
out["first"] = once()
out["live"] = intact()
repo.add_skill("alpha", description="v2",
               extra_files={f"asset{i}.bin": os.urandom(100_000) for i in range(4)})
out["head"] = repo.commit("v2")
if case == "enospc":
    pass  # the mirror has room; store/ (256 KB) cannot hold the new skill version
elif case == "full":
    fill(state / "filler")  # the whole state volume: the fetch, and state.json, fail
else:
    sh("mount", "-o", "remount,ro", str(state))
out["faulty"] = once()
out["after_fault"] = intact()
out["status_fault"] = status()
if case == "enospc":
    sh("mount", "-o", "remount,size=32m", str(state / "store"))
elif case == "full":
    (state / "filler").unlink()
else:
    sh("mount", "-o", "remount,rw", str(state))
out["recovered"] = once()
out["after_recovery"] = intact()
out["status_recovered"] = status()
out["leftovers"] = sorted(p.name for p in (state / "releases").iterdir()
                          if p.is_dir() and not (state / "releases" / (p.name + ".json")).exists())
work = state / "store" / ".work"
out["leftovers"] += sorted(p.name for p in work.iterdir()) if work.is_dir() else []
print("RESULT " + json.dumps(out))
"""


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True, timeout=10)
    return probe.returncode == 0


needs_namespace = pytest.mark.skipif(
    not _unshare_works(), reason="needs unprivileged user+mount namespaces (unshare -Urm)")


def _in_namespace(case: str, tmp_path: Path) -> dict[str, Any]:
    env = _clean_env({})
    proc = subprocess.run(["unshare", "-Urm", sys.executable, "-c", NAMESPACE_DRIVER,
                           str(ROOT / "tests"), str(tmp_path), case],
                          capture_output=True, text=True, timeout=120, env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(json.loads(lines[-1][len("RESULT "):]))


@needs_namespace
@pytest.mark.parametrize("case", ["enospc", "full", "read-only"])
def test_disk_full_or_read_only_state_dir(case: str, tmp_path: Path) -> None:
    out = _in_namespace(case, tmp_path)
    assert out["first"][0] == 0, out["first"]
    live, problems = out["live"]
    assert live and problems == []
    code, err = out["faulty"]
    assert code == 1, err  # a clean failure, not an uncaught exception (99)
    assert "Traceback" not in err and err.startswith("skillsyncd: ")
    words = "Read-only file system" if case == "read-only" else "No space left on device"
    assert words in err, err
    if case != "full":  # a fetch's own disk error is source/'s message (no hint yet)
        assert ("writable" if case == "read-only" else "free space") in err
    assert out["after_fault"] == [live, []], "the live release must keep serving"
    fault = out["status_fault"]
    assert fault["current_release"] == live
    if case == "enospc":  # state.json is writable: the failure is on record
        assert words in (fault["last_error"] or "") and fault["last_error_source"] == "state.json"
        assert fault["failure_streak"] >= 1
        # the line names the full filesystem (store/ is a volume of its own) and its free space
        assert f"filesystem {tmp_path / 'state' / 'store'} is full" in err, err
        assert " free)" in err, err
    else:  # state.json could not be written, yet status says what is wrong, and that it derived it
        disk = fault["state_dir_health"]
        assert disk["writable"] is False and words in disk["problem"], disk
        assert (fault["last_error"] or "").startswith("derived, not on record: "), fault
        assert words in fault["last_error"] and fault.get("last_error_source") == "derived", fault
        if case == "full":  # the lock was taken after state.json was written: one failure not on record
            assert "took the lock at" in fault["last_error"] and fault["failure_streak"] == 1, fault
    code, err = out["recovered"]
    assert code == 0, err
    new, problems = out["after_recovery"]
    assert new != live and problems == []
    assert out["status_recovered"]["deployed_commit"] == out["head"]
    assert out["status_recovered"]["failure_streak"] == 0
    assert out["leftovers"] == []  # the half-written skill version was removed


# --- the daemon under faults ------------------------------------------------------------------


def test_daemon_reports_faults_on_readyz_and_status_and_recovers(
    proxy: FaultProxy, repo: RepoBuilder, tmp_path: Path
) -> None:
    repo.add_skill("alpha", description="first")
    first = repo.commit("v1")
    d = Daemon([SKILLSYNCD, "run", "--repo", proxy.url_for(repo), "--state-dir",
                str(tmp_path / "state"), "--http-bind", "127.0.0.1:0"],
               _clean_env({"SKILLSYNC_INTERVAL": "0.2", "SKILLSYNC_BACKOFF_MAX": "0.4",
                           "SKILLSYNC_NETWORK_TIMEOUT": "3", "SKILLSYNC_READINESS_STALENESS": "1.5"}))
    try:
        d.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("commit") == first)
        live = Releases(tmp_path / "state").current()
        # The loop records the success (what /readyz reads) after the thread logs sync_finished.
        wait_for(lambda: d.get("/readyz")[0] == 200, timeout=10, what="/readyz 200 after the deploy")
        repo.add_skill("alpha", description="second")
        head = repo.commit("v2")
        for fault in ("corrupt", "status:500", "down"):
            proxy.set(fault)
            mark = len(d.events)
            d.wait_event(lambda e: e.get("event") == "next_sync" and e.get("result") == "failed",
                         start=mark, timeout=15)
            assert Releases(tmp_path / "state").current() == live
            doc = d.status()
            assert doc["failure_streak"] >= 1 and doc["last_error"], doc
            assert doc["current_release"] == live and doc["poller_status"] != "stopping"
            assert d.proc.poll() is None, "the daemon keeps running"
        deadline = time.monotonic() + 10
        code, body = d.get("/readyz")
        while code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            code, body = d.get("/readyz")
        assert code == 503 and "no successful sync" in json.loads(body)["reason"]
        assert d.get("/healthz")[0] == 200  # alive, just not fresh

        proxy.set("pass")
        d.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("commit") == head
                     and e.get("status") == "deployed", timeout=15)
        deadline = time.monotonic() + 5
        while d.get("/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert d.get("/readyz")[0] == 200
        doc = d.status()
        assert doc["failure_streak"] == 0 and doc["last_deployed_sha"] == head
        assert d.stop() == 0
    finally:
        d.kill()
