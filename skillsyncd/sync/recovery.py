"""Recovery: clear a crash's leftovers and trust the disk over state.json.

Runs once when a process starts syncing, and again after a sync that failed.
``current`` is the commit point, so a crash between the flip and the state write
leaves the disk ahead of state.json: the live release is published again
(idempotent) and checked through go-live before it is accepted and its
``deployed`` event recorded; if the checks fail, what served before serves again.
"""

from __future__ import annotations

import contextlib

import structlog

from skillsyncd.config import Config
from skillsyncd.errors import ReleaseError
from skillsyncd.model import Event, Plan, Status
from skillsyncd.release.manifest import EMPTY, Manifest
from skillsyncd.release.releases import Releases
from skillsyncd.source.mirror import clear_leftovers
from skillsyncd.sync.freeze import active_freeze
from skillsyncd.sync.golive import GoLive
from skillsyncd.sync.ledger import Ledger
from skillsyncd.sync.state import State
from skillsyncd.sync.values import Candidate, Live, Run, SyncOutcome, Verdict

log = structlog.get_logger(__name__)


def recover(golive: GoLive, ledger: Ledger, run: Run, live: Live) -> Live:
    """What serves once leftovers are gone and the disk and the record agree again."""
    releases = golive.releases
    leftovers = releases.recover() + clear_leftovers(golive.cfg.mirror_dir)
    if leftovers:
        log.warning("recovered_leftovers", removed=leftovers)
    current = live.current
    if current is None:
        current = _repair(golive, live.state)
    if current is None:
        return Live(live.state, None)
    manifest = releases.manifest(current)
    if live.state.release == current:
        golive.publish(current)  # this process may follow a crash mid-publish
        return Live(live.state, current, manifest)
    return _accept(golive, ledger, run, live.state, current, manifest)


def _repair(golive: GoLive, state: State) -> str | None:
    """Point a missing ``current`` at the recorded release, else the newest good one.

    With a freeze in effect, a pre-flip command or sync windows set, only the recorded
    release: the newest one on disk may be a release staged and never flipped (a kill
    before the flip), which has not passed them; the sync that follows stages and judges
    it again.
    """
    want = repair_target(golive.releases, state)
    if want is not None and want != state.release and _gated(golive.cfg):
        log.warning("current_not_repaired", release=want,
                    hint="never recorded live, and a freeze, the sync windows or the pre-flip "
                         "command must judge it first: the sync stages the head again")
        return None
    if want is not None:
        log.warning("current_repaired", release=want)
        golive.releases.flip(want)
        golive.publish(want)
    return want


def _accept(golive: GoLive, ledger: Ledger, run: Run, state: State, current: str,
            manifest: Manifest) -> Live:
    """``current`` is ahead of state.json: check it, then record it or put back the old one."""
    releases = golive.releases
    log.warning("state_recovered", release=current, state_release=state.release)
    before = releases.manifest(state.release) if state.release in releases.complete() else EMPTY
    previous = Live(state, before.release or None, before)
    verdict = golive.verify(current, {})
    if verdict.problems:
        failed = Candidate(manifest, Plan(), {}, (), (), (), bool(manifest.history_rewritten))
        outcome = golive.roll_back(previous, failed, Verdict(verdict.problems, True, verdict.notes),
                                   run.sync_id, run.trigger, recovered=True)
        return Live(ledger.close(run, state, outcome, finished=False), previous.current, before)
    outcome = SyncOutcome(
        status=Status.DEPLOYED, sync_id=run.sync_id, trigger=run.trigger, recovered=True,
        event=None if ledger.journalled(current) else Event.DEPLOYED,
        commit=manifest.commit, release=current, previous_commit=state.commit,
        previous_release=state.release, settings=state.settings or manifest.settings,
        skills=tuple(s.event() for s in manifest.live), skills_live=len(manifest.live))
    return Live(ledger.close(run, state, outcome, finished=False), current, manifest)


def _gated(cfg: Config) -> bool:
    """Whether something must judge a release before it may go live (beyond validation)."""
    return bool(cfg.pre_flip_command or cfg.sync_windows) or active_freeze(cfg) is not None


def repair_target(releases: Releases, state: State) -> str | None:
    """Where a missing ``current`` points again: the recorded release, else the newest good one."""
    complete = releases.complete()
    if state.release in complete:
        return state.release
    for rid in reversed(complete):
        with contextlib.suppress(ReleaseError):
            if releases.manifest(rid).commit not in state.bad_commits:
                return rid
    return None
