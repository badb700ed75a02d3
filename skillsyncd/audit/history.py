"""Reading the audit trail back: filter events (pure) and render them for people."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from skillsyncd.audit.events import (
    Deployed,
    FetchFailed,
    JournalEvent,
    ManualRollback,
    Rejected,
    RolledBack,
    SyncFailed,
    to_line,
)

# Events that say something happened to what is live; the rest is the sync's heartbeat.
NOTABLE: tuple[type[JournalEvent], ...] = (Deployed, RolledBack, ManualRollback, Rejected,
                                           FetchFailed, SyncFailed)


def select(
    events: Iterable[JournalEvent],
    since: str | None = None,
    skill: str | None = None,
    everything: bool = False,
) -> Iterator[JournalEvent]:
    """Events at or after ``since`` (an ISO date or time prefix), touching ``skill`` if given."""
    for event in events:
        if not everything and not isinstance(event, NOTABLE):
            continue
        if since and event.timestamp < since:
            continue
        if skill and skill not in event.skill_names():
            continue
        yield event


def _changed(event: JournalEvent) -> str | None:
    changed = [f"{str(s.get('change') or '?')[0]}:{s.get('name')}" for s in event.skills
               if s.get("change") not in (None, "unchanged")]
    if not changed:
        return None
    return " ".join(changed[:8]) + (f" (+{len(changed) - 8})" if len(changed) > 8 else "")


def render_line(event: JournalEvent) -> str:
    """One line per event: when, what, where from, and the gist."""
    parts = [
        event.timestamp or "?",
        f"{event.kind:<17}",
        f"{event.trigger or '-':<8}",
        (event.commit or "-")[:12],
        event.release or "-",
    ]
    changed = _changed(event)
    if changed:
        parts.append(changed)
    if isinstance(event, Rejected) and event.findings:
        first = event.findings[0]
        parts.append(f"{len(event.findings)} finding(s), first: {first.get('path')}: "
                     f"{first.get('message')}")
    if isinstance(event, RolledBack | ManualRollback) and event.reason:
        parts.append(f"reason: {event.reason}")
    if isinstance(event, FetchFailed | SyncFailed) and event.error:
        parts.append(f"error: {event.error}")
    return "  ".join(parts)


def render(events: Iterable[JournalEvent], as_json: bool) -> Iterator[str]:
    for event in events:
        yield to_line(event, compact=False) if as_json else render_line(event)
