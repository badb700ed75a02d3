"""The operator's freeze: ``freeze.json`` in the state dir, and the one writer of it.

While a freeze is in effect every sync still probes, fetches, plans, validates
and stages, but never flips (the pipeline asks :func:`settle` before the flip).
The file is the freeze: it survives restarts and redeploys of the container
because the state dir does, and it is written atomically (``fsutil.atomic_write``)
under a lock of its own (``freeze.lock``), never under the deploy lock, so
``skillsyncd freeze`` answers at once even while a long sync runs.

Order on disk: the file first, then the journal event. A crash between the two
leaves a freeze in effect without its ``freeze_started`` line (the safe side: no
deploy happens that the operator did not allow), never a journal claiming a
freeze that is not there. An unreadable file counts as a freeze: only
``unfreeze`` (which removes it) lets deployments through again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import filelock
import structlog

from skillsyncd.audit import events
from skillsyncd.audit.events import JournalEvent
from skillsyncd.audit.history import SinceError, parse_since
from skillsyncd.audit.journal import now_iso
from skillsyncd.config import Config
from skillsyncd.errors import ConfigError, LockBusy
from skillsyncd.fsutil import atomic_write, fsync_dir
from skillsyncd.model import Event

log = structlog.get_logger(__name__)

FREEZE_FILE = "freeze.json"
LOCK_FILE = "freeze.lock"
MAX_REASON = 500  # characters kept of --reason
BY = ("cli", "http")

Record = Callable[[JournalEvent], Any]


@dataclass(frozen=True)
class Freeze:
    """One freeze as ``freeze.json`` holds it (times are UTC ISO strings, comparable as text)."""

    since: str
    reason: str | None = None
    until: str | None = None  # None: until `skillsyncd unfreeze`
    by: str = "cli"

    def active_at(self, now: str) -> bool:
        return self.until is None or now < self.until

    def describe(self) -> str:
        """One line for logs, ``--once`` and the reason of a frozen sync."""
        why = f": {self.reason}" if self.reason else ""
        until = f" until {self.until}" if self.until else " until unfreeze"
        return f"deployments frozen since {self.since} by {self.by}{why}{until}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode()


def freeze_path(cfg: Config) -> Path:
    return cfg.state_dir / FREEZE_FILE


def read_freeze(cfg: Config) -> Freeze | None:
    """What ``freeze.json`` says, expired or not; None when there is no file."""
    path = freeze_path(cfg)
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return _unreadable(path, str(exc))
    if not isinstance(raw, dict) or not isinstance(raw.get("since"), str):
        return _unreadable(path, "not a freeze object")
    until = raw.get("until")
    reason = raw.get("reason")
    return Freeze(since=raw["since"], reason=str(reason) if reason is not None else None,
                  until=str(until) if until is not None else None, by=str(raw.get("by") or "cli"))


def _unreadable(path: Path, error: str) -> Freeze:
    log.warning("freeze_unreadable", path=str(path), error=error,
                hint="counted as a freeze; `skillsyncd unfreeze` removes it")
    return Freeze(since="?", reason=f"{path.name} is unreadable ({error[:200]}); "
                  "run `skillsyncd unfreeze` to clear it")


def active_freeze(cfg: Config, now: str | None = None) -> Freeze | None:
    """The freeze in effect now (read only: for status, /status, /metrics and the dashboard)."""
    found = read_freeze(cfg)
    return found if found is not None and found.active_at(now or now_iso()) else None


def parse_until(text: str, now: datetime | None = None) -> str:
    """``--until``: an ISO date-time (UTC unless it says) or a duration from now (``2h``)."""
    now = now or datetime.now(UTC)
    try:
        until = parse_since(text, now, ahead=True, flag="--until")
    except SinceError as exc:
        raise ConfigError(str(exc)) from None
    if until <= now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"):
        raise ConfigError(f"--until {text!r} is {until}, which has passed; give a later time "
                          "or a duration such as 2h")
    return until


def set_freeze(cfg: Config, record: Record, reason: str | None = None, until: str | None = None,
               by: str = "cli") -> Freeze:
    """Freeze deployments (replacing any freeze in effect), then journal ``freeze_started``."""
    if reason is not None:
        reason = " ".join(reason.split())[:MAX_REASON] or None  # one line, bounded
    freeze = Freeze(since=now_iso(), reason=reason, until=until, by=by)
    with _FreezeLock(cfg):
        atomic_write(freeze_path(cfg), freeze.to_json())
    log.warning(str(Event.FREEZE_STARTED), reason=reason, until=until, by=by)
    record(events.FreezeStarted(reason=reason, until=until, by=by))
    return freeze


def end_freeze(cfg: Config, record: Record, by: str = "cli") -> Freeze | None:
    """Lift the freeze; returns the one lifted (None: nothing was frozen, nothing journalled)."""
    with _FreezeLock(cfg):
        found = read_freeze(cfg)
        if found is None:
            return None
        _remove(cfg)
    how = "unfreeze" if found.active_at(now_iso()) else "expired"
    log.warning(str(Event.FREEZE_ENDED), how=how, by=by, reason=found.reason)
    record(events.FreezeEnded(how=how, by=by, reason=found.reason))
    return found


def settle(cfg: Config, record: Record) -> Freeze | None:
    """The freeze in effect for this sync; one whose ``until`` has passed is removed and
    journalled as ``freeze_ended`` (how: expired) first. Called under the deploy lock."""
    found = read_freeze(cfg)
    if found is None or found.active_at(now_iso()):
        return found
    with _FreezeLock(cfg):
        again = read_freeze(cfg)
        if again != found:  # replaced meanwhile by a new freeze: that one decides
            return again if again is not None and again.active_at(now_iso()) else None
        _remove(cfg)
    log.warning(str(Event.FREEZE_ENDED), how="expired", until=found.until)
    record(events.FreezeEnded(how="expired", reason=found.reason, by=found.by))
    return None


def _remove(cfg: Config) -> None:
    path = freeze_path(cfg)
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)


class _FreezeLock:
    """``freeze.lock``: one writer of ``freeze.json`` at a time, across processes."""

    def __init__(self, cfg: Config) -> None:
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.path = cfg.state_dir / LOCK_FILE
        self._lock = filelock.FileLock(str(self.path), timeout=cfg.lock_timeout)

    def __enter__(self) -> None:
        try:
            self._lock.acquire()
        except filelock.Timeout as exc:
            raise LockBusy(f"another skillsyncd holds {self.path} after {self._lock.timeout:.0f}s; "
                           "retry") from exc

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
