"""Journal events as typed values: one frozen class per event kind, and the JSON line codec.

The journal (``skillsyncd.audit.journal``) writes only what :func:`encode` gives
and reads only through :func:`decode`; every consumer reads attributes, never
string keys. The JSON on disk keeps the shape 0.1.0 and 0.2.0 wrote (the common
fields on every line, null when they do not apply), so old journals read as
today's: a missing field takes its default, 0.1.0's ``validation_failed`` is a
:class:`Rejected`, a kind this version does not know becomes an
:class:`UnknownEvent`, and fields a class does not name are kept in ``extra``
and written back unchanged, so nothing read is dropped.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from skillsyncd.model import DEPLOYMENT_EVENTS, Event, event_kind

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, kw_only=True)
class JournalEvent:
    """The fields every journal line carries (``id``/``seq``/``timestamp``/``replica`` are
    given by the journal on append)."""

    KIND: ClassVar[str] = ""

    id: str = ""
    seq: int = 0
    timestamp: str = ""
    replica: str = ""
    trigger: str | None = None
    sync_id: str | None = None
    commit: str | None = None
    previous_commit: str | None = None
    release: str | None = None
    previous_release: str | None = None
    skills: tuple[Mapping[str, Any], ...] = ()  # per-skill lines (name, version, content_sha, change)
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)  # fields no class names

    @property
    def kind(self) -> str:
        return self.KIND

    def skill_names(self) -> tuple[str, ...]:
        return tuple(str(s.get("name")) for s in self.skills if s.get("name"))


@dataclass(frozen=True, kw_only=True)
class SyncStarted(JournalEvent):
    KIND: ClassVar[str] = str(Event.SYNC_STARTED)


@dataclass(frozen=True, kw_only=True)
class SyncFinished(JournalEvent):
    KIND: ClassVar[str] = str(Event.SYNC_FINISHED)
    status: str | None = None
    duration: float | None = None


@dataclass(frozen=True, kw_only=True)
class NoChange(JournalEvent):
    KIND: ClassVar[str] = str(Event.NO_CHANGE)


@dataclass(frozen=True, kw_only=True)
class Deployed(JournalEvent):
    KIND: ClassVar[str] = str(Event.DEPLOYED)
    skills_count: int | None = None
    held_back: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # skill -> its reasons
    history_rewritten: bool = False
    findings: tuple[Mapping[str, Any], ...] = ()
    recovered: bool = False  # journalled by start-up recovery, not by a sync of its own


@dataclass(frozen=True, kw_only=True)
class Rejected(JournalEvent):
    KIND: ClassVar[str] = str(Event.REJECTED)
    policy: str | None = None  # "guard": the mass-removal guard refused it
    findings: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, kw_only=True)
class RolledBack(JournalEvent):
    KIND: ClassVar[str] = str(Event.ROLLED_BACK)
    rolled_back_release: str | None = None
    reason: str | None = None
    marked_bad: bool = False
    recovered: bool = False


@dataclass(frozen=True, kw_only=True)
class ManualRollback(JournalEvent):
    KIND: ClassVar[str] = str(Event.MANUAL_ROLLBACK)
    reason: str | None = None
    skills_count: int | None = None


@dataclass(frozen=True, kw_only=True)
class FetchFailed(JournalEvent):
    KIND: ClassVar[str] = str(Event.FETCH_FAILED)
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class SyncFailed(JournalEvent):
    KIND: ClassVar[str] = str(Event.SYNC_FAILED)
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class GatewayConfirmed(JournalEvent):
    """What the running gateway said about a release just flipped to (sync/confirm.py)."""

    KIND: ClassVar[str] = str(Event.GATEWAY_CONFIRMED)
    state: str | None = None  # confirmed | unreachable | refused
    expected: int = 0
    seen: int = 0
    gaps: tuple[Mapping[str, Any], ...] = ()  # skill, reason, detail, blamed
    summary: str | None = None


@dataclass(frozen=True, kw_only=True)
class FreezeStarted(JournalEvent):
    """An operator froze deployments (``skillsyncd freeze``, ``POST /freeze``)."""

    KIND: ClassVar[str] = str(Event.FREEZE_STARTED)
    reason: str | None = None
    until: str | None = None  # UTC ISO time it ends by itself; None: until `unfreeze`
    by: str | None = None  # cli | http


@dataclass(frozen=True, kw_only=True)
class FreezeEnded(JournalEvent):
    """A freeze ended: ``how`` is ``unfreeze`` (an operator) or ``expired`` (its ``until``)."""

    KIND: ClassVar[str] = str(Event.FREEZE_ENDED)
    how: str | None = None
    reason: str | None = None  # the freeze's own reason
    by: str | None = None


@dataclass(frozen=True, kw_only=True)
class Frozen(JournalEvent):
    """A sync staged and validated ``commit`` and a freeze (or the sync windows) kept it from
    going live."""

    KIND: ClassVar[str] = str(Event.FROZEN)
    reason: str | None = None  # the freeze's reason, or the windows'
    until: str | None = None
    window: str | None = None  # set when sync windows deferred it: which ones (None: a freeze)
    held_back: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    findings: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(JournalEvent):
    """A kind this version does not know (a newer writer's): kept whole, shipped as it is."""

    name: str = "?"

    @property
    def kind(self) -> str:
        return self.name


BY_KIND: Mapping[str, type[JournalEvent]] = MappingProxyType({
    cls.KIND: cls for cls in (SyncStarted, SyncFinished, NoChange, Deployed, Rejected, RolledBack,
                              ManualRollback, FetchFailed, SyncFailed, GatewayConfirmed,
                              FreezeStarted, FreezeEnded, Frozen)})
_COMMON = ("trigger", "sync_id", "commit", "previous_commit", "release", "previous_release",
           "skills")
_CODEC_FIELDS = frozenset({"kind", "extra", "name"})
_TUPLES = frozenset({"skills", "findings", "gaps"})


def _fields(cls: type[JournalEvent]) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls) if f.name not in _CODEC_FIELDS}


def _value(name: str, raw: Any, default: Any) -> Any:
    """One field from JSON, tolerant of what old writers left (null, wrong container)."""
    if raw is None:
        return default if name != "seq" else 0
    if name in _TUPLES:
        if not isinstance(raw, list):
            return ()
        return tuple(MappingProxyType(dict(x)) for x in raw if isinstance(x, Mapping))
    if name == "held_back":
        if not isinstance(raw, Mapping):
            return _EMPTY
        return MappingProxyType({str(k): tuple(str(r) for r in (v if isinstance(v, list) else [v]))
                                 for k, v in raw.items()})
    if name == "seq":
        return int(raw)
    if isinstance(default, bool):
        return bool(raw)
    return raw


def decode(raw: Mapping[str, Any]) -> JournalEvent:
    """The typed event of one journal line (any shape 0.1.0 or 0.2.0 wrote)."""
    kind = event_kind(raw.get("kind"))
    cls = BY_KIND.get(kind, UnknownEvent)
    known = _fields(cls)
    values: dict[str, Any] = {}
    for name, f in known.items():
        if f.default is not dataclasses.MISSING:
            default = f.default
        else:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        values[name] = _value(name, raw.get(name), default)
    extra = {k: v for k, v in raw.items() if k not in known and k != "kind"}
    if cls is UnknownEvent:
        values["name"] = str(raw.get("kind", "?"))
    return cls(**values, extra=MappingProxyType(extra) if extra else _EMPTY)


def encode(event: JournalEvent) -> dict[str, Any]:
    """The JSON object of ``event``: own fields, then the common ones, then ``extra``."""
    out: dict[str, Any] = {"id": event.id, "seq": event.seq, "kind": event.kind,
                           "timestamp": event.timestamp, "replica": event.replica}
    for name in _COMMON:
        value = getattr(event, name)
        if name == "skills":  # null where no skill applies, as 0.1.0 and 0.2.0 wrote it
            listed = isinstance(event, Deployed | RolledBack | ManualRollback | Frozen)
            value = [dict(s) for s in value] if value or listed else None
        out[name] = value
    for name in _fields(type(event)):
        if name in out or (name == "recovered" and not getattr(event, name)):  # written only when set
            continue
        value = getattr(event, name)
        if name in _TUPLES:
            value = [dict(x) for x in value]
        elif name == "held_back":
            value = {k: list(v) for k, v in value.items()}
        out[name] = value
    for k, v in event.extra.items():
        out.setdefault(k, v)
    return out


def to_line(event: JournalEvent, compact: bool = True) -> str:
    """One event as one JSON line (no newline): what the journal writes, what ``audit --json`` prints."""
    return json.dumps(encode(event), ensure_ascii=False, default=str,
                      separators=(",", ":") if compact else None)


def is_deployment(event: JournalEvent) -> bool:
    """Whether ``event`` changes (or refuses to change) what is live: one deployment row."""
    return event.kind in DEPLOYMENT_EVENTS
