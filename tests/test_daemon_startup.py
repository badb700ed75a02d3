"""SIGTERM at any instant of start-up: a clean exit 0, ``current`` untouched (issue 15).

Start-up used to install its signal handlers only after about a second of imports
and set-up; a stop in that window killed the daemon with status 143, which
supervisord reports as a crash. Each case here runs the real CLI through a small
launcher that holds start-up at one named step (a ``PendingStop.check`` call, or
right after the HTTP port is bound), writes a marker file, and waits for the
signal; the test sends SIGTERM once the marker exists. No fixed delays: the
signal lands exactly at the step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from gitserver import RepoBuilder
from polling import wait_for
from test_daemon import SKILLSYNCD, _clean_env

from skillsyncd.release.releases import Releases

# argv: STEP[:go] MARKER skillsyncd-args...   (":go" does not wait: the signal lands
# somewhere in whatever follows the step, e.g. the heavy imports)
LAUNCHER = """
import os, sys, time
from pathlib import Path
from skillsyncd.daemon.stopping import PendingStop
spec, marker = sys.argv[1], Path(sys.argv[2])
step, _, mode = spec.partition(":")

def hold(pending):
    marker.write_text(str(os.getpid()))
    deadline = time.monotonic() + 30
    while mode != "go" and pending.signum is None and time.monotonic() < deadline:
        time.sleep(0.005)

real_check = PendingStop.check
def check(self, name):
    if name == step and not marker.exists():
        hold(self)
    real_check(self, name)
PendingStop.check = check

if step == "bound":  # after the port is bound, before the loop's own handlers exist
    import skillsyncd.daemon.http as http
    from skillsyncd.daemon.stopping import PENDING
    real_start = http.start
    async def start(*a, **k):
        out = await real_start(*a, **k)
        hold(PENDING)
        return out
    http.start = start

from skillsyncd.cli import main
sys.exit(main(sys.argv[3:]))
"""

STEPS = ["arguments parsed", "configured", "configured:go", "imported", "starting", "metrics",
         "hooks", "syncer", "syncer:go", "http", "bound"]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A state dir with one live release, made by a real ``--once`` (shared by the module)."""
    root = tmp_path_factory.mktemp("startup")
    repo = RepoBuilder(root / "origin", name="startup-skills")
    repo.add_skill("alpha", description="first")
    repo.commit("v1")
    state = root / "state"
    done = subprocess.run([SKILLSYNCD, "--once", "--repo", str(repo.path), "--state-dir", str(state)],
                          env=_clean_env({}), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    live = Releases(state).current()
    assert live is not None
    return state, str(repo.path), live


@pytest.mark.parametrize("step", STEPS)
def test_sigterm_at_each_startup_step_exits_0_with_current_intact(
    step: str, deployed: tuple[Path, str, str], tmp_path: Path
) -> None:
    state, repo, live = deployed
    marker = tmp_path / "at-step"
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, step, str(marker),
         "run", "--repo", repo, "--state-dir", str(state), "--http-bind", "127.0.0.1:0"],
        env=_clean_env({"SKILLSYNC_INTERVAL": "60"}), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: marker.exists() or proc.poll() is not None, timeout=60,
                 what=f"start-up to reach {step!r}")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    events = [json.loads(line) for line in out.splitlines()]  # every line is JSON
    names = [e["event"] for e in events]
    assert "stopped" in names, out
    if step.endswith(":go"):
        # The signal lands wherever start-up has got to by then; on a loaded machine that
        # can be past the last start-up step, in the first sync. That sync must then end
        # (finished or abandoned) before the exit, and change nothing live.
        if "sync_started" in names:
            assert {"sync_finished", "sync_abandoned"} & set(names), out
    else:
        assert "sync_started" not in names, "a stop during start-up must not start a sync"
    assert Releases(state).current() == live
    assert err == "" or all(line.startswith("{") for line in err.splitlines()), err


def test_sigterm_right_after_the_daemon_started_line(
    deployed: tuple[Path, str, str], tmp_path: Path
) -> None:
    """The hand-over to the loop's handlers: a stop just after ``daemon_started``."""
    state, repo, live = deployed
    proc = subprocess.Popen([SKILLSYNCD, "run", "--repo", repo, "--state-dir", str(state),
                             "--http-bind", "127.0.0.1:0"],
                            env=_clean_env({"SKILLSYNC_INTERVAL": "60"}),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if json.loads(line)["event"] == "daemon_started":
                proc.send_signal(signal.SIGTERM)
                break
        rest = proc.stdout.read()
        assert proc.wait(60) == 0, rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert Releases(state).current() == live
    assert os.path.isdir(state / "releases" / live)
