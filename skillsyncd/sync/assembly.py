"""Assemble a Syncer from a Config: the journal, the publisher and the post-flip checks.

Kept apart from sync.py so the sync logic can be tested with fakes, and from
cli.py so the daemon and the CLI build exactly the same thing.
"""

from __future__ import annotations

from typing import Any

from skillsyncd.audit.commands import open_journal
from skillsyncd.audit.journal import Journal
from skillsyncd.config import Config
from skillsyncd.notify.observers import attach as attach_tellers
from skillsyncd.publish.publisher import publish, published_check, unpublish
from skillsyncd.release.releases import Releases
from skillsyncd.sync.checks import post_deploy_checks, readback_check
from skillsyncd.sync.pipeline import Syncer
from skillsyncd.sync.user_guard import require_owner
from skillsyncd.sync.values import Check


def _publisher(cfg: Config, release_id: str) -> Any:
    return publish(cfg, Releases(cfg.state_dir).dir(release_id))


def build_syncer(cfg: Config, extra_checks: tuple[Check, ...] = (),
                 journal: Journal | None = None) -> Syncer:
    require_owner(cfg.state_dir)  # a root --once must not leave root-owned files
    journal = journal or open_journal(cfg)
    attach_tellers(cfg, journal)  # alerts and commit statuses read the journal
    return Syncer(
        cfg,
        record=journal.append,
        publish=_publisher,
        checks=(readback_check, published_check, *post_deploy_checks(cfg, journal.append), *extra_checks),
        journalled=journal.journalled,
        unpublish=unpublish,
    )
