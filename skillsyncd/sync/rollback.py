"""Manual rollback (``skillsyncd rollback``): flip back to an earlier complete release.

The target is chosen by :func:`skillsyncd.sync.decide.rollback_target` unless the
operator names one; the commit left behind is marked bad so no poll redeploys
it. The flip and the publish are go-live's; the record is the ledger's.
"""

from __future__ import annotations

import structlog

from skillsyncd.errors import ReleaseError
from skillsyncd.model import Event, Status
from skillsyncd.release.manifest import EMPTY
from skillsyncd.sync.decide import rollback_skills, rollback_target
from skillsyncd.sync.golive import GoLive
from skillsyncd.sync.ledger import Ledger
from skillsyncd.sync.values import Run, SyncOutcome

log = structlog.get_logger(__name__)


def roll_back_to(golive: GoLive, ledger: Ledger, run: Run, to: str | None) -> SyncOutcome:
    """Flip to ``to`` (default: the release ``current`` replaced that is not bad) and record it."""
    releases = golive.releases
    releases.recover()
    state = ledger.load()
    current = releases.current()
    manifests = {r: releases.manifest(r) for r in releases.complete()}
    target = to or rollback_target(current, manifests, state.bad_commits)
    if target is None:
        raise ReleaseError("no earlier release to roll back to that is not marked bad "
                           "(see `skillsyncd releases`; `--to` names one)")
    if target not in manifests:
        raise ReleaseError(f"release {target} does not exist or is incomplete")
    manifest = manifests[target]
    left = manifests.get(current or "", EMPTY)
    releases.flip(target)
    golive.publish(target)
    outcome = SyncOutcome(
        status=Status.MANUAL_ROLLBACK, event=Event.MANUAL_ROLLBACK, sync_id=run.sync_id,
        trigger=run.trigger, commit=manifest.commit, previous_commit=state.commit, release=target,
        previous_release=current, reason="manual rollback",
        skills=tuple(rollback_skills(left, manifest)), skills_live=len(manifest.live))
    ledger.close(run, state, outcome, finished=False)
    log.info(str(Event.MANUAL_ROLLBACK), release=target, previous_release=current)
    return outcome
