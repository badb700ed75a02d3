"""The one writer of state.json and the audit journal, and the one State transition.

A sync touches the ledger twice: :meth:`Ledger.open` journals that it started,
:meth:`Ledger.close` records how it ended. ``close`` journals the outcome's event
first, then writes the state that :func:`advance` derives from the state the sync
started from and its outcome. A crash between the two leaves the journal ahead,
which start-up recovery sees (``journalled``) and does not write twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import structlog

from skillsyncd.audit import events
from skillsyncd.audit.events import JournalEvent
from skillsyncd.audit.journal import now_iso
from skillsyncd.errors import SkillsyncError
from skillsyncd.fsutil import atomic_write
from skillsyncd.model import Event, Status
from skillsyncd.release.manifest import finding_to_json
from skillsyncd.sync.state import State, load_state
from skillsyncd.sync.values import Run, SyncOutcome

log = structlog.get_logger(__name__)


class Recorder(Protocol):
    """Where audit events go (the journal's ``append``)."""

    def __call__(self, event: JournalEvent) -> Any: ...


def _no_record(event: JournalEvent) -> None:
    return None


def advance(state: State, run: Run, outcome: SyncOutcome, now: str) -> State:
    """The state after ``outcome``, from the state the sync started from (pure).

    The only place a new :class:`State` is built from an old one.
    """
    seen = dataclasses.replace(state, last_attempt=run.attempt,
                               upstream_commit=outcome.upstream or state.upstream_commit,
                               waiting=_waiting_after(state, outcome, now))
    ok = dataclasses.replace(seen, failure_streak=0, last_success=now, last_error=None)
    status = outcome.status
    if status is Status.FROZEN:
        return ok
    if status is Status.DEPLOYED:
        return dataclasses.replace(
            ok, commit=outcome.commit, release=outcome.release, last_good_release=outcome.release,
            source=outcome.source or state.source, ref=outcome.ref or state.ref,
            settings=outcome.settings or state.settings,
            rejected_commit=None if not outcome.recovered else state.rejected_commit)
    if status is Status.REJECTED:
        if outcome.event is None:  # the same refused commit again
            return ok
        return dataclasses.replace(ok, rejected_commit=outcome.commit, settings=outcome.settings)
    if status in (Status.NO_CHANGE, Status.SKIPPED_BAD):
        return ok
    if status is Status.MANUAL_ROLLBACK:
        bad = {k: v for k, v in state.bad_commits.items() if k != outcome.commit}
        if outcome.previous_commit and outcome.previous_commit != outcome.commit:
            bad[outcome.previous_commit] = f"manual rollback to {outcome.release}"
        return dataclasses.replace(seen, commit=outcome.commit, release=outcome.release,
                                   last_good_release=outcome.release, bad_commits=bad)
    failed = dataclasses.replace(seen, failure_streak=state.failure_streak + 1,
                                 last_error=outcome.reason)
    if status is Status.ROLLED_BACK:  # what serves is what served before the flip
        bad = dict(state.bad_commits)
        if outcome.marked_bad and outcome.commit:
            bad[outcome.commit] = f"health check failed: {outcome.reason}"
        return dataclasses.replace(failed, bad_commits=bad, commit=outcome.previous_commit,
                                   release=outcome.previous_release)
    return failed


WAITING_NAMES = 100  # skill names kept per kind in state.json's ``waiting`` (the counts are whole)


def waiting_of(outcome: SyncOutcome, now: str) -> dict[str, Any]:
    """What a freeze holds back, in brief, for state.json (pure)."""
    plan = outcome.plan
    return {
        "commit": outcome.commit, "settings": outcome.settings, "since": now,
        "release": outcome.release, "until": outcome.freeze_until, "window": outcome.window,
        "counts": {"added": len(plan.added), "changed": len(plan.changed),
                   "removed": len(plan.removed), "held_back": len(outcome.held_back)},
        "added": list(plan.added[:WAITING_NAMES]), "changed": list(plan.changed[:WAITING_NAMES]),
        "removed": list(plan.removed[:WAITING_NAMES]),
        "held_back": sorted(outcome.held_back)[:WAITING_NAMES],
    }


def _waiting_after(state: State, outcome: SyncOutcome, now: str) -> dict[str, Any] | None:
    """What waits behind a freeze after ``outcome``: a new frozen commit replaces it; a repeat,
    a failure or a manual rollback keep it; anything that judged the head anew clears it."""
    status = outcome.status
    if status is Status.FROZEN:
        return state.waiting if outcome.event is None else waiting_of(outcome, now)
    if status in (Status.FAILED, Status.MANUAL_ROLLBACK) or (
            status is Status.REJECTED and outcome.event is None):
        return state.waiting
    return None


def journal_event(run: Run, outcome: SyncOutcome) -> JournalEvent:
    """The typed journal event of ``outcome.event`` (pure); one class per kind (docs/audit.md)."""
    event = outcome.event
    base: dict[str, Any] = {"sync_id": outcome.sync_id, "trigger": run.trigger,
                            "commit": outcome.commit, "previous_commit": outcome.previous_commit,
                            "previous_release": outcome.previous_release}
    skills = tuple(outcome.skills)
    findings = tuple(finding_to_json(f) for f in outcome.findings)
    if event is Event.NO_CHANGE:
        return events.NoChange(**base, release=outcome.release)
    if event is Event.DEPLOYED:
        extra: dict[str, Any] = {} if outcome.recovered else {
            "held_back": {k: tuple(v) for k, v in outcome.held_back.items()},
            "history_rewritten": bool(outcome.history_rewritten), "findings": findings}
        return events.Deployed(**base, recovered=outcome.recovered, release=outcome.release,
                               skills=skills, skills_count=outcome.skills_live, **extra)
    if event is Event.REJECTED:
        return events.Rejected(**base, policy=outcome.policy, findings=findings)
    if event is Event.ROLLED_BACK:
        return events.RolledBack(**base, release=outcome.release, skills=skills,
                                 rolled_back_release=outcome.rolled_back_release,
                                 reason=outcome.reason, marked_bad=outcome.marked_bad,
                                 recovered=outcome.recovered)
    if event is Event.FROZEN:
        return events.Frozen(**base, release=outcome.release, skills=skills, reason=outcome.reason,
                             until=outcome.freeze_until, window=outcome.window, findings=findings,
                             held_back={k: tuple(v) for k, v in outcome.held_back.items()})
    if event is Event.MANUAL_ROLLBACK:
        return events.ManualRollback(**base, release=outcome.release, reason=outcome.reason,
                                     skills=skills, skills_count=outcome.skills_live)
    # fetch_failed / sync_failed: the commit is the one that still serves
    failed = events.FetchFailed if event is Event.FETCH_FAILED else events.SyncFailed
    return failed(**{**base, "commit": outcome.previous_commit}, error=outcome.reason)


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

    def open(self, run: Run, state: State) -> None:
        """The start record: a journal line only; state.json is written when the sync ends."""
        self.record(events.SyncStarted(sync_id=run.sync_id, trigger=run.trigger,
                                       commit=state.commit))

    def close(self, run: Run, state: State, outcome: SyncOutcome, finished: bool = True) -> State:
        """Record ``outcome``: its event, then the state :func:`advance` derives, then
        ``sync_finished`` (left out for start-up recovery, which is no sync of its own).

        If the outcome's own record fails, the caller learns it (a deploy that is not
        on record is undone). A failed sync's record, and ``sync_finished``, are best
        effort: when the disk that failed the sync also refuses them, the original
        error is the one to report.
        """
        new = advance(state, run, outcome, now_iso())
        failed = outcome.status is Status.FAILED
        try:
            if outcome.event is not None:
                self.record(journal_event(run, outcome))
            save_state(self.state_file, new)
        except (OSError, SkillsyncError) as book:
            if not failed:
                raise
            log.error("failure_not_recorded", error=str(book))
        if finished:
            try:
                self.record(events.SyncFinished(
                    sync_id=outcome.sync_id, trigger=run.trigger, status=str(outcome.status),
                    commit=outcome.commit, release=outcome.release, duration=outcome.duration))
            except (OSError, SkillsyncError) as book:  # the outcome itself is on record
                log.error("failure_not_recorded", error=str(book))
        return new
