"""The values one sync passes from step to step. All frozen, no I/O.

A step takes what the one before it returned and returns a new value; the
outcome is the only thing the ledger records (``sync.ledger.advance``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from skillsyncd.config import Config
from skillsyncd.model import Event, Finding, Plan, Status
from skillsyncd.release.manifest import EMPTY, Manifest
from skillsyncd.sync.state import State

TRIGGERS = ("poll", "webhook", "signal", "manual", "startup", "unfreeze", "window")

# A post-flip check returns problems (empty list: healthy). A check may also have
# ``wait_ready(cfg) -> str | None``: called before the flip, it waits (bounded) for
# what it checks to be healthy and says why not; such a check never blames a commit
# for problems that were there before the flip.
Check = Callable[[Config, str], Sequence[str]]
Publisher = Callable[[Config, str], Any]
Unpublisher = Callable[[Config], Any]


@dataclass(frozen=True)
class Run:
    """Who asked for this sync, and when."""

    sync_id: str
    trigger: str
    force: bool
    started: float  # time.monotonic()
    attempt: str  # wall-clock ISO time, for state.json
    window_override: bool = False  # an operator's manual sync: the sync windows do not defer it


@dataclass(frozen=True)
class Live:
    """What serves when a step starts: the recorded state and the release behind ``current``."""

    state: State
    current: str | None
    manifest: Manifest = EMPTY

    @property
    def commit(self) -> str | None:
        """The commit that serves (None when nothing is live, whatever state.json says)."""
        return self.state.commit if self.current is not None else None


@dataclass(frozen=True)
class Candidate:
    """A staged, complete release that is not live yet."""

    manifest: Manifest
    plan: Plan
    held: dict[str, list[str]]
    findings: tuple[Finding, ...]
    skills: tuple[dict[str, Any], ...]  # per-skill lines of its journal event
    built: tuple[str, ...]
    history_rewritten: bool
    held_again: tuple[str, ...] = ()  # held back before for the same bytes and rules: not news

    @property
    def release(self) -> str:
        return self.manifest.release


@dataclass(frozen=True)
class Verdict:
    """How publishing and the checks went for a release just flipped to."""

    problems: tuple[str, ...] = ()
    blame: bool = False  # the commit is at fault: mark it bad
    notes: tuple[str, ...] = ()  # problems not blamed on the commit (the gateway was not ready)

    @property
    def failed(self) -> bool:
        """Publishing failed, or a check the commit is blamed for."""
        return len(self.problems) > len(self.notes)


@dataclass(frozen=True)
class SyncOutcome:
    """How one sync, recovery or rollback ended: what the CLI prints and the ledger records.

    ``event`` is the journal event this outcome leaves (None: only state.json
    changes, e.g. a commit skipped as bad). The fields after ``duration`` exist
    for that record.
    """

    status: Status
    sync_id: str
    commit: str | None = None
    previous_commit: str | None = None
    release: str | None = None
    previous_release: str | None = None
    plan: Plan = field(default_factory=Plan)
    held_back: dict[str, list[str]] = field(default_factory=dict)
    skills_live: int = 0  # skills the release serves (held-back skills keeping an old version count)
    findings: tuple[Finding, ...] = ()
    history_rewritten: bool | None = None
    reason: str | None = None
    duration: float = 0.0
    # --- for the record ---
    event: Event | None = None
    trigger: str = "manual"
    upstream: str | None = None  # the head the probe saw
    source: str | None = None  # redacted URL of a deployed commit
    ref: str | None = None  # the ref it was deployed from
    settings: str | None = None  # release settings fingerprint of a deployed or refused commit
    skills: tuple[dict[str, Any], ...] = ()
    policy: str | None = None  # what refused a rejected commit: reject, guard, verify
    rolled_back_release: str | None = None
    marked_bad: bool = False
    recovered: bool = False  # recorded by start-up recovery, not by a sync's own steps
    freeze_until: str | None = None  # a frozen outcome: when the freeze ends by itself (None: never)
    window: str | None = None  # a frozen outcome the sync windows deferred: which windows
