"""The /status document: what is on disk (as ``skillsyncd status`` sees it) plus the loop's view."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from skillsyncd import __version__
from skillsyncd.config import Config
from skillsyncd.status import status_dict
from skillsyncd.sync.checks import load_confirmation
from skillsyncd.sync.windows import window_view

from .loop import Daemon
from .schedule import is_failure

# The documented top-level fields, in order (docs/daemon.md, "GET /status").
FIELDS = (
    "poller_status", "last_check", "next_check", "last_sync", "last_deployed_sha",
    "current_release", "skill_count", "skills_held_back", "webhook_enabled",
    "webhook_last_received", "last_deployment", "upstream_commit", "behind_upstream",
    "behind_reason", "bad_commits", "failure_streak", "last_success", "last_error",
    "last_error_source", "ready",
    "interval_seconds", "replica", "version", "audit", "state_dir_health", "gateway", "freeze",
    "waiting", "sync_window",
)


def disk_view(cfg: Config) -> dict[str, Any]:
    """Blocking: read state.json and the live manifest (run it in a thread)."""
    disk = status_dict(cfg)
    disk["current_created"] = disk["created"]
    disk["gateway"] = gateway_view(cfg)
    return disk


def last_error_view(last_sync: dict[str, Any] | None, disk: dict[str, Any]) -> dict[str, Any]:
    """state.json's last error; when the state dir cannot record one (``derived``), this
    process's own last failed sync says it exactly."""
    if disk["last_error_source"] == "derived" and last_sync and is_failure(last_sync["result"]):
        return {"last_error": last_sync["reason"], "last_error_source": "daemon"}
    return {"last_error": disk["last_error"], "last_error_source": disk["last_error_source"]}


def gateway_view(cfg: Config) -> dict[str, Any] | None:
    """The gateway's last answer about a release (the post-deploy confirmation); None: never asked."""
    conf = load_confirmation(cfg.state_dir)
    return conf.to_json() if conf is not None else None


def document(daemon: Daemon, disk: dict[str, Any]) -> dict[str, Any]:
    obs = daemon.observed
    last_deployment = obs.last_deployment
    if last_deployment is None and disk["current_release"]:
        # Nothing deployed by this process yet: describe what is live from its manifest.
        last_deployment = {"status": "deployed", "commit": disk["deployed_commit"],
                           "release": disk["current_release"], "at": disk["current_created"]}
    doc = {
        "poller_status": obs.poller_status,
        "last_check": obs.last_check or disk["last_attempt"],
        "next_check": obs.next_check,
        "last_sync": obs.last_sync,
        "last_deployed_sha": disk["deployed_commit"],
        "current_release": disk["current_release"],
        "skill_count": disk["skills_live"],
        "skills_held_back": disk["skills_held_back"],
        "webhook_enabled": bool(daemon.cfg.webhook_secret),
        "webhook_last_received": obs.webhook_last_received,
        "last_deployment": last_deployment,
        "upstream_commit": disk["upstream_commit"],
        "behind_upstream": disk["behind_upstream"],
        "behind_reason": disk["behind_reason"],
        "bad_commits": disk["bad_commits"],
        "failure_streak": daemon.scheduler.failure_streak,
        "last_success": disk["last_success"],
        **last_error_view(obs.last_sync, disk),
        "ready": disk["current_release"] is not None and daemon.fresh(),
        "interval_seconds": daemon.cfg.interval,
        "replica": daemon.cfg.replica_id,
        "version": __version__,
        "audit": daemon.metrics.audit_status(),
        "state_dir_health": disk["state_dir_health"],
        "gateway": disk["gateway"],
        "freeze": disk["freeze"],
        "waiting": disk["waiting"],
        # read at the daemon's clock, the one its syncs ask
        "sync_window": window_view(daemon.cfg.sync_windows,
                                   datetime.fromtimestamp(daemon.wall(), UTC)),
    }
    return doc
