"""Retention after a deploy: old releases first, then the skill versions no kept release uses.

Which releases go is :func:`skillsyncd.sync.decide.choose_deletions` (pure); the
live and the last known-good release are never among them.
"""

from __future__ import annotations

import structlog

from skillsyncd.errors import ReleaseError
from skillsyncd.release.releases import Releases
from skillsyncd.sync.decide import choose_deletions
from skillsyncd.sync.state import State

log = structlog.get_logger(__name__)


def prune(releases: Releases, keep: int, state: State) -> None:
    doomed = choose_deletions(releases.complete(), keep,
                              protect=(state.release, state.last_good_release))
    for release_id in doomed:
        releases.delete(release_id)
        log.info("release_pruned", release=release_id)
    try:
        removed = releases.collect()
    except ReleaseError as exc:  # an unreadable manifest: keep every version, say why
        log.warning("store_not_collected", error=str(exc))
        return
    if removed:
        log.info("skill_versions_pruned", count=len(removed), content_shas=removed[:20])
