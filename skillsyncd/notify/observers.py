"""The observers of a journal: the alert and commit-status senders, as one value.

``build_observers`` starts the senders ``cfg`` asks for (each with its own
Outbox thread) and returns them as an :class:`Observers`, which whoever builds
the process's Syncer owns and passes on: ``attach`` subscribes them to a
journal, ``collector`` reads their counters for the daemon's metrics. Nothing
is kept in module state, so a process builds one set per call and two
Syncers in one process share senders only when they are handed the same value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from skillsyncd.audit.events import JournalEvent
from skillsyncd.config import Config
from skillsyncd.notify.outbox import Outbox


class Observer(Protocol):
    """Reads each journal event in the sync thread and sends on in its outbox's thread."""

    @property
    def outbox(self) -> Outbox: ...

    def event(self, event: JournalEvent) -> None: ...


class _Journal(Protocol):
    def subscribe(self, listener: Callable[[JournalEvent], None]) -> None: ...


@dataclass(frozen=True)
class Observers:
    """The senders one process runs for its state dir (none when nothing is configured)."""

    senders: tuple[Observer, ...] = ()

    def attach(self, journal: _Journal) -> None:
        """Subscribe every sender to ``journal`` (call once per journal)."""
        for sender in self.senders:
            journal.subscribe(sender.event)

    def collector(self) -> _Collector:
        """A Prometheus collector over the senders' counters, read at scrape time."""
        return _Collector(self.senders)


def build_observers(cfg: Config, lag: Callable[[], int] | None = None) -> Observers:
    """Start the senders ``cfg`` asks for; ``lag`` lets the alerts see the audit replica's lag."""
    senders: list[Observer] = []
    if cfg.notify:
        from skillsyncd.notify import apprise

        notifier = apprise.build(cfg, lag=lag)
        if notifier is not None:
            senders.append(notifier)
    if cfg.commit_status:
        from skillsyncd.notify import commit_status

        poster = commit_status.build(cfg)
        if poster is not None:
            senders.append(poster)
    return Observers(tuple(senders))


class _Collector:
    """Prometheus collector: each sender's outbox counts, by result."""

    def __init__(self, senders: tuple[Observer, ...]) -> None:
        self._senders = senders

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        families = {
            "alert": CounterMetricFamily("skillsync_alerts", "Alerts by result (sent, failed, dropped)",
                                         labels=["result"]),
            "commit_status": CounterMetricFamily(
                "skillsync_commit_statuses", "GitHub commit statuses by result "
                "(posted, failed, skipped, dropped)", labels=["result"]),
        }
        for sender in self._senders:
            family = families[sender.outbox.name]
            for result, n in sorted(sender.outbox.counts.items()):
                family.add_metric([result], n)
        yield from families.values()


__all__ = ["Observer", "Observers", "build_observers"]
