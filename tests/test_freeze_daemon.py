"""The freeze on the real daemon: POST /freeze and /unfreeze with the token, a restart in
between, /status, /metrics and the dashboard, and a freeze that ends by itself at ``until``."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from gitserver import HttpGitServer, RepoBuilder
from prometheus_client.parser import text_string_to_metric_families
from test_daemon import SKILLSYNCD, Daemon, _clean_env, _deployed

from skillsyncd.release.releases import Releases

TOKEN = "http-canary-token-freeze-5Qx"
JSON = {"Content-Type": "application/json"}
AUTH = {**JSON, "Authorization": f"Bearer {TOKEN}"}


def _start(url: str, state: Path) -> Daemon:
    return Daemon([SKILLSYNCD, "run", "--repo", url, "--state-dir", str(state), "--http-bind",
                   "127.0.0.1:0"], _clean_env({"SKILLSYNC_INTERVAL": "60",
                                               "SKILLSYNC_HTTP_TOKEN": TOKEN}))


def _frozen(d: Daemon, commit: str, start: int = 0) -> None:
    d.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("status") == "frozen"
                 and e.get("commit") == commit, timeout=30, start=start)


def _metric(d: Daemon, name: str) -> float:
    code, text = d.get("/metrics")
    assert code == 200
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not in /metrics")


def test_freeze_over_http_holds_across_a_restart_and_unfreeze_deploys(
        http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path) -> None:
    url, state = http_git_server.url_for(repo), tmp_path / "state"
    repo.add_skill("alpha", description="v1")
    first = repo.commit("v1")
    d = _start(url, state)
    try:
        _deployed(d, first, timeout=30)
        live = Releases(state).current()
        assert d.post("/freeze", b"{}", JSON)[0] == 401  # the token, even on loopback
        assert d.post("/unfreeze", b"", JSON)[0] == 401
        code, body = d.post("/freeze", json.dumps({"until": "whenever"}).encode(), AUTH)
        assert code == 400 and "not a time" in body["error"]
        code, body = d.post("/freeze", json.dumps({"reason": "change window"}).encode(), AUTH)
        assert code == 200 and body["freeze"]["by"] == "http" and body["freeze"]["until"] is None

        repo.add_skill("beta", description="new")
        second = repo.commit("v2")
        mark = len(d.events)
        d.proc.send_signal(signal.SIGHUP)
        _frozen(d, second, mark)
        status = d.status()
        assert status["freeze"]["reason"] == "change window"
        assert status["waiting"]["commit"] == second and status["waiting"]["added"] == ["beta"]
        assert status["current_release"] == live and status["last_deployed_sha"] == first
        assert _metric(d, "skillsync_frozen") == 1 and _metric(d, "skillsync_waiting_skills") == 1
        code, page = d.get("/")
        assert code == 200 and "Deployments frozen" in page and "change window" in page
        assert "<code>beta</code>" in page
        assert d.stop() == 0
    finally:
        d.kill()

    d = _start(url, state)  # a restart (a redeploy keeps the state dir): still frozen
    try:
        _frozen(d, second)
        assert Releases(state).current() == live and d.status()["freeze"]["by"] == "http"
        mark = len(d.events)
        code, body = d.post("/unfreeze", b"", AUTH)
        assert code == 200 and body["lifted"]["reason"] == "change window"
        assert body["sync_triggered"] is True
        _deployed(d, second, timeout=30, start=mark)
        status = d.status()
        assert status["freeze"] is None and status["waiting"] is None
        assert _metric(d, "skillsync_frozen") == 0
        assert "Deployments frozen" not in d.get("/")[1]
        assert d.stop() == 0
    finally:
        d.kill()
    assert TOKEN not in "".join(d.lines)


def test_the_daemon_deploys_what_waits_when_the_freeze_ends_by_itself(
        http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path) -> None:
    url, state = http_git_server.url_for(repo), tmp_path / "state"
    repo.add_skill("alpha", description="v1")
    first = repo.commit("v1")
    d = _start(url, state)
    try:
        _deployed(d, first, timeout=30)
        code, body = d.post("/freeze", json.dumps({"until": "4s"}).encode(), AUTH)
        assert code == 200 and body["freeze"]["until"]
        assert _metric(d, "skillsync_freeze_until_timestamp_seconds") > 0
        repo.add_skill("alpha", description="v2")
        second = repo.commit("v2")
        mark = len(d.events)
        d.proc.send_signal(signal.SIGHUP)
        _frozen(d, second, mark)
        # no poll is due for 60 s: the freeze's own end triggers the sync
        d.wait_event(lambda e: e.get("event") == "trigger_received"
                     and e.get("trigger") == "unfreeze", timeout=30, start=mark)
        _deployed(d, second, timeout=30, start=mark)
        d.wait_event(lambda e: e.get("event") == "freeze_ended" and e.get("how") == "expired",
                     start=mark)
        assert d.status()["freeze"] is None
        assert d.stop() == 0
    finally:
        d.kill()
