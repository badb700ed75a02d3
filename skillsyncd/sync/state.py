"""state.json: what is deployed and what the daemon has learned (written only by ledger.py)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class State:
    commit: str | None = None
    release: str | None = None
    last_good_release: str | None = None
    source: str | None = None
    ref: str | None = None
    # commit -> reason: never auto-deployed again (rolled back, or left by manual rollback)
    bad_commits: dict[str, str] = field(default_factory=dict)
    # the last commit refused as a whole by on_invalid=reject; not re-validated until head moves
    rejected_commit: str | None = None
    failure_streak: int = 0
    last_attempt: str | None = None
    last_success: str | None = None
    last_error: str | None = None
    upstream_commit: str | None = None
    # fingerprint of the settings that shape a release (config.release_settings); a change
    # re-deploys the same commit at the next sync
    settings: str | None = None
    # the commit a freeze keeps from going live (sync/freeze.py): its plan in brief, the
    # settings it was staged under, since when; None when nothing waits
    waiting: dict[str, Any] | None = None

    def to_json(self) -> bytes:
        return (json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n").encode()


def load_state(path: Path) -> State:
    """Read state.json; a missing or corrupt file yields an empty state (rebuilt from disk)."""
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return State()
    except (OSError, ValueError) as exc:
        log.warning("state_unreadable", path=str(path), error=str(exc))
        return State()
    if not isinstance(raw, dict):
        log.warning("state_unreadable", path=str(path), error="not a JSON object")
        return State()
    known = {f.name for f in dataclasses.fields(State)}
    try:
        return State(**{k: v for k, v in raw.items() if k in known})
    except TypeError as exc:
        log.warning("state_unreadable", path=str(path), error=str(exc))
        return State()
