"""The journal's observers are a value the process owns, not module state.

Real parts: a real journal in the test's own state dir, real Apprise senders
posting to a JSON receiver on 127.0.0.1, a real Prometheus registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for
from prometheus_client import CollectorRegistry
from receivers import JsonReceiver

from skillsyncd.audit.commands import open_journal
from skillsyncd.audit.events import JournalEvent, decode
from skillsyncd.config import Config, Secret
from skillsyncd.notify import observers
from skillsyncd.notify.observers import build_observers

C1 = "c" * 40


@pytest.fixture
def receiver() -> Iterator[JsonReceiver]:
    r = JsonReceiver()
    yield r
    r.close()


def _cfg(tmp_path: Path, receiver: JsonReceiver, **over: Any) -> Config:
    return Config(repo="https://github.com/acme/skills.git", state_dir=tmp_path / "state",
                  notify=Secret(value=receiver.url), replica_id="r1", **over)


def _rejected() -> JournalEvent:
    return decode({"kind": "rejected", "commit": C1, "policy": "reject", "findings": [
        {"rule": "secret.github-token", "severity": "error", "path": "x/run.sh", "line": 3,
         "message": "a GitHub token"}]})


def test_nothing_configured_is_no_sender(tmp_path: Path) -> None:
    assert build_observers(Config(repo="https://github.com/acme/skills.git",
                                  state_dir=tmp_path)).senders == ()


def test_alerts_and_commit_statuses_are_both_observers(tmp_path: Path, receiver: JsonReceiver) -> None:
    built = build_observers(_cfg(tmp_path, receiver, commit_status=True))
    assert [s.outbox.name for s in built.senders] == ["alert", "commit_status"]


def test_each_build_is_its_own_set_fed_only_by_the_journal_it_is_attached_to(
    tmp_path: Path, receiver: JsonReceiver,
) -> None:
    cfg = _cfg(tmp_path, receiver)
    mine, other = build_observers(cfg), build_observers(cfg)
    [alert] = mine.senders
    [unattached] = other.senders
    assert alert is not unattached  # no process-wide registry hands back the same senders
    journal = open_journal(cfg)
    mine.attach(journal)
    journal.append(_rejected())
    wait_for(lambda: len(receiver.posts) == 1, what="the rejection alert")
    assert alert.outbox.flush(10) and unattached.outbox.flush(10)
    [message] = receiver.messages()
    assert message["type"] == "failure" and C1[:12] in message["message"]
    assert alert.outbox.counts["sent"] == 1 and sum(unattached.outbox.counts.values()) == 0
    registry = CollectorRegistry()
    registry.register(mine.collector())
    assert registry.get_sample_value("skillsync_alerts_total", {"result": "sent"}) == 1.0


def test_the_audit_lag_given_at_build_reaches_the_alerts(tmp_path: Path, receiver: JsonReceiver) -> None:
    [alert] = build_observers(_cfg(tmp_path, receiver), lag=lambda: 500).senders
    tick = alert.outbox.tick
    assert tick is not None
    tick()  # what the outbox thread runs every 30 s
    wait_for(lambda: receiver.posts, what="the audit-lag alert")
    [message] = receiver.messages()
    assert "audit replication behind" in message["title"] and "500 journal events" in message["message"]


def test_the_module_keeps_no_senders() -> None:
    held = {name for name, value in vars(observers).items()
            if not name.startswith("__") and isinstance(value, dict | list | set)}
    assert held == set()
