"""The daemon as a real process: triggers, endpoints, shutdown, health rollback, backoff.

Each test starts ``skillsyncd run`` (or the same CLI with a stall patched in,
the way tests/crashpoint.py does) against a repository served on 127.0.0.1,
reads its JSON log lines, talks to its HTTP port (bound to port 0; the daemon
logs the real one), and always kills it at teardown.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for
from prometheus_client.parser import text_string_to_metric_families

from skillsyncd.daemon.status import FIELDS
from skillsyncd.daemon.webhook import sign
from skillsyncd.release.releases import Releases

SKILLSYNCD = str(Path(sys.executable).parent / "skillsyncd")
SECRET = "webhook-secret-for-tests"
LIVENESS = 30.0  # seconds: a bound that only a hang trips, never a speed target

# Runs the real CLI with a pause inside staging, after the first file is written:
# argv = STALL_SECONDS MARKER_FILE skillsyncd-args...
STALL = """
import sys, time
from pathlib import Path
import skillsyncd.release.store as store
from skillsyncd.cli import main
seconds, marker = float(sys.argv[1]), Path(sys.argv[2])
real = store.write_new
calls = {"n": 0}
def slow(*a, **k):
    out = real(*a, **k)
    calls["n"] += 1
    if calls["n"] == 1 and not marker.exists():
        marker.write_text("staging")
        time.sleep(seconds)
    return out
store.write_new = slow
sys.exit(main(sys.argv[3:]))
"""


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    prefixes = ("SKILLSYNC_", "GITHUB_", "POLLING_", "NEO4J_", "MAX_SKILL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, "SKILLSYNC_JITTER": "0", **extra}


class Daemon:
    """One daemon process and the JSON events it printed."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        started = self.wait_event(lambda e: e.get("event") == "daemon_started", timeout=15)
        self.base = f"http://{started['http']}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.events.append(event)

    def wait_event(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 10,
                   start: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events[start:]:
                if pred(event):
                    return event
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no matching event within {timeout}s; log:\n{''.join(self.lines)[-4000:]}")

    def finished(self, status: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == "sync_finished"
                and (status is None or e.get("status") == status)]

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        assert code == 200, body
        return dict(json.loads(body))

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(self.base + path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw or b"{}")
            except ValueError:
                return exc.code, {"raw": raw.decode(errors="replace")}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(repo_url: str, state: Path | None = None, env: dict[str, str] | None = None,
              stall: tuple[float, Path] | None = None) -> Daemon:
        args = ["run", "--repo", repo_url, "--state-dir", str(state or tmp_path / "state"),
                "--http-bind", "127.0.0.1:0"]
        argv = ([sys.executable, "-c", STALL, str(stall[0]), str(stall[1]), *args]
                if stall else [SKILLSYNCD, *args])
        grace = {"SKILLSYNC_STOP_GRACE": "1"} if stall else {}
        d = Daemon(argv, _clean_env({"SKILLSYNC_INTERVAL": "60", **grace, **(env or {})}))
        started.append(d)
        return d

    yield start
    for d in started:
        d.kill()


def _deployed(d: Daemon, commit: str, timeout: float = 10, start: int = 0) -> dict[str, Any]:
    return d.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("status") == "deployed"
                        and e.get("commit") == commit, timeout=timeout, start=start)


def _webhook_lines(d: Daemon, count: int, start: int) -> list[dict[str, Any]]:
    """Wait until ``count`` webhook requests since event ``start`` have been answered."""
    def lines() -> list[dict[str, Any]]:
        return [e for e in d.events[start:] if e.get("event") == "webhook"]

    d.wait_event(lambda e: len(lines()) >= count, start=start)
    return lines()


def _triggers(d: Daemon, start: int) -> list[dict[str, Any]]:
    return [e for e in d.events[start:] if e.get("event") == "trigger_received"]


class Health:
    """A tiny HTTP health endpoint whose answer the test sets."""

    def __init__(self) -> None:
        self.code = 200
        self.sick_when: Callable[[], bool] | None = None  # answer 503 while this says so
        self.hits = 0
        self.posts: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                sick = outer.sick_when is not None and outer.sick_when()
                self.send_response(503 if sick else outer.code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.posts.append((dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def health() -> Iterator[Health]:
    h = Health()
    yield h
    h.close()


# --- tests ---------------------------------------------------------------------------


def test_interval_sync_picks_up_a_push_and_endpoints(
    start_daemon: Callable[..., Daemon], http_git_server: Any, repo: Any
) -> None:
    repo.add_skill("alpha", description="first")
    first = repo.commit("v1")
    # Staleness well above the interval: on a loaded machine one 0.3 s poll can take
    # longer than the default 5 x 0.3 s, and /readyz would rightly say "stale".
    d = start_daemon(http_git_server.url_for(repo), env={"SKILLSYNC_INTERVAL": "0.3",
                                                         "SKILLSYNC_READINESS_STALENESS": "60"})
    mark = len(d.events)
    _deployed(d, first)
    # sync_finished comes from the sync thread; the loop records the success (what
    # /readyz reads) just before it logs next_sync.
    d.wait_event(lambda e: e.get("event") == "next_sync" and e.get("result") == "deployed",
                 start=mark)
    started = next(e for e in d.events if e.get("event") == "daemon_started")
    assert "readback_check" in started["checks"] and "function" not in started["checks"], started
    assert d.get("/healthz")[0] == 200
    code, text = d.get("/readyz")
    assert code == 200, text
    ready = json.loads(text)
    # the age of the last success and the limit it is held to, each named for what it is
    assert ready["staleness_limit_seconds"] == 60
    assert 0 <= ready["last_success_age_seconds"] < ready["staleness_limit_seconds"]
    repo.add_skill("beta", description="second")
    second = repo.commit("v2")
    hit = _deployed(d, second, timeout=5)
    assert hit["commit"] == second

    # The log line is written inside the sync thread; the loop records the outcome for
    # /status a moment later, when the thread hands it back.
    wait_for(lambda: (d.status()["last_deployment"] or {}).get("commit") == second, timeout=10,
             what="/status to show the second deployment")
    status = d.status()
    assert tuple(status) == FIELDS
    assert status["last_deployed_sha"] == second
    assert status["skill_count"] == 2
    assert status["poller_status"] in {"idle", "syncing"}
    assert status["last_deployment"]["commit"] == second
    assert status["webhook_enabled"] is False and status["webhook_last_received"] is None
    assert status["ready"] is True and status["behind_upstream"] is False

    code, text = d.get("/metrics")
    assert code == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    assert samples[("skillsync_syncs_total", (("result", "deployed"),))] >= 2
    assert samples[("skillsync_fetches_total", ())] >= 2
    assert samples[("skillsync_skills_live", ())] == 2
    assert samples[("skillsync_failure_streak", ())] == 0
    assert samples[("skillsync_last_success_timestamp_seconds", ())] > time.time() - 60
    live = [s for f in families.values() for s in f.samples
            if s.name == "skillsync_deployed_info" and s.value == 1]
    assert live and live[0].labels["commit"] == second
    assert "skillsync_sync_duration_seconds" in families
    assert "_created" not in text
    documented = (Path(__file__).parent.parent / "docs" / "daemon.md").read_text()
    for name in families:  # every family served is in the metrics table
        shown = name + ("_total" if families[name].type == "counter" else "")
        assert f"`{shown}`" in documented or f"`{name}_info`" in documented, name
    assert d.stop() == 0


def test_webhook_triggers_fast_and_refuses_bad_requests(
    start_daemon: Callable[..., Daemon], http_git_server: Any, repo: Any
) -> None:
    repo.add_skill("alpha", description="first")
    first = repo.commit("v1")
    d = start_daemon(http_git_server.url_for(repo),
                     env={"GITHUB_WEBHOOK_SECRET": SECRET, "SKILLSYNC_WEBHOOK_MAX_BYTES": "4096"})
    _deployed(d, first)
    repo.add_skill("alpha", description="changed")
    second = repo.commit("v2")
    syncs_before = len(d.finished())

    def push(ref: str = "refs/heads/main", delivery: str = "d-1",
             signature: str | None = "ok", body: bytes | None = None) -> tuple[int, dict[str, Any]]:
        body = body if body is not None else json.dumps({"ref": ref, "after": "0" * 40}).encode()
        headers = {"Content-Type": "application/json", "X-GitHub-Event": "push",
                   "X-GitHub-Delivery": delivery}
        if signature == "ok":
            headers["X-Hub-Signature-256"] = sign(SECRET, body)
        elif signature is not None:
            headers["X-Hub-Signature-256"] = signature
        return d.post("/webhook/github", body, headers)

    mark = len(d.events)
    assert push(signature=None)[0] == 401
    assert push(signature=sign("wrong", b"x"))[0] == 401
    assert push(body=b"{" + b" " * 8000 + b"}")[0] == 413
    assert push(ref="refs/heads/other", delivery="other")[0] == 202
    # The handler asks for a sync (logging trigger_received) before it logs its
    # "webhook" line: once all four lines are in, a trigger would be in the log already.
    _webhook_lines(d, 4, mark)
    assert _triggers(d, mark) == [], "refused webhooks must not sync"
    assert len(d.finished()) == syncs_before
    assert d.status()["last_deployed_sha"] == first

    mark = len(d.events)
    sent = time.monotonic()
    code, body = push(delivery="good")
    assert (code, body["result"]) == (202, "triggered")
    # The 1 s target is make bench's (bench/run.py); here a generous bound only catches a hang.
    _deployed(d, second, timeout=LIVENESS, start=mark)
    print(f"webhook to deployed: {time.monotonic() - sent:.3f} s")
    assert d.status()["webhook_last_received"] is not None

    syncs = len(d.finished())
    mark = len(d.events)
    assert push(delivery="good")[0] == 409
    assert _webhook_lines(d, 1, mark)[0]["result"] == "replayed"
    assert _triggers(d, mark) == [], "a replayed delivery must not sync"
    assert len(d.finished()) == syncs
    text = d.get("/metrics")[1]
    webhooks = {s.labels["result"]: s.value for f in text_string_to_metric_families(text)
                if f.name == "skillsync_webhooks" for s in f.samples if s.name.endswith("_total")}
    assert webhooks == {"unauthorized": 2, "too_large": 1, "ignored": 1, "triggered": 1,
                        "replayed": 1}


def test_sighup_triggers_and_webhook_is_off_without_secret(
    start_daemon: Callable[..., Daemon], http_git_server: Any, repo: Any
) -> None:
    repo.add_skill("alpha", description="first")
    first = repo.commit("v1")
    d = start_daemon(http_git_server.url_for(repo))
    _deployed(d, first)
    body = b'{"ref": "refs/heads/main"}'
    code, _ = d.post("/webhook/github", body, {"X-Hub-Signature-256": sign("", body),
                                                "X-GitHub-Event": "push",
                                                "X-GitHub-Delivery": "x"})
    assert code == 404
    repo.add_skill("alpha", description="changed")
    second = repo.commit("v2")
    mark = len(d.events)
    d.proc.send_signal(signal.SIGHUP)
    hit = _deployed(d, second, timeout=3, start=mark)
    assert hit["commit"] == second
    assert d.stop() == 0


def test_sigterm_mid_staging_abandons_cleanly(
    start_daemon: Callable[..., Daemon], repo: Any, tmp_path: Path
) -> None:
    repo.add_skill("alpha", description="first")
    first = repo.commit("v1")
    state = tmp_path / "state"
    d = start_daemon(str(repo.path), state=state)
    _deployed(d, first)
    assert d.stop() == 0
    live = Releases(state).current()

    repo.add_skill("alpha", description="second")
    repo.add_skill("beta", description="new")
    repo.commit("v2")
    marker = tmp_path / "stalled"
    d = start_daemon(str(repo.path), state=state, stall=(60.0, marker))
    wait_for(marker.exists, timeout=10, what="the sync to stall at its marker")
    sent = time.monotonic()
    assert d.stop() == 0
    # Liveness, not speed: grace is 1 s here, the stalled sync would hold 60 s without it.
    assert time.monotonic() - sent < 30
    assert any(e.get("event") == "sync_abandoned" for e in d.events)
    releases = Releases(state)
    assert releases.current() == live and releases.complete() == [live]
    leftovers = [p.name for p in (state / "store" / ".work").iterdir() if p.name.startswith("new-")]
    assert leftovers, "the abandoned sync should have left a half-written skill version"

    d = start_daemon(str(repo.path), state=state)
    d.wait_event(lambda e: e.get("event") == "recovered_leftovers")
    done = d.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("status") == "deployed")
    assert Releases(state).current() == done["release"]
    assert not any((state / "store" / ".work" / name).exists() for name in leftovers)


def test_sigterm_waits_for_a_short_sync_to_flip(
    start_daemon: Callable[..., Daemon], repo: Any, tmp_path: Path
) -> None:
    repo.add_skill("alpha", description="first")
    head = repo.commit("v1")
    marker = tmp_path / "stalled"
    d = start_daemon(str(repo.path), stall=(0.6, marker))
    wait_for(marker.exists, timeout=10, what="the sync to stall at its marker")
    d.proc.send_signal(signal.SIGTERM)
    assert d.stop() == 0
    assert not any(e.get("event") == "sync_abandoned" for e in d.events)
    assert d.finished("deployed") and d.finished("deployed")[0]["commit"] == head
    releases = Releases(tmp_path / "state")
    current = releases.current()
    assert current is not None and releases.manifest(current).to_dict()["commit"] == head


def test_sigterm_during_a_hung_fetch_exits_with_current_intact(
    start_daemon: Callable[..., Daemon], repo: Any, tmp_path: Path
) -> None:
    repo.add_skill("alpha", description="first")
    first = repo.commit("v1")
    state = tmp_path / "state"
    d = start_daemon(str(repo.path), state=state)
    _deployed(d, first)
    assert d.stop() == 0
    live = Releases(state).current()
    # A black hole: accepts, never answers. Its accept() is the proof the fetch hangs in it.
    with socket.create_server(("127.0.0.1", 0)) as hole:
        hole.settimeout(30)
        # stall=0: no pause, only the 1 s stop grace of the STALL launcher
        d = start_daemon(f"http://127.0.0.1:{hole.getsockname()[1]}/r.git", state=state,
                         stall=(0.0, tmp_path / "unused"))
        conn, _ = hole.accept()
        with conn:
            sent = time.monotonic()
            assert d.stop() == 0
    assert time.monotonic() - sent < 5
    assert any(e.get("event") == "sync_abandoned" for e in d.events)
    assert Releases(state).current() == live


def test_failing_health_url_rolls_back_and_is_not_retried(
    start_daemon: Callable[..., Daemon], repo: Any, health: Health, tmp_path: Path
) -> None:
    repo.add_skill("alpha", description="first")
    first = repo.commit("v1")
    state = tmp_path / "state"
    d = start_daemon(str(repo.path), state=state, env={
        "SKILLSYNC_INTERVAL": "0.3", "SKILLSYNC_HEALTH_URL": health.url + "/healthz",
        "SKILLSYNC_HEALTH_RETRIES": "2", "SKILLSYNC_HEALTH_TIMEOUT": "1"})
    good = _deployed(d, first)["release"]

    def breaks() -> bool:  # healthy before the flip, sick once the breaking skill is live
        try:
            return "breaks" in (state / "current" / "alpha" / "SKILL.md").read_text()
        except OSError:
            return False

    health.sick_when = breaks
    repo.add_skill("alpha", description="breaks the gateway")
    bad = repo.commit("v2")
    rolled = d.wait_event(lambda e: e.get("event") == "sync_finished"
                          and e.get("status") == "rolled_back", timeout=10)
    assert rolled["commit"] == bad
    assert Releases(state).current() == good
    health.sick_when = None
    hits = health.hits
    mark = len(d.events)
    d.wait_event(lambda e: e.get("event") == "skipped_bad_commit", start=mark)
    d.wait_event(lambda e: e.get("event") == "skipped_bad_commit", start=len(d.events))
    assert health.hits == hits, "the bad commit must not be deployed (nor checked) again"
    assert Releases(state).current() == good
    status = d.status()
    assert status["behind_upstream"] is True and status["upstream_commit"] == bad
    assert "health" in status["behind_reason"]
    assert status["last_deployment"]["status"] == "rolled_back"

    repo.add_skill("alpha", description="fixed")
    fixed = repo.commit("v3")
    _deployed(d, fixed, start=mark)
    assert d.status()["behind_upstream"] is False


def test_manual_rollback_is_not_undone_by_the_daemon(
    start_daemon: Callable[..., Daemon], repo: Any, tmp_path: Path
) -> None:
    repo.add_skill("alpha", description="first")
    first = repo.commit("v1")
    state = tmp_path / "state"
    d = start_daemon(str(repo.path), state=state, env={"SKILLSYNC_INTERVAL": "0.3"})
    v1 = _deployed(d, first)["release"]
    repo.add_skill("alpha", description="second")
    second = repo.commit("v2")
    _deployed(d, second)
    # --to: two releases made within one second do not sort by time (reported to core)
    done = subprocess.run([SKILLSYNCD, "rollback", "--to", v1, "--state-dir", str(state),
                           "--repo", str(repo.path)],
                          env=_clean_env({}), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert Releases(state).current() == v1
    mark = len(d.events)
    d.wait_event(lambda e: e.get("event") == "skipped_bad_commit", start=mark)
    d.wait_event(lambda e: e.get("event") == "skipped_bad_commit", start=len(d.events))
    assert Releases(state).current() == v1
    status = d.status()
    assert status["last_deployed_sha"] == first and status["upstream_commit"] == second
    assert status["behind_upstream"] is True and "manual rollback" in status["behind_reason"]


def test_backoff_grows_then_resets(
    start_daemon: Callable[..., Daemon], repo: Any, tmp_path: Path
) -> None:
    repo.add_skill("alpha", description="first")
    head = repo.commit("v1")
    link = tmp_path / "repo-link"  # missing at first: every sync fails
    d = start_daemon(str(link), env={"SKILLSYNC_INTERVAL": "0.1", "SKILLSYNC_BACKOFF_MAX": "0.8"})
    delays: list[float] = []
    start = 0
    while len(delays) < 4:
        e = d.wait_event(lambda e: e.get("event") == "next_sync", start=start)
        start = d.events.index(e) + 1
        delays.append(e["delay"])
    assert delays == [0.2, 0.4, 0.8, 0.8]
    text = d.get("/metrics")[1]
    streak = [s.value for f in text_string_to_metric_families(text)
              if f.name == "skillsync_failure_streak" for s in f.samples]
    assert streak and streak[0] >= 4
    assert d.status()["poller_status"] in {"backing_off", "syncing"}
    link.symlink_to(repo.path)
    _deployed(d, head, timeout=5)
    e = d.wait_event(lambda e: e.get("event") == "next_sync" and e.get("result") == "deployed")
    assert e["delay"] == 0.1 and e["failure_streak"] == 0


def test_hooks_run_after_publish(
    start_daemon: Callable[..., Daemon], repo: Any, health: Health, tmp_path: Path
) -> None:
    out = tmp_path / "hook.json"
    script = ("import json, os, sys; json.dump({k: v for k, v in os.environ.items() "
              "if k.startswith('SKILLSYNC_')}, open(sys.argv[1], 'w'))")
    repo.add_skill("alpha", description="first")
    head = repo.commit("v1")
    d = start_daemon(str(repo.path), env={
        "SKILLSYNC_HOOK_COMMAND": f"{sys.executable} -c \"{script}\" {out}",
        "SKILLSYNC_HOOK_URL": health.url + "/deployed"})
    release = _deployed(d, head)["release"]
    d.wait_event(lambda e: e.get("event") == "hook_done" and e.get("hook") == "url")
    env = json.loads(out.read_text())
    assert env["SKILLSYNC_COMMIT"] == head and env["SKILLSYNC_RELEASE"] == release
    headers, body = health.posts[0]
    assert json.loads(body)["release"] == release and headers["Idempotency-Key"] == release
    assert d.stop() == 0
