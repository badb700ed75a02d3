"""Same-named skills in other tiers: which one the gateway loads.

OpenClaw 2026.9.6 merges its skill folders by frontmatter name, a later tier
replacing an earlier one: ``skills.load.extraDirs`` and plugin skills, bundled (and
custodian) skills, the managed folder (where skillsyncd publishes), ``~/.agents/skills``
(only with the default state folder), then each agent workspace's ``.agents/skills``
and ``skills``. Only the winner is listed by ``skills.status``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from skillsyncd.validation.usage.skill import SkillUse

TIERS = ("extra", "bundled", "workshop", "managed", "personal", "workspace")  # lowest first


@dataclass(frozen=True)
class Other:
    """A skill the gateway loads from another folder than the published one."""

    name: str
    tier: str  # one of TIERS
    source: str  # the gateway's source label (openclaw-bundled, agents-skills-project, ...)
    path: str  # its SKILL.md
    skill: SkillUse | None = None  # what it declares, for the catalog and eligibility


@dataclass(frozen=True)
class Collision:
    name: str
    winner: Other | None  # None: the published skill wins
    loser: Other | None  # None: the published skill loses


def collisions(published: Iterable[str], others: Iterable[Other]) -> list[Collision]:
    """For each published name also found elsewhere: the higher tier that beats it, or
    the lower-tier skill it replaces."""
    rank = {t: i for i, t in enumerate(TIERS)}
    mine = rank["managed"]
    by_name: dict[str, list[Other]] = {}
    for o in others:
        by_name.setdefault(o.name, []).append(o)
    out: list[Collision] = []
    for name in sorted(set(published)):
        found = by_name.get(name, [])
        higher = [o for o in found if rank[o.tier] > mine]
        if higher:
            out.append(Collision(name, max(higher, key=lambda o: rank[o.tier]), None))
            continue
        lower = [o for o in found if rank[o.tier] < mine]
        if lower:
            out.append(Collision(name, None, max(lower, key=lambda o: rank[o.tier])))
    return out


def winners(published: Mapping[str, str], others: Iterable[Other]) -> dict[str, str]:
    """Name -> tier the gateway takes it from, published skills counted as managed."""
    rank = {t: i for i, t in enumerate(TIERS)}
    best: dict[str, str] = {name: "managed" for name in published}
    for o in others:
        if o.name not in best or rank[o.tier] >= rank[best[o.name]]:
            best[o.name] = o.tier
    return best
