"""Attach the alert and commit-status senders to a journal, and export their counters.

One call site each: ``attach`` where a Syncer's journal is built (daemon and
one-shot commands alike), ``export`` where the daemon has its metrics registry.
Senders are kept per state dir, so building a second Syncer in one process
does not start a second set of threads (or send everything twice).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from skillsyncd.audit.events import JournalEvent
from skillsyncd.config import Config


class _Listener(Protocol):
    def event(self, event: Any) -> None: ...


class _Journal(Protocol):
    def subscribe(self, listener: Callable[[JournalEvent], None]) -> None: ...


_ACTIVE: dict[str, list[Any]] = {}
# Journals already feeding the senders of a state dir (weak: a journal's id may be reused).
_SUBSCRIBED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def attach(cfg: Config, journal: _Journal) -> list[Any]:
    """Start (once per state dir) the senders ``cfg`` asks for and subscribe them to ``journal``."""
    key = str(cfg.state_dir)
    if key not in _ACTIVE:
        senders: list[Any] = []
        if cfg.notify:
            from skillsyncd.notify import apprise as notify

            notifier = notify.build(cfg)
            if notifier is not None:
                senders.append(notifier)
        if cfg.commit_status:
            from skillsyncd.notify import commit_status

            poster = commit_status.build(cfg)
            if poster is not None:
                senders.append(poster)
        _ACTIVE[key] = senders
    done = _SUBSCRIBED.setdefault(journal, set())
    if key not in done:
        for sender in _ACTIVE[key]:
            journal.subscribe(sender.event)
        done.add(key)
    return _ACTIVE[key]


def watch_lag(cfg: Config, lag: Callable[[], int]) -> None:
    """Let the alerts see the audit replica's lag (the daemon's Neo4j sink)."""
    for sender in _ACTIVE.get(str(cfg.state_dir), []):
        if hasattr(sender, "lag"):
            sender.lag = lag


class _Collector:
    """Prometheus collector over the senders' counters (read at scrape time)."""

    def __init__(self, cfg: Config) -> None:
        self.key = str(cfg.state_dir)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        families = {
            "alert": CounterMetricFamily("skillsync_alerts", "Alerts by result (sent, failed, dropped)",
                                         labels=["result"]),
            "commit_status": CounterMetricFamily(
                "skillsync_commit_statuses", "GitHub commit statuses by result "
                "(posted, failed, skipped, dropped)", labels=["result"]),
        }
        for sender in _ACTIVE.get(self.key, []):
            family = families[sender.outbox.name]
            for result, n in sorted(sender.outbox.counts.items()):
                family.add_metric([result], n)
        yield from families.values()


def export(cfg: Config, registry: Any) -> None:
    """Register the senders' counters in the daemon's metrics registry."""
    registry.register(_Collector(cfg))


__all__ = ["attach", "export", "watch_lag"]
