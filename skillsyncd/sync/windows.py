"""Sync windows: when deployments may go live, as cron schedules with a duration and a zone.

A window is in effect from each time its cron schedule fires (read in its own
time zone) for ``duration`` of elapsed time. The rules, as Argo CD's sync windows
have them but with its two known bugs designed out:

* deny first: while any deny window is in effect nothing goes live, whatever allow
  window is in effect too (argo-cd#5590 let an allow window win an overlap);
* with allow windows set, outside every allow window is denied;
* a deployment a window defers goes live when the windows open again: the answer
  carries that time (``next_change``) so the daemon wakes then, not a poll later
  (argo-cd#21692: auto-sync did not fire when a deny window ended).

Everything here is pure: functions of (windows, now). The clock is the caller's,
so tests drive a fake one. Wall times are read with :mod:`zoneinfo`; a start that
falls in a daylight-saving gap moves forward by the gap (02:30 on a spring-forward
night starts at 03:30), a start in a repeated hour is its first occurrence.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

ALLOW, DENY = "allow", "deny"
MAX_DURATION = timedelta(days=31)
# Wider than any change of a zone's UTC offset (one hour today, two in some zones' past):
# how far wall time and elapsed time can disagree when reading a schedule.
_MARGIN = timedelta(hours=3)
# How far ahead the next change is looked for, in growing steps (a yearly window needs 366 days).
_HORIZONS = (timedelta(days=2), timedelta(days=35), timedelta(days=400))
_MAX_STARTS = 2000  # starts read per window and horizon: a dense schedule sees less far ahead
_KEYS = frozenset({"kind", "schedule", "duration", "timezone", "name"})
_DURATION = re.compile(r"(\d+)([dhms])")


class WindowError(ValueError):
    """A sync window that cannot be read; the message names the window and the fix."""


@dataclass(frozen=True)
class SyncWindow:
    """One allow or deny window: from each firing of ``schedule`` (in ``timezone``) for ``duration``."""

    kind: str  # allow | deny
    schedule: str  # a 5-field cron expression
    duration: timedelta
    timezone: str = "UTC"
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or f"{self.kind} '{self.schedule}' for {_span(self.duration)} {self.timezone}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.label, "kind": self.kind, "schedule": self.schedule,
                "duration": _span(self.duration), "timezone": self.timezone}


@dataclass(frozen=True)
class WindowState:
    """What the windows say at one instant: may a deployment go live, why, and until when."""

    open: bool
    reason: str
    next_change: datetime | None = None  # UTC; None: no windows, or no change within a year
    active: tuple[str, ...] = ()  # the windows in effect, by label

    def to_dict(self) -> dict[str, Any]:
        return {"open": self.open, "reason": self.reason, "active": list(self.active),
                "next_change": iso(self.next_change) if self.next_change else None}


@dataclass(frozen=True)
class WindowClosed:
    """A deployment the windows defer; the pipeline treats it as it treats a freeze."""

    reason: str
    until: str | None  # UTC ISO time the windows open again (None: not within a year)
    window: str  # the labels of the windows that keep it waiting

    def describe(self) -> str:
        when = f"at {self.until}" if self.until else "when a sync window opens"
        return f"{self.reason}; deploys {when}"


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- reading the setting --------------------------------------------------------------


def parse_windows(raw: Any) -> tuple[SyncWindow, ...]:
    """The setting: a JSON array (SKILLSYNC_SYNC_WINDOWS) or TOML's ``[[sync_windows]]`` tables."""
    if isinstance(raw, str):
        if not raw.strip():
            return ()
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise WindowError(f"sync_windows is not JSON: {exc}; give an array of objects such "
                              'as [{"kind": "deny", "schedule": "0 22 * * *", "duration": "8h"}]'
                              ) from None
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise WindowError("sync_windows must be a list of windows")
    return tuple(_window(item, n) for n, item in enumerate(raw, 1))


def _window(item: Any, n: int) -> SyncWindow:
    if not isinstance(item, Mapping):
        raise WindowError(f"sync window {n} is not an object with kind, schedule and duration")
    where = f"sync window {n}" + (f" ({item['name']})" if item.get("name") else "")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise WindowError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(_KEYS))}")
    kind = str(item.get("kind", "")).lower()
    if kind not in (ALLOW, DENY):
        raise WindowError(f"{where}: kind must be 'allow' or 'deny', not {item.get('kind')!r}")
    schedule = " ".join(str(item.get("schedule", "")).split())
    if len(schedule.split()) != 5 or not croniter.is_valid(schedule):
        raise WindowError(f"{where}: schedule {schedule!r} is not a 5-field cron expression "
                          "(minute hour day-of-month month day-of-week, e.g. '0 22 * * 1-5')")
    zone = str(item.get("timezone") or "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowError(f"{where}: timezone {zone!r} is not an IANA zone name "
                          "(e.g. Europe/Berlin, America/New_York, UTC)") from None
    return SyncWindow(kind, schedule, parse_duration(item.get("duration"), where), zone,
                      str(item.get("name") or ""))


def parse_duration(raw: Any, where: str = "duration") -> timedelta:
    """``8h``, ``1h30m``, ``90m``, ``2d`` or a number of seconds; more than 0, at most 31 days."""
    text = str(raw if raw is not None else "").strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        span = timedelta(seconds=float(text))
    elif text and _DURATION.sub("", text) == "":
        unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
        span = timedelta(seconds=sum(int(v) * unit[u] for v, u in _DURATION.findall(text)))
    else:
        raise WindowError(f"{where}: duration {raw!r} is not a duration such as 8h, 1h30m or 3600")
    if not timedelta(0) < span <= MAX_DURATION:
        raise WindowError(f"{where}: duration {raw!r} must be more than 0 and at most 31 days")
    return span


def _span(d: timedelta) -> str:
    secs = int(d.total_seconds())
    parts = [(secs // 86400, "d"), (secs % 86400 // 3600, "h"), (secs % 3600 // 60, "m"),
             (secs % 60, "s")]
    return "".join(f"{v}{u}" for v, u in parts if v) or "0s"


# -- the schedule in time ---------------------------------------------------------------


def _local(at: datetime, zone: ZoneInfo) -> datetime:
    return at.astimezone(zone).replace(tzinfo=None)


def _instant(naive: datetime, zone: ZoneInfo) -> datetime:
    """A wall time in ``zone`` as UTC (fold 0: a gap moves forward, a repeated hour is its first)."""
    return naive.replace(tzinfo=zone).astimezone(UTC)


def latest_start(w: SyncWindow, at: datetime) -> datetime | None:
    """The last start at or before ``at`` that could still be in effect (None: none was)."""
    zone = ZoneInfo(w.timezone)
    floor = _local(at - w.duration, zone) - _MARGIN
    it = croniter(w.schedule, _local(at, zone) + _MARGIN)
    best: tuple[datetime, datetime] | None = None  # (start, its wall time)
    for _ in range(_MAX_STARTS):
        naive: datetime = it.get_prev(datetime)
        # a start in a gap reads later than wall times after it: look a margin past the best
        if naive < (max(best[1] - _MARGIN, floor) if best else floor):
            break
        start = _instant(naive, zone)
        if start <= at and (best is None or start > best[0]):
            best = (start, naive)
    return best[0] if best else None


def starts_between(w: SyncWindow, lo: datetime, hi: datetime) -> tuple[list[datetime], bool]:
    """Starts in (lo, hi], sorted, and whether that is all of them (False: cut at _MAX_STARTS)."""
    zone = ZoneInfo(w.timezone)
    top = _local(hi, zone) + _MARGIN
    it = croniter(w.schedule, _local(lo, zone) - _MARGIN)
    out: list[datetime] = []
    for _ in range(_MAX_STARTS):
        naive: datetime = it.get_next(datetime)
        if naive > top:
            return sorted(out), True
        start = _instant(naive, zone)
        if lo < start <= hi:
            out.append(start)
    return sorted(out), False


def is_active(w: SyncWindow, at: datetime) -> bool:
    start = latest_start(w, at)
    return start is not None and at < start + w.duration


# -- the decision ---------------------------------------------------------------------


def evaluate(windows: Sequence[SyncWindow], now: datetime) -> WindowState:
    """Open or closed at ``now`` (deny first), why, and when that next changes."""
    if not windows:
        return WindowState(True, "no sync windows are set")
    now = now.astimezone(UTC)
    active = [w for w in windows if is_active(w, now)]
    is_open, reason = _decide(windows, active)
    return WindowState(is_open, reason, _next_change(windows, now, is_open),
                       tuple(w.label for w in active))


def _decide(windows: Sequence[SyncWindow], active: Sequence[SyncWindow]) -> tuple[bool, str]:
    deny = [w.label for w in active if w.kind == DENY]
    if deny:
        return False, f"deny window {', '.join(deny)} is in effect"
    allows = [w.label for w in windows if w.kind == ALLOW]
    open_allows = [w.label for w in active if w.kind == ALLOW]
    if allows and not open_allows:
        return False, f"outside every allow window ({', '.join(allows)})"
    if open_allows:
        return True, f"allow window {', '.join(open_allows)} is in effect"
    return True, "no deny window is in effect"


def _next_change(windows: Sequence[SyncWindow], now: datetime, is_open: bool) -> datetime | None:
    """The first instant after ``now`` at which open/closed flips (None: not within the horizon).

    Read ahead in growing steps, each step reading only the starts it adds."""
    starts = [[s] if (s := latest_start(w, now)) else [] for w in windows]
    lo = now
    for span in _HORIZONS:
        hi = seen = now + span
        for w, known in zip(windows, starts, strict=True):
            ahead, complete = starts_between(w, lo, hi)
            known.extend(ahead)
            if not complete:
                seen = min(seen, ahead[-1] if ahead else lo)
        bounds = sorted({b for w, known in zip(windows, starts, strict=True) for s in known
                         for b in (s, s + w.duration) if lo < b <= seen})
        for at in bounds:
            active = [w for w, known in zip(windows, starts, strict=True)
                      if _in(known, w.duration, at)]
            if _decide(windows, active)[0] != is_open:
                return at
        if seen < hi:
            return None
        lo = hi
    return None


def _in(starts: list[datetime], duration: timedelta, at: datetime) -> bool:
    """Whether a window with these (sorted) starts is in effect at ``at``."""
    i = bisect.bisect_right(starts, at)
    return i > 0 and at < starts[i - 1] + duration


def window_view(windows: Sequence[SyncWindow], now: datetime) -> dict[str, Any] | None:
    """The ``sync_window`` of ``status``, ``/status`` and the dashboard (None: no windows set)."""
    if not windows:
        return None
    return {**evaluate(windows, now).to_dict(), "windows": [w.to_dict() for w in windows]}


def closed_window(windows: Sequence[SyncWindow], now: datetime) -> WindowClosed | None:
    """The deferral the windows impose at ``now`` (None: open). ``window`` names the deny
    windows in effect, or the allow windows it is outside of."""
    if not windows:
        return None
    state = evaluate(windows, now)
    if state.open:
        return None
    deny = [w.label for w in windows if w.kind == DENY and w.label in state.active]
    named = ", ".join(deny) or "outside " + ", ".join(w.label for w in windows if w.kind == ALLOW)
    return WindowClosed(state.reason, iso(state.next_change) if state.next_change else None, named)
