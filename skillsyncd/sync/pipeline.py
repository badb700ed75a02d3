"""One sync, top to bottom: lock, recover, probe, fetch, stage, hold?, go live, record.

:meth:`Syncer.sync` is the list of steps; each step is one call that returns a
value, and a step that ends the sync returns its outcome early. Decisions are
pure (:mod:`~skillsyncd.sync.decide`); the one record a sync leaves is written by
the ledger from its outcome. The rule after any failure: what serves is what
served before (docs/architecture.md). Blocking; the daemon runs it in a worker
thread.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog

from skillsyncd.audit.journal import now_iso
from skillsyncd.config import Config
from skillsyncd.errors import ReleaseError, SourceError
from skillsyncd.model import Event, Status
from skillsyncd.release.manifest import EMPTY
from skillsyncd.release.releases import Releases
from skillsyncd.source.remote import FetchResult, Source
from skillsyncd.status import disk_error
from skillsyncd.sync import outcomes, recovery, retention, stage
from skillsyncd.sync.decide import skip_reason
from skillsyncd.sync.freeze import settle
from skillsyncd.sync.golive import GoLive
from skillsyncd.sync.ledger import Ledger, Recorder
from skillsyncd.sync.lock import DeployLock
from skillsyncd.sync.outcomes import Deferral
from skillsyncd.sync.rollback import roll_back_to
from skillsyncd.sync.state import State
from skillsyncd.sync.values import Candidate, Check, Live, Publisher, Run, SyncOutcome, Unpublisher, Verdict
from skillsyncd.sync.veto import run_pre_flip
from skillsyncd.sync.windows import WindowClosed, closed_window

log = structlog.get_logger(__name__)


class Syncer:
    """Runs syncs and rollbacks for one configuration."""

    def __init__(self, cfg: Config, record: Recorder | None = None, publish: Publisher | None = None,
                 checks: Sequence[Check] = (), journalled: Callable[[str], bool] | None = None,
                 unpublish: Unpublisher | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.cfg = cfg
        self.clock = clock or _utc_now  # what the sync windows are read at (tests: a fake clock)
        self.releases = Releases(cfg.state_dir)
        self.ledger = Ledger(cfg.state_file, record, journalled)
        self.golive = GoLive(cfg, self.releases, publish, unpublish, checks)
        self._recovered = False  # recovery runs at the first sync, and after a failed one

    def sync(self, trigger: str = "manual", force: bool = False,
             window_override: bool = False) -> SyncOutcome:
        run = Run(uuid.uuid4().hex[:12], trigger, force, time.monotonic(), now_iso(), window_override)
        structlog.contextvars.bind_contextvars(sync_id=run.sync_id)
        try:
            with DeployLock(self.cfg):
                return self._sync_locked(run)
        finally:
            structlog.contextvars.unbind_contextvars("sync_id", "commit", "release")
            release_free_memory()

    def rollback(self, to: str | None = None, trigger: str = "manual") -> SyncOutcome:
        """Flip back to ``to``, by default the release ``current`` replaced that is not bad."""
        run = Run(uuid.uuid4().hex[:12], trigger, False, time.monotonic(), now_iso())
        with DeployLock(self.cfg):
            return roll_back_to(self.golive, self.ledger, run, to)

    def _sync_locked(self, run: Run) -> SyncOutcome:
        source = Source(self.cfg)
        live = self._open(run, source)
        try:
            return self._steps(run, live, source)
        except stage.Refused:
            raise
        except Exception as exc:
            self._recovered = False
            error = self._failed(run, live, exc)
            if error is exc:
                raise
            raise error from exc

    def _steps(self, run: Run, live: Live, source: Source) -> SyncOutcome:
        live = self._recover(run, live)
        head = self._probe(source, live)
        frozen = deferral(self.cfg, self.ledger.record, run, self.clock())
        skip = skip_reason(live.state, live.current, head, run.force, self.cfg.release_settings(),
                           frozen=frozen is not None)
        if skip is not None:
            return self._close(run, live, _skipped(run, live, head, skip, frozen))
        fetched = _fetch(source, live, head)
        candidate = self._stage(run, live, source, fetched)
        held = hold(self.cfg, self.releases, self.ledger.record, run, live, candidate, head,
                    self.clock)
        if held is not None:
            return self._close(run, live, held)
        verdict = self.golive.go_live(candidate)
        if verdict.failed:
            return self._close(run, live, dataclasses.replace(self.golive.roll_back(
                live, candidate, verdict, run.sync_id, run.trigger), upstream=head))
        return self._deploy(run, live, candidate, source, verdict, head)

    # -- steps --

    def _open(self, run: Run, source: Source) -> Live:
        self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
        state = self.ledger.load()
        log.info(str(Event.SYNC_STARTED), trigger=run.trigger, ref=self.cfg.ref,
                 source=source.safe_url)
        self.ledger.open(run, state)
        return Live(state, self.releases.current())

    def _recover(self, run: Run, live: Live) -> Live:
        if self._recovered:
            return Live(live.state, live.current,
                        self.releases.manifest(live.current) if live.current else EMPTY)
        live = recovery.recover(self.golive, self.ledger, run, live)
        self._recovered = True
        return live

    def _probe(self, source: Source, live: Live) -> str:
        head = source.probe()
        structlog.contextvars.bind_contextvars(commit=head[:12])
        if live.state.settings != self.cfg.release_settings() and live.state.commit is not None:
            log.info("settings_changed", hint="the settings that shape a release changed: re-deploying")
        return head

    def _stage(self, run: Run, live: Live, source: Source, fetched: FetchResult) -> Candidate:
        """Plan, validate and stage; a commit refused as a whole is recorded, then raised."""
        try:
            return stage.stage(self.cfg, self.releases, run, live, source, fetched)
        except stage.Refused as refused:
            log.warning(str(Event.REJECTED), error=str(refused))
            self._close(run, live, outcomes.refused(
                run, live, refused.commit, refused.settings, refused.refusal.policy,
                refused.refusal.findings, str(refused)))
            raise

    def _deploy(self, run: Run, live: Live, c: Candidate, source: Source, verdict: Verdict,
                head: str) -> SyncOutcome:
        """Record the release that went live, then retention; not on record means not live."""
        outcome = outcomes.deployed(run, live, c, head, verdict, source.safe_url, self.cfg.ref)
        try:
            outcome, state = self._record(run, live, outcome)
        except Exception:
            self.golive.restore(live)  # not on record: what served before serves again
            raise
        _warn_deployed(self.cfg, c)
        retention.prune(self.releases, self.cfg.keep_releases, state)
        return outcome

    def _failed(self, run: Run, live: Live, exc: Exception) -> Exception:
        """Nothing changed on disk (or it was put back): say so plainly, and keep the record."""
        error: Exception = ReleaseError(disk_error(exc, self.cfg.state_dir)) \
            if isinstance(exc, OSError) else exc
        kind = Event.FETCH_FAILED if isinstance(exc, SourceError) else Event.SYNC_FAILED
        log.error(str(kind), error=str(error), exc_type=type(exc).__name__)
        # Re-read: recovery in this same sync may have recorded what serves now.
        fresh = Live(self.ledger.load(), self.releases.current())
        self._close(run, fresh, outcomes.failed(run, fresh, kind, error))
        return error

    def _close(self, run: Run, live: Live, outcome: SyncOutcome) -> SyncOutcome:
        return self._record(run, live, outcome)[0]

    def _record(self, run: Run, live: Live, outcome: SyncOutcome) -> tuple[SyncOutcome, State]:
        duration = round(time.monotonic() - run.started, 3)
        outcome = dataclasses.replace(outcome, duration=duration)
        state = self.ledger.close(run, live.state, outcome)
        log.info(str(Event.SYNC_FINISHED), status=str(outcome.status), commit=outcome.commit,
                 release=outcome.release, duration=duration)
        return outcome, state

    # the parts tests and tools set after construction
    @property
    def publish(self) -> Publisher | None:
        return self.golive.publisher

    @publish.setter
    def publish(self, value: Publisher | None) -> None:
        self.golive.publisher = value

    @property
    def checks(self) -> list[Check]:
        return self.golive.checks


def _skipped(run: Run, live: Live, head: str, status: Status, freeze: Deferral | None) -> SyncOutcome:
    """Nothing to stage: say why in the log, and end with what serves."""
    reason = None
    if status is Status.FROZEN and freeze is not None:
        reason = freeze.describe()
        log.info("still_frozen", reason=reason, hint=_waiting_hint(freeze))
    elif status is Status.NO_CHANGE:
        log.info(str(Event.NO_CHANGE), release=live.current)
    elif status is Status.SKIPPED_BAD:
        reason = live.state.bad_commits[head]
        log.warning("skipped_bad_commit", reason=reason)
    else:
        reason = "commit was rejected by validation"
        log.info("skipped_rejected_commit")
    return outcomes.skipped(run, live, head, status, reason, freeze)


def _fetch(source: Source, live: Live, head: str) -> FetchResult:
    """Fetch ``head`` into the mirror (reset first when the source URL changed)."""
    if live.state.source and live.state.source != source.safe_url:
        log.warning("source_changed", old=live.state.source, new=source.safe_url)
        source.reset_mirror()
    fetched = source.fetch(head, previous=live.commit)
    log.info("fetched", tree=fetched.tree, fetched=fetched.fetched, objects=fetched.objects,
             bytes=fetched.bytes, duration=round(fetched.duration, 3),
             history_rewritten=fetched.history_rewritten)
    if fetched.history_rewritten:
        log.warning("history_rewritten", previous_commit=live.commit)
    return fetched


def deferral(cfg: Config, record: Recorder, run: Run, now: datetime) -> Deferral | None:
    """What keeps a commit from going live now: the freeze first (no override lifts it), then
    the sync windows (an operator's ``--window-override`` sync passes them)."""
    freeze = settle(cfg, record)
    if freeze is not None:
        return freeze
    closed = closed_window(cfg.sync_windows, now)
    if closed is not None and run.window_override:
        log.warning("window_overridden", reason=closed.reason, window=closed.window,
                    hint="an operator's manual sync deploys inside a closed sync window")
        return None
    return closed


def _waiting_hint(freeze: Deferral) -> str:
    if isinstance(freeze, WindowClosed):
        return ("the commit waits for the sync window; `skillsyncd --once --window-override` "
                "or POST /sync?override=window deploys it now")
    return "the commit waits; `skillsyncd unfreeze`"


def hold(cfg: Config, releases: Releases, record: Recorder, run: Run, live: Live, c: Candidate,
         head: str, clock: Callable[[], datetime] | None = None) -> SyncOutcome | None:
    """Before the flip: a freeze or a closed sync window keeps the staged release from going
    live, and the pre-flip command may refuse it. None: go live. A held release is deleted (it
    never served); the next sync stages it again from the store, which keeps its versions."""
    freeze = deferral(cfg, record, run, (clock or _utc_now)())  # again: staging may take a while
    outcome: SyncOutcome | None = None
    if freeze is not None:
        log.warning(str(Event.FROZEN), reason=freeze.describe(), staged_release=c.release,
                    hint=_waiting_hint(freeze),
                    added=len(c.plan.added), changed=len(c.plan.changed),
                    removed=len(c.plan.removed))
        outcome = outcomes.frozen(run, live, c, head, freeze)
    elif cfg.pre_flip_command:
        veto = run_pre_flip(cfg, releases, run, live, c)
        if veto.reason is not None:
            outcome = outcomes.vetoed(run, live, c, head, veto.reason)
    if outcome is not None:
        releases.delete(c.release)
    return outcome


def _warn_deployed(cfg: Config, c: Candidate) -> None:
    """After the record: the held-back skills that are news, and a release holding nothing."""
    for name, reasons in c.held.items():
        if name not in c.held_again:
            log.warning("skill_held_back", skill=name, reasons=reasons)
    if not c.manifest.live:
        log.warning("nothing_live", skills_path=cfg.skills_path or ".", skill_depth=cfg.skill_depth,
                    hint="the release holds no skill: check SKILLSYNC_SKILLS_PATH and "
                         "SKILLSYNC_SKILL_DEPTH against the repository's layout")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def release_free_memory() -> None:
    """Give the heap pages a sync freed back to the OS (glibc ``malloc_trim``).

    A first sync of 10,000 skills peaks far above what an idle daemon holds; without
    this the freed pages stay in the process and count as its resident memory.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        fn: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return fn
