"""Sync windows on the daemon's own loop, in process, with a fake clock injected.

A real git server, the real Syncer (journal, publisher, checks) and the real
``Daemon.run`` loop; only the wall clock is the test's. A deny window in effect
defers a pushed commit (journalled as ``frozen``, naming the window); when the
clock reaches the window's end the loop syncs by itself (trigger ``window``) and
the waiting commit goes live: the bug of argo-cd#21692 is not here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from gitserver import HttpGitServer, RepoBuilder
from polling import wait_for
from structlog.testing import capture_logs

from skillsyncd.audit.events import Frozen, decode
from skillsyncd.audit.history import render_line
from skillsyncd.audit.journal import Journal
from skillsyncd.config import Config, load_config
from skillsyncd.daemon.hooks import HookRunner
from skillsyncd.daemon.loop import Daemon
from skillsyncd.daemon.metrics import Metrics
from skillsyncd.daemon.status import disk_view, document
from skillsyncd.notify.alerts import Book, Settings, decide
from skillsyncd.release.releases import Releases
from skillsyncd.sync.assembly import build_syncer
from skillsyncd.sync.freeze import set_freeze
from skillsyncd.sync.ledger import save_state
from skillsyncd.sync.state import load_state

SKILLSYNCD = str(Path(sys.executable).parent / "skillsyncd")
NIGHT = '[{"name": "night", "kind": "deny", "schedule": "0 22 * * *", "duration": "8h"}]'


def _env() -> dict[str, str]:
    prefixes = ("SKILLSYNC_", "GITHUB_", "POLLING_", "NEO4J_", "MAX_SKILL")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


class FakeClock:
    """The wall clock the daemon and its Syncer read; moves only when the test says."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def unix(self) -> float:
        return self.at.timestamp()


class LoopThread:
    """``Daemon.run`` on an event loop of its own thread; the test talks to it thread-safely."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(daemon.run(),),
                                       name="daemon-loop", daemon=True)
        self.thread.start()

    def call(self, fn: object, *args: object) -> None:
        self.loop.call_soon_threadsafe(fn, *args)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.call(self.daemon.stop)
        self.thread.join(30)
        assert not self.thread.is_alive(), "the loop did not stop"
        self.loop.close()


@pytest.fixture
def setup(http_git_server: HttpGitServer, repo: RepoBuilder,
          tmp_path: Path) -> Iterator[tuple[Config, FakeClock, Daemon, LoopThread]]:
    cfg = load_config({"repo": http_git_server.url_for(repo), "state_dir": str(tmp_path / "state"),
                       "interval": 3600.0, "http_bind": "127.0.0.1:0"},
                      env={"SKILLSYNC_SYNC_WINDOWS": NIGHT})
    clock = FakeClock(datetime(2026, 1, 14, 21, 0, tzinfo=UTC))  # an hour before the night
    repo.add_skill("alpha", description="v1")
    repo.commit("v1")
    syncer = build_syncer(cfg)
    syncer.clock = clock.now
    daemon = Daemon(cfg, syncer, Metrics(), HookRunner(None, None, report=lambda h, r: None),
                    wall=clock.unix)
    running = LoopThread(daemon)
    try:
        yield cfg, clock, daemon, running
    finally:
        running.stop()


def _last(daemon: Daemon) -> tuple[str, str, str | None] | None:
    """The last sync the loop recorded: (trigger, result, commit)."""
    last = daemon.observed.last_sync
    return (last["trigger"], last["result"], last["commit"]) if last else None


def _journal(cfg: Config) -> list[object]:
    return list(Journal(cfg.journal_file).read())


def test_a_deny_window_defers_and_its_end_deploys_without_a_trigger(
        setup: tuple[Config, FakeClock, Daemon, LoopThread], repo: RepoBuilder) -> None:
    cfg, clock, daemon, running = setup
    wait_for(lambda: load_state(cfg.state_file).commit is not None, what="the startup deploy")
    first = load_state(cfg.state_file).commit

    clock.at = datetime(2026, 1, 14, 23, 0, tzinfo=UTC)  # inside the night
    repo.add_skill("beta", description="new")
    second = repo.commit("v2")
    running.call(daemon.trigger, "signal")
    wait_for(lambda: (load_state(cfg.state_file).waiting or {}).get("commit") == second,
             what="the pushed commit waiting behind the window")
    state = load_state(cfg.state_file)
    assert state.commit == first and state.waiting is not None
    assert state.waiting["window"] == "night" and state.waiting["added"] == ["beta"]
    frozen = [e for e in _journal(cfg) if isinstance(e, Frozen)]
    assert [(e.commit, e.window) for e in frozen] == [(second, "night")]
    assert frozen[0].until == "2026-01-15T06:00:00.000Z" and "deny window night" in (
        frozen[0].reason or "")
    # the loop will wake at the window's end, not at the next poll an hour later
    wait_for(lambda: daemon.thaw_at == datetime(2026, 1, 15, 6, 0, tzinfo=UTC).timestamp(),
             what="the wake-up at the window's end")
    doc = document(daemon, disk_view(cfg))
    assert doc["sync_window"]["open"] is False
    assert doc["sync_window"]["next_change"] == "2026-01-15T06:00:00.000Z"

    clock.at = datetime(2026, 1, 15, 6, 0, tzinfo=UTC)  # the end: the host clock got there
    running.call(daemon.wake)  # what asyncio's timer does on a real clock; no sync trigger
    wait_for(lambda: _last(daemon) == ("window", "deployed", second), what="the deploy at the end")
    assert load_state(cfg.state_file).commit == second
    assert load_state(cfg.state_file).waiting is None


def test_the_override_deploys_inside_the_window_and_a_freeze_still_holds(
        setup: tuple[Config, FakeClock, Daemon, LoopThread], repo: RepoBuilder) -> None:
    cfg, clock, daemon, running = setup
    wait_for(lambda: load_state(cfg.state_file).commit is not None, what="the startup deploy")
    clock.at = datetime(2026, 1, 15, 1, 0, tzinfo=UTC)
    repo.add_skill("beta", description="new")
    second = repo.commit("v2")
    running.call(daemon.trigger, "signal")
    wait_for(lambda: (load_state(cfg.state_file).waiting or {}).get("commit") == second,
             what="the commit waiting behind the window")
    running.call(daemon.override_windows)
    wait_for(lambda: _last(daemon) == ("manual", "deployed", second), what="the overridden deploy")
    assert load_state(cfg.state_file).commit == second

    set_freeze(cfg, daemon.syncer.ledger.record, reason="incident")  # the override is not unfreeze
    repo.add_skill("gamma", description="new")
    third = repo.commit("v3")
    running.call(daemon.override_windows)
    wait_for(lambda: _last(daemon) == ("manual", "frozen", third),
             what="the commit waiting behind the freeze")
    waiting = load_state(cfg.state_file).waiting or {}
    assert waiting["commit"] == third and waiting["window"] is None
    assert load_state(cfg.state_file).commit == second
    assert "deployments frozen" in (daemon.observed.last_sync or {}).get("reason", "")


# -- the command line and the alert, as real processes and values -------------------------

# A start every minute, each in effect for an hour: closed whatever the host's clock says.
ALWAYS = '[{"name": "always", "kind": "deny", "schedule": "* * * * *", "duration": "1h"}]'


def test_once_waits_behind_a_closed_window_and_the_override_deploys(
        http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path) -> None:
    url, state = http_git_server.url_for(repo), tmp_path / "state"
    env = {**_env(), "SKILLSYNC_SYNC_WINDOWS": ALWAYS}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SKILLSYNCD, *args, "--repo", url, "--state-dir", str(state)],
                              env=env, capture_output=True, text=True, timeout=120)

    repo.add_skill("alpha", description="v1")
    first = repo.commit("v1")
    waited = run("--once", "--force")  # --force does not pass a window either
    assert waited.returncode == 5, waited.stderr
    assert "deny window always is in effect" in waited.stderr
    shown = run("status")
    assert shown.returncode == 0 and "sync window closed (deny window always" in shown.stdout
    doc = json.loads(run("status", "--json").stdout)
    assert doc["sync_window"]["open"] is False and doc["waiting"]["window"] == "always"
    assert doc["behind_reason"] == "waiting: deny window always is in effect"
    done = run("--once", "--window-override")
    assert done.returncode == 0, done.stderr
    assert load_state(state / "state.json").commit == first
    assert "window_overridden" in done.stdout + done.stderr
    refused = run("status", "--window-override")
    assert refused.returncode == 2


def test_the_alert_of_a_window_deferral_says_when_and_how_to_override() -> None:
    frozen = decode({"kind": "frozen", "commit": "c" * 40, "release": "live-1", "window": "night",
                     "until": "2026-01-15T06:00:00.000Z",
                     "reason": "deny window night is in effect; deploys at 2026-01-15T06:00:00.000Z"})
    found, _ = decide(frozen, Book(), Settings(replica="r1", failing_after=3,
                                               audit_lag_events=10))
    assert [a.event for a in found] == ["frozen"]
    assert "waits behind sync window night" in found[0].title
    assert "2026-01-15T06:00:00.000Z" in found[0].body and "--window-override" in found[0].body
    assert "unfreeze" not in found[0].body


def test_a_missing_current_is_not_repaired_to_a_release_never_recorded_while_windows_are_set(
        http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path) -> None:
    """A kill between staging and the record of a first deploy: the release on disk has not
    passed the windows, so start-up recovery must not flip to it inside a deny window."""
    cfg = load_config({"repo": http_git_server.url_for(repo), "state_dir": str(tmp_path / "s")},
                      env={"SKILLSYNC_SYNC_WINDOWS": ALWAYS})
    repo.add_skill("alpha", description="v1")
    repo.commit("v1")
    assert build_syncer(cfg).sync(window_override=True).status.value == "deployed"
    save_state(cfg.state_file, dataclasses.replace(load_state(cfg.state_file), release=None,
                                                   commit=None))  # as if never recorded
    cfg.current_link.unlink()
    with capture_logs() as logs:
        outcome = build_syncer(cfg).sync()
    assert "current_not_repaired" in [e["event"] for e in logs]
    assert outcome.status.value == "frozen" and outcome.window == "always"
    assert Releases(cfg.state_dir).current() is None  # nothing went live inside the window


def test_audit_tells_a_window_deferral_from_a_freeze() -> None:
    window = decode({"kind": "frozen", "commit": "c" * 40, "window": "night",
                     "reason": "deny window night is in effect; deploys at 2026-01-15T06:00:00.000Z"})
    assert "sync window: deny window night is in effect; deploys at 2026-01-15T06:00" in (
        render_line(window))
    freeze = decode({"kind": "frozen", "commit": "c" * 40, "reason": "deployments frozen"})
    assert "until unfreeze" in render_line(freeze) and "sync window" not in render_line(freeze)
