"""Assemble a Syncer from a Config: the journal, the publisher and the post-flip checks.

Kept apart from sync.py so the sync logic can be tested with fakes, and from
cli.py so the daemon and the CLI build exactly the same thing.
"""

from __future__ import annotations

from typing import Any

from skillsyncd.audit.commands import open_journal
from skillsyncd.audit.journal import Journal
from skillsyncd.config import Config
from skillsyncd.notify.observers import Observers, build_observers
from skillsyncd.publish.publisher import Mirror, mirror_for, publish, published_check, unpublish
from skillsyncd.release.releases import Releases
from skillsyncd.sync.checks import post_deploy_checks, readback_check
from skillsyncd.sync.pipeline import Syncer
from skillsyncd.sync.user_guard import require_owner
from skillsyncd.sync.values import Check


class _Publishing:
    """Publish and unpublish for one Syncer through one Mirror, kept for the Syncer's life so it
    remembers what it published (made at the first use: a misconfigured mode fails that sync)."""

    def __init__(self) -> None:
        self._mirror: Mirror | None = None

    def _mirror_for(self, cfg: Config) -> Mirror | None:
        if self._mirror is None or self._mirror.root != cfg.publish_dir:
            self._mirror = mirror_for(cfg)
        return self._mirror

    def publish(self, cfg: Config, release_id: str) -> Any:
        return publish(cfg, Releases(cfg.state_dir).dir(release_id), self._mirror_for(cfg))

    def unpublish(self, cfg: Config) -> Any:
        mirrored = cfg.publish_mode == "mirror" and cfg.publish_dir is not None
        return unpublish(cfg, self._mirror_for(cfg) if mirrored else None)


def build_syncer(cfg: Config, extra_checks: tuple[Check, ...] = (),
                 journal: Journal | None = None, observers: Observers | None = None) -> Syncer:
    """The Syncer for ``cfg``; ``observers`` (the alert and commit-status senders) read its journal.

    Without ``observers`` the senders ``cfg`` asks for are started here; a caller that builds
    more than one Syncer in a process passes the same value to each, so nothing is sent twice.
    """
    require_owner(cfg.state_dir)  # a root --once must not leave root-owned files
    journal = journal or open_journal(cfg)
    (observers if observers is not None else build_observers(cfg)).attach(journal)
    publishing = _Publishing()
    return Syncer(
        cfg,
        record=journal.append,
        publish=publishing.publish,
        checks=(readback_check, published_check, *post_deploy_checks(cfg, journal.append), *extra_checks),
        journalled=journal.journalled,
        unpublish=publishing.unpublish,
    )
