"""Sync windows on the real daemon process: POST /sync?override=window with the token, a
restart in between, and what /status, /metrics and the dashboard show.

The window here is in effect whatever the host's clock says (a start every minute, each
lasting an hour), so nothing depends on wall time; the window's end is driven by a fake
clock in test_windows_daemon.py.
"""

from __future__ import annotations

import signal
from pathlib import Path

from gitserver import HttpGitServer, RepoBuilder
from test_daemon import SKILLSYNCD, Daemon, _clean_env, _deployed
from test_freeze_daemon import _frozen, _metric

from skillsyncd.audit.events import Frozen
from skillsyncd.audit.journal import Journal

TOKEN = "http-canary-token-window-8Kp"
AUTH = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
ALWAYS = '[{"name": "always", "kind": "deny", "schedule": "* * * * *", "duration": "1h"}]'


def _start(url: str, state: Path, windows: str | None) -> Daemon:
    env = {"SKILLSYNC_INTERVAL": "60", "SKILLSYNC_HTTP_TOKEN": TOKEN}
    if windows:
        env["SKILLSYNC_SYNC_WINDOWS"] = windows
    return Daemon([SKILLSYNCD, "run", "--repo", url, "--state-dir", str(state), "--http-bind",
                   "127.0.0.1:0"], _clean_env(env))


def test_a_closed_window_holds_across_a_restart_and_the_http_override_deploys(
        http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path) -> None:
    url, state = http_git_server.url_for(repo), tmp_path / "state"
    repo.add_skill("alpha", description="v1")
    first = repo.commit("v1")
    d = _start(url, state, None)
    try:
        _deployed(d, first, timeout=30)
        assert d.status()["sync_window"] is None and _metric(d, "skillsync_sync_window_open") == 1
        assert d.stop() == 0
    finally:
        d.kill()

    repo.add_skill("beta", description="new")
    second = repo.commit("v2")
    d = _start(url, state, ALWAYS)  # a redeploy that sets the windows
    try:
        _frozen(d, second)
        status = d.status()
        assert status["sync_window"]["open"] is False
        assert status["sync_window"]["active"] == ["always"]
        assert status["waiting"]["commit"] == second and status["waiting"]["window"] == "always"
        assert status["last_deployed_sha"] == first
        assert _metric(d, "skillsync_sync_window_open") == 0
        code, page = d.get("/")
        assert code == 200 and "Sync windows" in page and "<code>* * * * *</code>" in page
        mark = len(d.events)
        d.proc.send_signal(signal.SIGHUP)  # a poll of the same head: still waiting, no new event
        d.wait_event(lambda e: e.get("event") == "still_frozen", timeout=30, start=mark)

        assert d.post("/sync?override=window", b"", {})[0] == 401  # the token, even on loopback
        code, body = d.post("/sync?override=everything", b"", AUTH)
        assert code == 400 and "override=window" in body["error"]
        mark = len(d.events)
        code, body = d.post("/sync?override=window", b"", AUTH)
        assert code == 200 and body == {"sync_triggered": True, "window_override": True}
        _deployed(d, second, timeout=30, start=mark)
        d.wait_event(lambda e: e.get("event") == "window_overridden", start=mark)
        assert d.status()["waiting"] is None and d.status()["sync_window"]["open"] is False
        assert d.stop() == 0
    finally:
        d.kill()
    assert TOKEN not in "".join(d.lines)
    frozen = [e for e in Journal(state / "journal.jsonl").read() if isinstance(e, Frozen)]
    assert [(e.commit, e.window) for e in frozen] == [(second, "always")]  # one per commit
