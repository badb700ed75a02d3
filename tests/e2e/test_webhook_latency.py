"""Push to skills.status through the webhook, in the real gateway: p50 and p95.

The user's set-up in small: the repository served over git://, `skillsyncd run` in
mirror mode into a folder the real OpenClaw gateway loads, and after each push a
signed GitHub webhook. Pushes come 1.7 s apart, the burst that used to make the
5th and later wait 3.1-3.5 s for the trigger bucket. Each latency runs from the
webhook request to the gateway's skills.status showing the new description.
Target: p95 <= 2 s.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gitserver import free_port
from openclaw_peer import Gateway, Install
from test_daemon import SKILLSYNCD, Daemon, _clean_env

from skillsyncd.daemon.webhook import sign

pytestmark = pytest.mark.e2e

PUSHES = 12
APART = 1.7
SECRET = "e2e-webhook-secret"


@pytest.fixture
def gateway(openclaw: Install, tmp_path: Path) -> Iterator[Gateway]:
    published = tmp_path / "published"
    published.mkdir()
    gw = Gateway(openclaw, tmp_path / "gw", free_port(), [str(published)])
    try:
        gw.wait_ready()
        yield gw
    finally:
        gw.stop()


def test_push_to_skills_status_through_the_webhook(
    git_daemon_server: Any, repo: Any, tmp_path: Path, gateway: Gateway,
) -> None:
    published = tmp_path / "published"
    repo.add_skill("alpha", description="Alpha 0.")
    repo.add_skill("beta", description="Beta.")
    head = repo.commit("v0")
    d = Daemon([SKILLSYNCD, "run", "--repo", git_daemon_server.url_for(repo), "--state-dir",
                str(tmp_path / "state"), "--http-bind", "127.0.0.1:0"],
               _clean_env({"GITHUB_WEBHOOK_SECRET": SECRET, "SKILLSYNC_INTERVAL": "300",
                           "SKILLSYNC_PUBLISH_MODE": "mirror", "SKILLSYNC_PUBLISH_DIR": str(published)}))
    try:
        d.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("commit") == head, timeout=30)
        deadline = time.monotonic() + 30
        while gateway.skills(published) != {"alpha": "Alpha 0.", "beta": "Beta."}:
            assert time.monotonic() < deadline, gateway.skills(published)
            time.sleep(0.1)
        latencies: list[float] = []
        for i in range(1, PUSHES + 1):
            started = time.monotonic()
            want = f"Alpha {i}."
            repo.add_skill("alpha", description=want)
            head = repo.commit(f"v{i}")
            body = json.dumps({"ref": "refs/heads/main", "after": head}).encode()
            t0 = time.monotonic()
            code, answer = d.post("/webhook/github", body, {
                "Content-Type": "application/json", "X-GitHub-Event": "push",
                "X-GitHub-Delivery": f"e2e-{i}", "X-Hub-Signature-256": sign(SECRET, body)})
            assert (code, answer["result"]) == (202, "triggered")
            while gateway.skills(published).get("alpha") != want:
                assert time.monotonic() - t0 < 15, f"push {i} not visible after 15 s"
                time.sleep(0.02)
            latencies.append(time.monotonic() - t0)
            time.sleep(max(0.0, APART - (time.monotonic() - started)))
        assert d.stop() == 0
    finally:
        d.kill()
    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"webhook push -> skills.status over git://, {PUSHES} pushes {APART} s apart: "
          f"p50 {p50:.2f} s, p95 {p95:.2f} s, max {ordered[-1]:.2f} s; all: "
          + ", ".join(f"{x:.2f}" for x in latencies))
    assert p95 <= 2.0, latencies
