"""Go-live: flip ``current``, publish, run the checks; and put back what served before.

Every way a release becomes live goes through :class:`GoLive`: a sync's new
release, start-up recovery's repair, and a rollback. Problems come back as a
:class:`~skillsyncd.sync.values.Verdict`, never as an exception, so the caller
decides between keeping the release and :meth:`GoLive.roll_back`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from skillsyncd.config import Config
from skillsyncd.errors import ReleaseError
from skillsyncd.model import Event, Status
from skillsyncd.release.releases import Releases
from skillsyncd.status import disk_error
from skillsyncd.sync.values import Candidate, Check, Live, Publisher, SyncOutcome, Unpublisher, Verdict

log = structlog.get_logger(__name__)


class GoLive:
    """What makes a release serve: the flip, the publisher and the post-flip checks."""

    def __init__(self, cfg: Config, releases: Releases, publish: Publisher | None,
                 unpublish: Unpublisher | None, checks: Sequence[Check]) -> None:
        self.cfg = cfg
        self.releases = releases
        self.publisher = publish
        self.unpublisher = unpublish
        self.checks = list(checks)

    def go_live(self, candidate: Candidate) -> Verdict:
        """Wait for the gateway, flip, publish, verify."""
        not_ready = self.baseline()
        self.releases.flip(candidate.release)
        log.info("flipped", release=candidate.release,
                 previous_release=candidate.manifest.previous_release)
        return self.verify(candidate.release, not_ready)

    def verify(self, release_id: str, not_ready: Mapping[int, str]) -> Verdict:
        """Publish the live release and run the checks on it."""
        try:
            self.publish(release_id)
        except Exception as exc:
            why = disk_error(exc, self.cfg.state_dir) if isinstance(exc, OSError) else str(exc)
            log.error("publish_failed", release=release_id, error=why)
            return Verdict(problems=(f"publish failed: {why}",), blame=False)
        blamed, notes = self.check(release_id, not_ready)
        return Verdict(problems=tuple(blamed + notes), blame=bool(blamed), notes=tuple(notes))

    def roll_back(self, live: Live, candidate: Candidate, verdict: Verdict, sync_id: str,
                  trigger: str, recovered: bool = False) -> SyncOutcome:
        """A failure after the flip: what served before serves again; the outcome says why."""
        reason = "; ".join(verdict.problems)[:2000]
        restored = self.restore(live)
        if restored:
            reason = f"{reason}; restoring {live.current or 'nothing live'} also failed: {restored}"
        if live.current is None:
            with contextlib.suppress(OSError, ReleaseError):
                self.releases.delete(candidate.release)  # never served: nothing may repair to it
        log.error(str(Event.ROLLED_BACK), release=live.current,
                  rolled_back_release=candidate.release, reason=reason, marked_bad=verdict.blame)
        return SyncOutcome(
            status=Status.ROLLED_BACK, event=Event.ROLLED_BACK, sync_id=sync_id, trigger=trigger,
            commit=candidate.manifest.commit, release=live.current, reason=reason,
            plan=candidate.plan, previous_commit=live.commit, previous_release=live.current,
            rolled_back_release=candidate.release, marked_bad=verdict.blame,
            skills=candidate.skills, recovered=recovered)

    def restore(self, live: Live) -> str | None:
        """Make what served before serve again; the error text if that failed too."""
        try:
            if live.current is not None:
                self.releases.flip(live.current)
                self.publish(live.current)
            else:
                if self.unpublisher is not None:
                    self.unpublisher(self.cfg)
                self.releases.unflip()
        except Exception as exc:
            log.error("restore_failed", release=live.current, error=str(exc))
            return str(exc)
        return None

    def publish(self, release_id: str) -> None:
        if self.publisher is not None:
            result = self.publisher(self.cfg, release_id)
            log.info("published", release=release_id, result=_jsonable(result))

    def baseline(self) -> dict[int, str]:
        """Before the flip: wait (bounded) for what the checks watch; index -> why it is not ready."""
        not_ready: dict[int, str] = {}
        for i, check in enumerate(self.checks):
            wait = getattr(check, "wait_ready", None)
            if wait is None:
                continue
            why = wait(self.cfg)
            if why:
                not_ready[i] = why
                log.warning("gateway_not_ready", reason=why,
                            hint="a check that fails now is reported, not blamed on the commit")
        return not_ready

    def check(self, release_id: str, not_ready: Mapping[int, str] | None = None
              ) -> tuple[list[str], list[str]]:
        """Run the checks: (problems blamed on the release, problems of a gateway not ready before)."""
        not_ready = not_ready or {}
        blamed: list[str] = []
        notes: list[str] = []
        for i, check in enumerate(self.checks):
            try:
                found = list(check(self.cfg, release_id))
            except Exception as exc:  # a broken check is a failed check
                found = [f"{check_name(check)}: {exc}"]
            if found and i in not_ready:
                notes += [f"gateway not ready before the flip ({not_ready[i]}): {p}" for p in found]
            else:
                blamed += found
        if blamed:
            log.error("health_check_failed", problems=blamed[:20])
        if notes:
            log.warning("health_check_not_blamed", problems=notes[:20])
        return blamed, notes


def check_name(check: Check) -> str:
    """What a check is called in logs: its function's or its class's name."""
    return str(getattr(check, "__name__", None) or type(check).__name__)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json.loads(json.dumps(dataclasses.asdict(value), default=str))
    return value
