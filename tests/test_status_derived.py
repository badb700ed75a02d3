"""When state.json cannot be written, status derives the last error and says so (issue 29 item 8).

The end-to-end cases (a real full and a real read-only volume) are in test_faults.py; these
pin the rule itself."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from skillsyncd.daemon.status import last_error_view
from skillsyncd.status import Traces, failure_view, pid_alive
from skillsyncd.sync.state import State

READ_ONLY = {"path": "/data/skillsync", "writable": False, "free_bytes": 10 << 30,
             "problem": "/data/skillsync is not writable: Read-only file system"}
FINE = {"path": "/data/skillsync", "writable": True, "free_bytes": 10 << 30, "problem": None}
RECORDED = State(failure_streak=2, last_error="fetch failed: 401")


def test_a_writable_state_dir_reports_what_is_on_record() -> None:
    view = failure_view(RECORDED, FINE, Traces(200.0, 300.0, holder_alive=True))
    assert view == {"last_error": "fetch failed: 401", "last_error_source": "state.json",
                    "failure_streak": 2}
    assert failure_view(State(), FINE, Traces(None, None, False))["last_error_source"] is None


def test_an_unwritable_state_dir_derives_the_error_and_says_so() -> None:
    quiet = failure_view(State(), READ_ONLY, Traces(300.0, 200.0, holder_alive=False))
    assert quiet["last_error_source"] == "derived" and quiet["failure_streak"] == 0
    assert quiet["last_error"].startswith("derived, not on record: /data/skillsync is not writable")
    # a sync took the lock after state.json was last written, and left no record
    after = failure_view(RECORDED, READ_ONLY, Traces(200.0, 300.0, holder_alive=False))
    assert after["failure_streak"] == 3
    assert "took the lock at 1970-01-01T00:05:00Z" in after["last_error"]
    assert after["last_error"].endswith("last error on record: fetch failed: 401")
    # a live lock holder (the daemon) keeps polling into a volume it cannot write
    polling = failure_view(State(), READ_ONLY, Traces(300.0, 200.0, holder_alive=True))
    assert polling["failure_streak"] == 1 and "keeps trying" in polling["last_error"]


def test_a_lock_holder_is_alive_only_while_its_process_runs() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        assert pid_alive(str(child.pid))
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    assert not pid_alive(str(child.pid)) and not pid_alive(str(os.getpid())) and not pid_alive("x")


def test_the_daemon_names_its_own_last_failure_when_the_disk_could_not() -> None:
    disk: dict[str, Any] = {"last_error": "derived, not on record: ...", "last_error_source": "derived"}
    failed = {"result": "failed", "reason": "disk error: [Errno 28] No space left on device"}
    assert last_error_view(failed, disk) == {"last_error": failed["reason"], "last_error_source": "daemon"}
    assert last_error_view({"result": "no_change", "reason": None}, disk)["last_error_source"] == "derived"
    recorded = {"last_error": "x", "last_error_source": "state.json"}
    assert last_error_view(failed, recorded) == recorded
