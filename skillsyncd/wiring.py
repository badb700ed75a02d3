"""Assemble a Syncer from a Config: the journal, the publisher and the post-flip checks.

Kept apart from sync.py so the sync logic can be tested with fakes, and from
cli.py so the daemon and the CLI build exactly the same thing.
"""

from __future__ import annotations

from typing import Any

from skillsyncd.audit import Journal, open_journal
from skillsyncd.audit.history import rollback_skills
from skillsyncd.config import Config
from skillsyncd.daemon.checks import post_deploy_checks
from skillsyncd.errors import ReleaseError
from skillsyncd.publish import publish, verify_published
from skillsyncd.release import Releases
from skillsyncd.sync import Check, Recorder, Syncer, readback_check


def _publisher(cfg: Config, release_id: str) -> Any:
    return publish(cfg, Releases(cfg.state_dir).dir(release_id))


def recorder(cfg: Config, journal: Journal) -> Recorder:
    """journal.append, plus the per-skill changes of a manual rollback (read from the manifests).

    The Syncer records a manual rollback without skills; the audit trail wants
    to know which skill versions went live again, so the two manifests are diffed here.
    """

    def record(kind: str, **fields: Any) -> Any:
        if kind == "manual_rollback" and not fields.get("skills") and fields.get("release"):
            releases = Releases(cfg.state_dir)
            try:
                target = releases.manifest(str(fields["release"]))
                left = (releases.manifest(str(fields["previous_release"]))
                        if fields.get("previous_release") else {"skills": []})
            except ReleaseError:
                pass  # the event is still worth recording without its skills
            else:
                fields["skills"] = rollback_skills(left, target)
                fields["skills_count"] = sum(1 for s in target.get("skills", []) if s.get("live"))
        return journal.append(kind, **fields)

    return record


def build_syncer(cfg: Config, extra_checks: tuple[Check, ...] = (),
                 journal: Journal | None = None) -> Syncer:
    journal = journal or open_journal(cfg)
    return Syncer(
        cfg,
        record=recorder(cfg, journal),
        publish=_publisher,
        checks=(readback_check, verify_published, *post_deploy_checks(cfg), *extra_checks),
        journalled=journal.journalled,
    )
