"""The crash-consistency harness (tests/chaos/run.py) with a small count, in the default suite.

`make chaos` runs the same harness with 500 trials; this test visits every named
kill point once, plus a few kills at random instants, at random file-system
mutations and of a running daemon, and fails on any broken promise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from chaos.killer import POINTS
from chaos.run import MODES, POINT_NAMES, Report, journal_lines, run_trials

from skillsyncd.config import load_config

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.chaos


def test_every_named_point_is_scheduled_and_exists() -> None:
    assert set(POINT_NAMES) == set(POINTS)
    assert set(MODES) == {"random", "point", "syscall", "daemon"}


_SCHEDULE: list[tuple[str, str | None]] = [("point", p) for p in POINT_NAMES]
_SCHEDULE += [("random", None), ("syscall", None)] * 3 + [("daemon", None)]
_CHUNKS = 3  # run as three tests, so the suite's workers share the trials


@pytest.mark.parametrize("chunk", range(_CHUNKS))
def test_small_chaos_run_has_no_failures(tmp_path: Path, chunk: int) -> None:
    schedule = _SCHEDULE[chunk::_CHUNKS]
    points = [p for mode, p in schedule if mode == "point"]
    lines: list[str] = []
    report: Report = run_trials(len(schedule), seed=20261124 + chunk, work=tmp_path, transport="http",
                                schedule=schedule, log=lines.append)
    assert report.trials == len(schedule)
    assert report.failures == [], "\n".join(lines)
    assert report.by_point == dict.fromkeys(points, 1)
    # Named points must really kill: a point that is never reached proves nothing.
    assert report.killed >= len(points), report.as_json()
    if "mid-journal" in points:
        assert report.torn_tails_seen >= 1  # mid-journal leaves one, the restart repairs it


def test_the_chunks_cover_every_named_point_once() -> None:
    chunks = [_SCHEDULE[i::_CHUNKS] for i in range(_CHUNKS)]
    assert sorted(p for c in chunks for mode, p in c if mode == "point") == sorted(POINT_NAMES)


def test_journal_checker_sees_torn_and_duplicate_lines(tmp_path: Path) -> None:
    """The harness's own journal check fails on what it is meant to catch."""
    from chaos.run import TrialFailure, check_journal

    cfg = load_config(flags={"repo": "unused", "state_dir": str(tmp_path)}, env={})
    good = [{"id": "a", "seq": 1, "kind": "sync_started"}, {"id": "b", "seq": 2, "kind": "x"}]
    body = "".join(json.dumps(e) + "\n" for e in good)
    cfg.journal_file.write_text(body + '{"id": "c", "se')
    assert journal_lines(cfg.journal_file) == (good, True)
    assert check_journal(cfg, allow_torn=True) is True
    with pytest.raises(TrialFailure, match="torn"):
        check_journal(cfg, allow_torn=False)
    cfg.journal_file.write_text(body + json.dumps({"id": "a", "seq": 3}) + "\n")
    with pytest.raises(TrialFailure, match="duplicate event id"):
        check_journal(cfg, allow_torn=False)
    cfg.journal_file.write_text(body + json.dumps({"id": "z", "seq": 2}) + "\n")
    with pytest.raises(TrialFailure, match="seq jumps"):
        check_journal(cfg, allow_torn=False)
    twice = [{"id": str(i), "seq": i + 1, "kind": "deployed", "release": "R"} for i in range(2)]
    cfg.journal_file.write_text("".join(json.dumps(e) + "\n" for e in twice))
    with pytest.raises(TrialFailure, match="2 deployed events"):
        check_journal(cfg, allow_torn=False)


def test_make_chaos_entry_point_runs(tmp_path: Path) -> None:
    """`make chaos` calls this command line; one trial proves it works and reports JSON."""
    out = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSYNC_")}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "chaos" / "run.py"), "--trials", "1",
                           "--seed", "7", "--transport", "local", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    assert doc["trials"] == 1 and doc["failures"] == 0 and doc["seed"] == 7
    assert "--seed 7" in proc.stdout
