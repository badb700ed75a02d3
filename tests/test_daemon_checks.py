"""Post-deploy checks (health URL, health command) and post-publish hooks, in-process."""

from __future__ import annotations

import asyncio
import http.server
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skillsyncd.config import Config
from skillsyncd.daemon.hooks import Deployment, HookRunner
from skillsyncd.sync.checks import HealthCommandCheck, HealthUrlCheck, post_deploy_checks


@pytest.fixture
def server() -> Iterator[dict[str, Any]]:
    """Answers GET with the next code from ``codes`` (then the last one, forever)."""
    box: dict[str, Any] = {"codes": [200], "hits": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            box["hits"] += 1
            codes = box["codes"]
            code = codes.pop(0) if len(codes) > 1 else codes[0]
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    box["url"] = f"http://127.0.0.1:{srv.server_address[1]}/healthz"
    yield box
    srv.shutdown()
    srv.server_close()


def test_checks_from_config() -> None:
    assert post_deploy_checks(Config()) == ()
    cfg = Config(health_url="http://x/h", health_command="true", health_timeout=2, health_retries=4)
    assert post_deploy_checks(cfg) == (HealthUrlCheck("http://x/h", 2, 4), HealthCommandCheck("true", 2, 4))


def test_health_url_retries_until_healthy(server: dict[str, Any], tmp_path: Path) -> None:
    server["codes"] = [503, 200]
    assert HealthUrlCheck(server["url"], 2, 3)(Config(state_dir=tmp_path), "r") == []
    assert server["hits"] == 2


def test_health_url_failure_names_the_status(server: dict[str, Any], tmp_path: Path) -> None:
    server["codes"] = [500]
    problems = HealthUrlCheck(server["url"], 2, 2)(Config(state_dir=tmp_path), "r")
    assert len(problems) == 1 and "HTTP 500" in problems[0] and "2 attempt" in problems[0]


def test_health_url_unreachable_is_bounded(black_hole: int, tmp_path: Path) -> None:
    start = time.monotonic()
    problems = HealthUrlCheck(f"http://127.0.0.1:{black_hole}/", 0.3, 1)(Config(state_dir=tmp_path), "r")
    assert problems and "unreachable" in problems[0]
    assert time.monotonic() - start < 30  # bounded (a black hole never answers), not a speed target


def test_health_url_never_prints_credentials(tmp_path: Path) -> None:
    problems = HealthUrlCheck("http://user:hunter22@127.0.0.1:1/", 0.5, 1)(Config(state_dir=tmp_path), "r")
    assert problems and "hunter22" not in problems[0]


def test_health_command(tmp_path: Path) -> None:
    cfg = Config(state_dir=tmp_path)
    assert HealthCommandCheck("true", 2, 1)(cfg, "r") == []
    script = "import os, sys; print('broken', os.environ['SKILLSYNC_RELEASE'], file=sys.stderr); sys.exit(3)"
    problems = HealthCommandCheck(f"{sys.executable} -c \"{script}\"", 5, 1)(cfg, "rel-1")
    assert problems and "exited 3: broken rel-1" in problems[0]
    slow = HealthCommandCheck(f"{sys.executable} -c 'import time; time.sleep(5)'", 0.3, 1)(cfg, "r")
    assert slow and "timed out" in slow[0]
    assert "could not start" in HealthCommandCheck("/nonexistent/cmd", 1, 1)(cfg, "r")[0]


def _deployment(release: str = "R1") -> Deployment:
    return Deployment(commit="c" * 40, release=release, previous_commit=None,
                      previous_release=None, trigger="poll", state_dir="/s")


def test_hook_command_retries_and_delivers_each_release_once(tmp_path: Path) -> None:
    count = tmp_path / "count"
    script = (
        "import os, pathlib, sys; p = pathlib.Path(sys.argv[1]); "
        "n = int(p.read_text()) + 1 if p.exists() else 1; p.write_text(str(n)); "
        "sys.exit(0 if n >= 2 and os.environ['SKILLSYNC_RELEASE'] == 'R1' else 1)"
    )
    results: list[tuple[str, str]] = []

    async def scenario() -> None:
        runner = HookRunner(f"{sys.executable} -c \"{script}\" {count}", None,
                            report=lambda h, r: results.append((h, r)), pause=0.01)
        runner.submit(_deployment())
        runner.submit(_deployment())  # the same release again: ignored
        for _ in range(200):
            if results:
                break
            await asyncio.sleep(0.02)
        await runner.close()

    asyncio.run(scenario())
    assert results == [("command", "ok")]
    assert count.read_text() == "2"


def test_hook_failure_is_reported_and_close_kills_a_hung_hook(tmp_path: Path) -> None:
    results: list[tuple[str, str]] = []

    async def scenario() -> float:
        failing = HookRunner("false", "http://127.0.0.1:1/hook", report=lambda h, r: results.append((h, r)),
                             attempts=2, pause=0.01, timeout=1)
        failing.submit(_deployment())
        for _ in range(200):
            if len(results) == 2:
                break
            await asyncio.sleep(0.02)
        started = tmp_path / "hook-started"
        hung = HookRunner(f"{sys.executable} -c 'import pathlib, time; "
                          f"pathlib.Path(\"{started}\").touch(); time.sleep(30)'", None,
                          report=lambda h, r: None)
        hung.submit(_deployment("R2"))
        for _ in range(1000):  # close() must kill a hook that is running: wait until it is
            if started.exists():
                break
            await asyncio.sleep(0.02)
        assert started.exists()
        start = time.monotonic()
        await hung.close()
        return time.monotonic() - start

    assert asyncio.run(scenario()) < 2
    assert results == [("command", "failed"), ("url", "failed")]


def test_waiting_for_a_booting_gateway_is_two_lines(server: dict[str, Any], tmp_path: Path) -> None:
    """Issue 23: one line when the wait starts and one when it ends, not one per try."""
    from structlog.testing import capture_logs

    server["codes"] = [503, 503, 503, 503, 200]
    cfg = Config(state_dir=tmp_path, health_start_wait=60)
    with capture_logs() as logs:
        assert HealthUrlCheck(server["url"], 2, 3).wait_ready(cfg) is None
    events = [e["event"] for e in logs if e["event"].startswith("gateway_wait")]
    assert events == ["gateway_wait_started", "gateway_wait_ended"]
    assert not [e for e in logs if e["event"] == "stamina.retry_scheduled"]  # no line per try
    assert logs[-1]["attempts"] == 5 and server["hits"] == 5


def test_a_gateway_that_stays_down_is_two_lines_and_gives_up(server: dict[str, Any],
                                                             tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    server["codes"] = [503]
    cfg = Config(state_dir=tmp_path, health_start_wait=1.0)
    with capture_logs() as logs:
        why = HealthUrlCheck(server["url"], 2, 3).wait_ready(cfg)
    assert why is not None and "answered HTTP 503" in why
    events = [e["event"] for e in logs if e["event"].startswith("gateway_wait")]
    assert events == ["gateway_wait_started", "gateway_wait_gave_up"]
    gave_up = next(e for e in logs if e["event"] == "gateway_wait_gave_up")
    assert gave_up["attempts"] == server["hits"] >= 2 and gave_up["log_level"] == "warning"
