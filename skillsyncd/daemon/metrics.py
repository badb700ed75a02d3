"""Prometheus metrics of one daemon, in a registry of its own (no global state)."""

from __future__ import annotations

import collections
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from skillsyncd.model import Status

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Results that went past the ls-remote probe and fetched objects.
_FETCHED = frozenset({Status.DEPLOYED, Status.ROLLED_BACK, Status.REJECTED})


class AuditView(Protocol):
    """What the daemon shows of the audit replica (the Neo4j sink); reads memory only."""

    def lag_seen(self) -> int: ...

    def status(self) -> dict[str, Any]: ...


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    content_type: str = CONTENT_TYPE

    def __post_init__(self) -> None:
        # No *_created series: a per-counter creation time is noise on a dashboard. The switch
        # is process-wide in prometheus_client; this process exposes no other metrics.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        r = self.registry
        self.syncs = Counter("skillsync_syncs", "Syncs finished, by result", ["result"], registry=r)
        self.triggers = Counter("skillsync_triggers", "Syncs started, by trigger", ["trigger"],
                                registry=r)
        self.fetches = Counter("skillsync_fetches", "Syncs that fetched a new commit", registry=r)
        self.duration = Histogram(
            "skillsync_sync_duration_seconds", "Wall time of one sync", registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )
        self.last_success = Gauge("skillsync_last_success_timestamp_seconds",
                                  "Unix time of the last sync that reached the remote", registry=r)
        self.skills_live = Gauge("skillsync_skills_live", "Skills in the live release", registry=r)
        self.deployed = Info("skillsync_deployed", "The live commit and release", registry=r)
        self.failure_streak = Gauge("skillsync_failure_streak", "Failed syncs in a row", registry=r)
        self.webhooks = Counter("skillsync_webhooks", "Webhook requests, by answer", ["result"],
                                registry=r)
        self.hooks = Counter("skillsync_hooks", "Post-publish hook runs, by hook and result",
                             ["hook", "result"], registry=r)
        self.drift = Counter("skillsync_drift", "Changes in the published folder skillsyncd did not make, "
                             "by kind (skill: repaired or reported; foreign: reported only)", ["kind"],
                             registry=r)
        self.gateway_seen = Gauge("skillsync_gateway_skills_seen", "Skills of the last confirmed "
                                  "release the gateway's agent can use (skills.status)", registry=r)
        self.gateway_expected = Gauge("skillsync_gateway_skills_expected", "Skills that release "
                                      "serves", registry=r)
        self.gateway_gaps = Gauge("skillsync_gateway_skills_unusable", "Skills of that release the "
                                  "gateway cannot use, by reason", ["reason"], registry=r)
        self.gateway_up = Gauge("skillsync_gateway_confirmed", "1 when the gateway answered the last "
                                "confirmation, 0 when it could not be asked", registry=r)
        self.frozen = Gauge("skillsync_frozen", "1 while an operator's freeze keeps deployments "
                            "from going live (skillsyncd freeze)", registry=r)
        self.freeze_until = Gauge("skillsync_freeze_until_timestamp_seconds", "Unix time the "
                                  "freeze ends by itself (0: frozen until unfreeze, or not frozen)",
                                  registry=r)
        self.waiting = Gauge("skillsync_waiting_skills", "Skills a freeze keeps waiting: added, "
                             "changed and removed by the commit it holds back", registry=r)
        self.window_open = Gauge("skillsync_sync_window_open", "1 while the sync windows let "
                                 "deployments go live (also with none set), 0 while closed",
                                 registry=r)
        self.window_change = Gauge("skillsync_sync_window_next_change_timestamp_seconds", "Unix "
                                   "time the sync windows next open or close (0: no change ahead)",
                                   registry=r)
        self.up = Gauge("skillsync_up", "1 while the daemon runs", registry=r)
        self.up.set(1)
        self.audit: AuditView | None = None

    def watch_audit(self, audit: AuditView) -> None:
        """Export the audit replica's lag; only a daemon that ships to Neo4j has the gauge."""
        self.audit = audit
        gauge = Gauge("skillsync_audit_lag_events", "Journal events not yet shipped to Neo4j",
                      registry=self.registry)
        gauge.set_function(lambda: float(audit.lag_seen()))

    def audit_status(self) -> dict[str, Any]:
        return self.audit.status() if self.audit is not None else {"neo4j": False}

    def sync_finished(self, result: str, duration: float) -> None:
        self.syncs.labels(result=result).inc()
        self.duration.observe(duration)
        if result in _FETCHED:
            self.fetches.inc()

    def live(self, commit: str | None, release: str | None, skills: int) -> None:
        self.deployed.info({"commit": commit or "", "release": release or ""})
        self.skills_live.set(skills)

    def gateway(self, confirmation: Mapping[str, Any] | None) -> None:
        """The last confirmation (``/status``'s ``gateway``); the gauges stay 0 before the first."""
        if confirmation is None:
            return
        self.gateway_up.set(1 if confirmation.get("state") == "confirmed" else 0)
        self.gateway_seen.set(int(confirmation.get("seen") or 0))
        self.gateway_expected.set(int(confirmation.get("expected") or 0))
        counts = collections.Counter(str(g.get("reason")) for g in confirmation.get("gaps") or ())
        self.gateway_gaps.clear()
        for reason, n in counts.items():
            self.gateway_gaps.labels(reason=reason).set(n)
    def freeze(self, freeze: dict[str, Any] | None, waiting: dict[str, Any] | None) -> None:
        """From the status document's ``freeze`` and ``waiting`` (sync/freeze.py)."""
        self.frozen.set(1 if freeze else 0)
        until = _unix((freeze or {}).get("until"))
        self.freeze_until.set(until or 0)
        counts = (waiting or {}).get("counts") or {}
        self.waiting.set(sum(int(counts.get(k, 0)) for k in ("added", "changed", "removed")))

    def sync_window(self, window: Mapping[str, Any] | None) -> None:
        """From the status document's ``sync_window`` (sync/windows.py)."""
        self.window_open.set(0 if window and not window.get("open") else 1)
        self.window_change.set(_unix((window or {}).get("next_change")) or 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _unix(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
