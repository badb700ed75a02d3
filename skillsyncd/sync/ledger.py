"""The one writer of state.json and the audit journal.

Every record a sync leaves goes through :meth:`Ledger.write`: the journal event
first, then state.json. A crash between the two leaves the journal ahead, which
the next sync's recovery sees (``journalled``) and does not write twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog

from skillsyncd.errors import SkillsyncError
from skillsyncd.fsutil import atomic_write
from skillsyncd.model import Event
from skillsyncd.sync.state import State, load_state

log = structlog.get_logger(__name__)


class Recorder(Protocol):
    """Where audit events go (the journal); called with an event kind and fields."""

    def __call__(self, kind: str, **fields: Any) -> Any: ...


def _no_record(kind: str, **fields: Any) -> None:
    return None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def save_state(path: Path, state: State) -> None:
    atomic_write(path, state.to_json())


class Ledger:
    """state.json and the journal of one state dir."""

    def __init__(self, state_file: Path, record: Recorder | None = None,
                 journalled: Callable[[str], bool] | None = None) -> None:
        self.state_file = state_file
        self.record: Recorder = record or _no_record
        # Whether a `deployed` event for a release id is already in the journal.
        self.journalled: Callable[[str], bool] = journalled or (lambda _release: False)

    def load(self) -> State:
        return load_state(self.state_file)

    def write(self, event: Event | None, state: State | None = None, **fields: Any) -> None:
        """Journal ``event`` (if any), then save ``state`` (if any)."""
        if event is not None:
            self.record(str(event), **fields)
        if state is not None:
            save_state(self.state_file, state)

    def failure(self, event: Event, error: str, attempt: str | None, **fields: Any) -> None:
        """A sync failed before anything changed: count it and say why, best effort.

        The state is re-read: the failure may follow writes of this same sync. When
        the disk that failed the sync also refuses this record, the original error is
        the one to report; ``skillsyncd status`` probes the disk itself.
        """
        try:
            fresh = self.load()
            self.write(event, dataclasses.replace(
                fresh, failure_streak=fresh.failure_streak + 1, last_attempt=attempt,
                last_error=error), error=error, **fields)
        except (OSError, SkillsyncError) as book:
            log.error("failure_not_recorded", error=str(book))

    def note(self, event: Event, **fields: Any) -> None:
        """Journal an event that must not fail the caller (sync_finished after a failure)."""
        try:
            self.record(str(event), **fields)
        except (OSError, SkillsyncError) as book:
            log.error("failure_not_recorded", error=str(book))
