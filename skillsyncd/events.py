"""The names of what happens: one per concept, shared by CLI, logs, journal, metrics, hooks, Neo4j.

``Status`` is how a sync or rollback ended (``SyncOutcome.status``, the loop's
result label, the ``--once`` line). ``Event`` is the kind of a journal event and
the name of its log line. Both are ``StrEnum``: they compare equal to, and
serialise as, their plain string values, so the JSON on disk is unchanged.

Journals written by 0.1.0 use older names for two concepts; :func:`event_kind`
reads them as today's (docs/audit.md, "Event kinds").
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """How one sync or rollback ended."""

    DEPLOYED = "deployed"
    NO_CHANGE = "no_change"
    REJECTED = "rejected"  # refused as a whole by validation (or the mass-removal guard)
    SKIPPED_BAD = "skipped_bad"  # head is marked bad: nothing to do until it moves
    ROLLED_BACK = "rolled_back"  # a failure after the flip: what served before serves again
    MANUAL_ROLLBACK = "manual_rollback"  # `skillsyncd rollback`
    FAILED = "failed"  # nothing changed on disk; the next sync retries


# Outcomes after which the schedule keeps its normal pace (not a failure to back off from).
OK_STATUSES = frozenset({Status.DEPLOYED, Status.NO_CHANGE, Status.SKIPPED_BAD, Status.REJECTED,
                         Status.MANUAL_ROLLBACK})


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
