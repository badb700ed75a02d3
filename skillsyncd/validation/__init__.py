"""The validation gate: pure rules over skills, plus ``validate PATH`` for working trees.

The sync core calls, per added or changed skill, :func:`check_entries` (tree
data only) and then :func:`check_skill` (reads SKILL.md and text files via
``read_blob`` and returns the findings with the skill's metadata, from one
parse); then :func:`check_release` across all skills. Rule ids and
default severities are in :mod:`skillsyncd.validation.rules`.
"""

from __future__ import annotations

from skillsyncd.validation.frontmatter import Frontmatter, FrontmatterError, parse
from skillsyncd.validation.gate import (
    ReadBlob,
    SkillCheck,
    check_entries,
    check_release,
    check_skill,
    check_skill_md,
    skill_metadata,
    validate_skill,
)
from skillsyncd.validation.report import FORMATS, Report, exit_code, render
from skillsyncd.validation.rules import RULES, Policy, Rule, check_overrides, has_errors
from skillsyncd.validation.secrets.allowlist import ALLOWLIST_FILE, parse_allowlist
from skillsyncd.validation.secrets.fingerprints import fingerprint, fingerprint_key
from skillsyncd.validation.worktree import read_allowlist, validate_tree

__all__ = [
    "ALLOWLIST_FILE",
    "FORMATS",
    "RULES",
    "Frontmatter",
    "FrontmatterError",
    "Policy",
    "ReadBlob",
    "Report",
    "Rule",
    "SkillCheck",
    "check_entries",
    "check_overrides",
    "check_release",
    "check_skill",
    "check_skill_md",
    "exit_code",
    "fingerprint",
    "fingerprint_key",
    "has_errors",
    "parse",
    "parse_allowlist",
    "read_allowlist",
    "render",
    "skill_metadata",
    "validate_skill",
    "validate_tree",
]
