"""Reading the audit trail back: filter events (pure) and render them for people."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from skillsyncd.model import Event, event_kind

# Events that say something happened to what is live; the rest is the sync's heartbeat.
NOTABLE = frozenset(str(e) for e in (Event.DEPLOYED, Event.ROLLED_BACK, Event.MANUAL_ROLLBACK,
                                      Event.REJECTED, Event.FETCH_FAILED, Event.SYNC_FAILED))


def select(
    events: Iterable[dict[str, Any]],
    since: str | None = None,
    skill: str | None = None,
    everything: bool = False,
) -> Iterator[dict[str, Any]]:
    """Events at or after ``since`` (an ISO date or time prefix), touching ``skill`` if given."""
    for event in events:
        if not everything and event_kind(event.get("kind")) not in NOTABLE:
            continue
        if since and str(event.get("timestamp", "")) < since:
            continue
        if skill and not any(s.get("name") == skill for s in event.get("skills") or []):
            continue
        yield event


def render_line(event: dict[str, Any]) -> str:
    """One line per event: when, what, where from, and the gist."""
    commit = str(event.get("commit") or "-")[:12]
    parts = [
        str(event.get("timestamp", "?")),
        f"{event.get('kind', '?'):<17}",
        f"{event.get('trigger') or '-':<8}",
        commit,
        str(event.get("release") or "-"),
    ]
    skills = event.get("skills") or []
    if skills:
        changed = [f"{str(s.get('change') or '?')[0]}:{s.get('name')}" for s in skills
                   if s.get("change") not in (None, "unchanged")]
        if changed:
            parts.append(" ".join(changed[:8]) + (f" (+{len(changed) - 8})" if len(changed) > 8 else ""))
    if event_kind(event.get("kind")) == Event.REJECTED and event.get("findings"):
        first = event["findings"][0]
        parts.append(f"{len(event['findings'])} finding(s), first: {first.get('path')}: "
                     f"{first.get('message')}")
    if event.get("reason"):
        parts.append(f"reason: {event['reason']}")
    if event.get("error"):
        parts.append(f"error: {event['error']}")
    return "  ".join(parts)


def render(events: Iterable[dict[str, Any]], as_json: bool) -> Iterator[str]:
    for event in events:
        yield json.dumps(event, ensure_ascii=False) if as_json else render_line(event)
