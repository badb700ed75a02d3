"""The use rules over a staged release: the skills it serves, read once, against the gateway.

A release serves each skill at one version: the commit's, or (held back) the last
good one, which lives in the store. Both are read here, SKILL.md only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from skillsyncd.config import Config
from skillsyncd.errors import ConfigError
from skillsyncd.model import REGULAR_MODES, Finding, Skill
from skillsyncd.validation.rules import Policy
from skillsyncd.validation.usage.check import usage_findings
from skillsyncd.validation.usage.context import MAX_SKILL_MD_BYTES, read_context
from skillsyncd.validation.usage.skill import SkillUse, read_skill

log = structlog.get_logger(__name__)


def _skill_md(skill: Skill | None, sha: str, read_blob: Callable[[str], bytes],
              stored: Callable[[str], Path]) -> bytes | None:
    """The served version's SKILL.md bytes: from git when the commit serves it, else the store."""
    if skill is not None and skill.tree_sha == sha:
        entry = next((e for e in skill.entries if e.path == "SKILL.md"), None)
        if entry is None or entry.mode not in REGULAR_MODES or (entry.size or 0) > MAX_SKILL_MD_BYTES:
            return None
        return read_blob(entry.sha)
    try:
        md = stored(sha) / "SKILL.md"
        return md.read_bytes() if md.stat().st_size <= MAX_SKILL_MD_BYTES else None
    except OSError:
        return None


def served_skills(skills: Mapping[str, Skill], serve: Mapping[str, str], read_blob: Callable[[str], bytes],
                  stored: Callable[[str], Path], root: str) -> list[SkillUse]:
    """The loadable skills a release serves, as the use rules see them."""
    out: list[SkillUse] = []
    for name, sha in sorted(serve.items()):
        data = _skill_md(skills.get(name), sha, read_blob, stored)
        if data is None:
            continue
        used = read_skill(data, name, f"{root}/{name}/SKILL.md" if root else f"{name}/SKILL.md")
        if used is not None:
            out.append(used)
    return out


def release_usage(cfg: Config, policy: Policy, served: list[SkillUse],
                  previous: Mapping[str, str], ci: bool = False) -> tuple[Finding, ...]:
    """The usage.* findings of a release; none (and one log line) when the gateway's
    config cannot be read, which must not stop a deploy."""
    try:
        ctx = read_context(cfg, ci=ci)  # ci: `plan --against`, away from the gateway
    except ConfigError as exc:
        log.warning("usage_context_unreadable", error=str(exc),
                    hint="the usage.* rules are skipped for this release")
        return ()
    return usage_findings(served, ctx, policy, cfg.skills_path.strip("/"), previous)
