"""The sync loop: decides with the Scheduler, syncs in a worker thread, records the outcome.

Only the event loop touches this object; the worker thread runs
``Syncer.sync`` and hands back its outcome through a future. That thread cannot
be cancelled, so stopping means: accept no more triggers, then wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog

from skillsyncd.config import Config
from skillsyncd.errors import SkillsyncError, ValidationRejected
from skillsyncd.model import Status
from skillsyncd.sync.pipeline import Syncer
from skillsyncd.sync.state import load_state
from skillsyncd.sync.values import SyncOutcome

from .hooks import Deployment, HookRunner
from .metrics import Metrics
from .schedule import Scheduler, Timing, is_failure

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass
class Observed:
    """What the loop has seen, for /status, /readyz and /metrics."""

    poller_status: str = "starting"  # starting | syncing | idle | backing_off | stopping
    last_check: str | None = None
    next_check: str | None = None
    last_sync: dict[str, Any] | None = None
    last_deployment: dict[str, Any] | None = None
    webhook_last_received: str | None = None
    last_ok: float | None = None  # unix time of the last sync that reached the remote


def run_in_thread(fn: Callable[[], T], name: str) -> asyncio.Future[T]:
    """Run ``fn`` in a fresh daemon thread; an abandoned thread never blocks exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            result, error = fn(), None
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop already closed: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Daemon:
    """Owns the schedule and runs syncs until told to stop."""

    def __init__(
        self,
        cfg: Config,
        syncer: Syncer,
        metrics: Metrics,
        hooks: HookRunner,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.syncer = syncer
        self.metrics = metrics
        self.hooks = hooks
        self.clock = clock
        self.rand = rand
        self.wall = wall  # unix time, for when a freeze or a sync window ends (tests: a fake clock)
        self.scheduler = Scheduler(Timing(cfg.interval, cfg.jitter, cfg.backoff_max), clock())
        self.observed = Observed(last_ok=_parse_iso(load_state(cfg.state_file).last_success))
        if self.observed.last_ok is not None:
            metrics.last_success.set(self.observed.last_ok)
        self.stopping = False
        self.thaw_at: float | None = None  # unix time a freeze or a closed window ends: sync then
        self.thaw_trigger = "unfreeze"  # "window" when sync windows keep the commit waiting
        self.window_override = False  # the next sync passes closed sync windows (POST /sync)
        self._wake = asyncio.Event()

    # -- inputs --

    def trigger(self, name: str, urgent: bool = False) -> bool:
        """Ask for a sync now. False if stopping or merged into one already pending."""
        if self.stopping:
            log.info("trigger_refused", trigger=name, reason="stopping")
            return False
        queued = self.scheduler.request(name, urgent=urgent)
        log.info("trigger_received", trigger=name, coalesced=not queued, urgent=urgent)
        self._wake.set()
        return queued

    def override_windows(self) -> bool:
        """An operator's manual sync that the sync windows do not defer (a freeze still does)."""
        if self.stopping:
            return False
        self.window_override = True
        queued = self.scheduler.request("manual")
        log.info("trigger_received", trigger="manual", coalesced=not queued, window_override=True)
        self._wake.set()
        return True  # queued, or merged into the pending sync, which now carries the override

    def frozen_until(self, until: str | None) -> None:
        """Sync at ``until`` (a freeze's end), so what waits goes live then, not a poll later."""
        self.thaw_at = _parse_iso(until)
        self._wake.set()

    def wake(self) -> None:
        """Decide again now: the wall clock moved (a host resumed, or a test's clock)."""
        self._wake.set()

    def stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.observed.poller_status = "stopping"
            self._wake.set()

    @property
    def staleness(self) -> float:
        return self.cfg.readiness_staleness or 5 * self.cfg.interval

    def success_age(self) -> float | None:
        """Seconds since the last sync that reached the remote, or None if none has."""
        last = self.observed.last_ok
        return None if last is None else round(max(0.0, time.time() - last), 3)

    def fresh(self) -> bool:
        """Whether the last sync that reached the remote is recent enough for /readyz."""
        last = self.observed.last_ok
        return last is not None and time.time() - last <= self.staleness

    # -- the loop --

    async def run(self) -> None:
        while not self.stopping:
            decision = self.scheduler.decide(self.clock())
            if decision.trigger is not None:
                await self._sync(decision.trigger)
                continue
            wait = decision.wait
            if self.thaw_at is not None:
                if self.thaw_at <= self.wall():
                    self.thaw_at = None
                    self.trigger(self.thaw_trigger)
                    continue
                wait = min(wait, self.thaw_at - self.wall())
            self.observed.poller_status = (
                "backing_off" if self.scheduler.failure_streak else "idle")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _sync(self, trigger: str) -> None:
        self.observed.poller_status = "syncing"
        self.metrics.triggers.labels(trigger=trigger).inc()
        started = self.clock()
        outcome: SyncOutcome | None = None
        reason: str | None = None
        override, self.window_override = self.window_override, False
        try:
            outcome = await run_in_thread(
                lambda: self.syncer.sync(trigger=trigger, window_override=override),
                name=f"sync-{trigger}")
            result = str(outcome.status)
            reason = outcome.reason
        except ValidationRejected as exc:
            result, reason = str(Status.REJECTED), str(exc)
        except SkillsyncError as exc:
            result, reason = str(Status.FAILED), str(exc)
        except Exception as exc:  # a bug in one sync must not end the daemon
            log.exception("sync_crashed", trigger=trigger)
            result, reason = str(Status.FAILED), f"{type(exc).__name__}: {exc}"
        self._record(trigger, started, result, reason, outcome)

    def _record(self, trigger: str, started: float, result: str, reason: str | None,
                outcome: SyncOutcome | None) -> None:
        now = self.clock()
        duration = now - started
        delay = self.scheduler.finished(result, now, self.rand())
        wall = time.time()
        self.observed.last_check = _iso(wall)
        self.observed.next_check = _iso(wall + delay)
        self.observed.last_sync = {
            "trigger": trigger, "result": result, "reason": reason, "at": self.observed.last_check,
            "duration": round(duration, 3),
            "commit": outcome.commit if outcome else None,
            "release": outcome.release if outcome else None,
        }
        frozen = outcome is not None and outcome.status is Status.FROZEN
        self.thaw_at = _parse_iso(outcome.freeze_until) if frozen and outcome else None
        self.thaw_trigger = "window" if frozen and outcome and outcome.window else "unfreeze"
        self.metrics.sync_finished(result, duration)
        self.metrics.failure_streak.set(self.scheduler.failure_streak)
        if not is_failure(result):
            self.observed.last_ok = wall
            self.metrics.last_success.set(wall)
        if outcome is not None and outcome.status in (Status.DEPLOYED, Status.ROLLED_BACK):
            self.observed.last_deployment = {
                "status": outcome.status, "commit": outcome.commit, "release": outcome.release,
                "previous_commit": outcome.previous_commit,
                "previous_release": outcome.previous_release, "trigger": trigger,
                "at": self.observed.last_check, "reason": outcome.reason,
            }
        if outcome is not None and outcome.status is Status.DEPLOYED and outcome.release:
            self.hooks.submit(Deployment(
                commit=outcome.commit or "", release=outcome.release,
                previous_commit=outcome.previous_commit, previous_release=outcome.previous_release,
                trigger=trigger, state_dir=str(self.cfg.state_dir),
            ))
        log.info("next_sync", result=result, delay=round(delay, 3),
                 failure_streak=self.scheduler.failure_streak)


__all__ = ["Daemon", "Observed", "run_in_thread"]
