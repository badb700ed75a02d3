"""Reading the audit trail back: filter events (pure) and render them for people."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from skillsyncd.audit.events import (
    Deployed,
    FetchFailed,
    FreezeEnded,
    FreezeStarted,
    Frozen,
    JournalEvent,
    ManualRollback,
    Rejected,
    RolledBack,
    SyncFailed,
    to_line,
)

# Events that say something happened to what is live; the rest is the sync's heartbeat.
NOTABLE: tuple[type[JournalEvent], ...] = (Deployed, RolledBack, ManualRollback, Rejected,
                                           FetchFailed, SyncFailed, FreezeStarted, FreezeEnded,
                                           Frozen)


SINCE_FORMS = ("an ISO date or time (2026-11-01, 2026-11-01T08:00, 2026-11-01T08:00:00+02:00)",
               "a duration back from now (90s, 30m, 2h, 3d, 1w)", "today", "yesterday")
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class SinceError(ValueError):
    """``--since`` in a form this command does not read; the message lists the forms it does."""


def parse_since(text: str, now: datetime, ahead: bool = False, flag: str = "--since") -> str:
    """``--since`` as a journal timestamp (UTC, milliseconds), comparable as a string.

    Comparing the raw text would sort "yesterday" after every date and read nothing.
    ``ahead``: a duration counts forward from now (``freeze --until 2h``).
    """
    value = text.strip().lower()
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if value in ("today", "yesterday"):
        when = midnight - timedelta(days=1 if value == "yesterday" else 0)
    elif m := _DURATION.fullmatch(value):
        span = timedelta(**{_UNIT[m.group(2)]: int(m.group(1))})
        when = now + span if ahead else now - span
    else:
        try:
            when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            forms = [f.replace(" back from now", " from now") if ahead else f for f in SINCE_FORMS]
            raise SinceError(f"{flag} {text!r}: not a time; use " + ", ".join(forms)) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # the journal's times are UTC
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def select(
    events: Iterable[JournalEvent],
    since: str | None = None,
    skill: str | None = None,
    everything: bool = False,
) -> Iterator[JournalEvent]:
    """Events at or after ``since`` (a journal timestamp, see :func:`parse_since`), touching ``skill``."""
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
    if isinstance(event, FreezeStarted | FreezeEnded | Frozen):
        parts.append(_freeze_gist(event))
    return "  ".join(parts)


def _freeze_gist(event: FreezeStarted | FreezeEnded | Frozen) -> str:
    if isinstance(event, FreezeEnded):
        return f"{event.how or 'ended'}" + (f" by {event.by}" if event.by else "")
    if isinstance(event, Frozen) and event.window:  # the reason says when the windows open
        return f"sync window: {event.reason or event.window}"
    until = f" until {event.until}" if event.until else " until unfreeze"
    return f"reason: {event.reason or '-'}{until}"


def render(events: Iterable[JournalEvent], as_json: bool) -> Iterator[str]:
    for event in events:
        yield to_line(event, compact=False) if as_json else render_line(event)
