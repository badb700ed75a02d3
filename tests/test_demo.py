"""`make demo` shows the human side and ends with a next step that works (issue 29 item 15)."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from gitserver import free_port
from polling import wait_for

ROOT = Path(__file__).resolve().parent.parent
LIVENESS = 60.0  # seconds: a bound load cannot trip, not a speed target


def _get(url: str) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except OSError:
        return None


def test_demo_prints_summaries_then_the_daemon_and_dashboard_step(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py"), "--dir",
                           str(tmp_path / "demo")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shown = (done.stdout + done.stderr).splitlines()
    assert not [line for line in shown if line.lstrip().startswith("{")], "JSON log lines shown"
    assert sum(line.startswith("deployed: commit") for line in shown) == 2, shown
    assert any(line.startswith("skills    4 live, held back: half-done") for line in shown), shown
    log = (tmp_path / "demo" / "sync.log").read_text().splitlines()
    assert any(json.loads(line)["event"] == "skill_held_back" for line in log)  # kept, not shown
    # the last lines: the command that starts the daemon, then the dashboard's URL
    tail = done.stdout.rstrip().splitlines()[-4:]
    assert tail[0].startswith("== next:"), tail
    command = shlex.split(tail[1])
    assert command[1] == "run" and "http://127.0.0.1:18790/" in tail[2], tail
    # ... and that step works as printed (on a free port, not the default one)
    port = free_port()
    command[command.index("--http-bind") + 1] = f"127.0.0.1:{port}"
    daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _get(f"http://127.0.0.1:{port}/") is not None, LIVENESS, "the dashboard")
        page = _get(f"http://127.0.0.1:{port}/")
        assert page is not None and page[0] == 200 and "half-done" in page[1]
        status = _get(f"http://127.0.0.1:{port}/status")
        assert status is not None and json.loads(status[1])["skill_count"] == 4
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
