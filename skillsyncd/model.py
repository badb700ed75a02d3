"""Values that flow between the steps of a sync, and the names of what happens. All frozen, no I/O.

``Status`` is how a sync or rollback ended (``SyncOutcome.status``, the loop's
result label, the ``--once`` line). ``Event`` is the kind of a journal event and
the name of its log line; the events themselves are typed values in
``skillsyncd.audit.events``, one class per kind. Both are ``StrEnum``: they compare equal to, and
serialise as, their plain string values, so the JSON on disk is unchanged.

Journals written by 0.1.0 use older names for two concepts; :func:`event_kind`
reads them as today's (docs/audit.md, "Event kinds").
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

# git tree entry modes we care about
MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_SYMLINK = 0o120000
MODE_TREE = 0o040000
MODE_GITLINK = 0o160000
REGULAR_MODES = frozenset({MODE_FILE, MODE_EXEC})


@dataclass(frozen=True, slots=True)
class Entry:
    """One blob-like entry of a skill folder, path relative to the folder (posix)."""

    path: str
    mode: int
    sha: str
    size: int | None = None


@dataclass(frozen=True, slots=True)
class Skill:
    """A skill as it exists in one commit: `<skills_path>/<name>/` with a SKILL.md."""

    name: str
    tree_sha: str
    entries: tuple[Entry, ...]

    @property
    def content_sha(self) -> str:
        """The skill's content hash: the git tree id of its folder."""
        return self.tree_sha


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One validation result, precise enough for an author to fix it."""

    rule: str
    severity: Severity
    path: str
    message: str
    line: int | None = None

    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path

    def __str__(self) -> str:
        return f"{self.location()}: {self.severity} [{self.rule}] {self.message}"


class Change(enum.StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    REMOVED = "removed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Plan:
    """What a sync has to do, skill by skill (see skillsyncd.sync.decide)."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    @property
    def to_build(self) -> tuple[str, ...]:
        """Skills whose bytes must be read from git (added or changed)."""
        return tuple(sorted(self.added + self.changed))

    @functools.cached_property
    def _change_by_name(self) -> dict[str, Change]:
        # Built once per plan: a sync asks once per skill, and scanning the tuples
        # each time was quadratic (~1.5 s for 10,000 skills).
        out = {n: Change.ADDED for n in self.added}
        out.update((n, Change.CHANGED) for n in self.changed)
        out.update((n, Change.REMOVED) for n in self.removed)
        return out

    def change_of(self, name: str) -> Change:
        return self._change_by_name.get(name, Change.UNCHANGED)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


# --- the names of what happens ---------------------------------------------------


class Status(enum.StrEnum):
    """How one sync or rollback ended."""

    DEPLOYED = "deployed"
    NO_CHANGE = "no_change"
    REJECTED = "rejected"  # refused as a whole by validation (or the mass-removal guard)
    SKIPPED_BAD = "skipped_bad"  # head is marked bad: nothing to do until it moves
    ROLLED_BACK = "rolled_back"  # a failure after the flip: what served before serves again
    MANUAL_ROLLBACK = "manual_rollback"  # `skillsyncd rollback`
    FAILED = "failed"  # nothing changed on disk; the next sync retries
    FROZEN = "frozen"  # staged and validated, not flipped: an operator's freeze holds it (sync/freeze.py)


# Outcomes after which the schedule keeps its normal pace (not a failure to back off from).
OK_STATUSES = frozenset({Status.DEPLOYED, Status.NO_CHANGE, Status.SKIPPED_BAD, Status.REJECTED,
                         Status.MANUAL_ROLLBACK, Status.FROZEN})


class Event(enum.StrEnum):
    """Kinds of journal events (and the log lines that go with them)."""

    SYNC_STARTED = "sync_started"
    SYNC_FINISHED = "sync_finished"
    NO_CHANGE = "no_change"
    DEPLOYED = "deployed"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"
    MANUAL_ROLLBACK = "manual_rollback"
    FETCH_FAILED = "fetch_failed"
    SYNC_FAILED = "sync_failed"
    GATEWAY_CONFIRMED = "gateway_confirmed"
    FREEZE_STARTED = "freeze_started"  # `skillsyncd freeze` / POST /freeze
    FREEZE_ENDED = "freeze_ended"  # `skillsyncd unfreeze` / POST /unfreeze, or its --until passed
    FROZEN = "frozen"  # a sync staged a new commit and a freeze kept it from going live


# 0.1.0 names still found in journals: old name -> today's.
LEGACY_KINDS: dict[str, Event] = {
    "validation_failed": Event.REJECTED,
}

# Events that change (or refuse to change) what is live: one deployment row each.
DEPLOYMENT_EVENTS = frozenset({Event.DEPLOYED, Event.ROLLED_BACK, Event.MANUAL_ROLLBACK,
                               Event.REJECTED})


def event_kind(kind: object) -> str:
    """A journal event's kind under today's name (0.1.0 names are translated)."""
    text = str(kind)
    return str(LEGACY_KINDS.get(text, text))
