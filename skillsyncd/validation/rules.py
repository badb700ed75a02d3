"""The rule catalogue and the policy that turns a rule hit into a Finding.

Every rule has a stable id (used in config overrides, logs and CI output) and a
default severity. Defaults are chosen so that what public skill repositories
routinely do (no top-level version, odd names, CRLF, BOMs) warns instead of
blocking a deploy; only what is unsafe or what the gateway cannot load is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from skillsyncd.errors import ConfigError
from skillsyncd.model import Finding, Severity
from skillsyncd.validation.secrets.catalogue import catalogue as secret_catalogue

E = Severity.ERROR
W = Severity.WARNING


@dataclass(frozen=True)
class Rule:
    id: str
    default: Severity
    summary: str


_CATALOGUE: tuple[Rule, ...] = (
    # SKILL.md itself
    Rule("skill-md.missing", E, "the skill folder has no SKILL.md regular file"),
    Rule("skill-md.encoding", W, "SKILL.md is not valid UTF-8 (the gateway reads U+FFFD instead)"),
    Rule("skill-md.nul", W, "SKILL.md contains NUL bytes"),
    Rule("frontmatter.missing", E, "SKILL.md does not open with a '---' line"),
    Rule("frontmatter.unclosed", E, "the frontmatter has no closing '---' line"),
    # YAML
    Rule("yaml.syntax", E, "the frontmatter is not valid YAML"),
    Rule("yaml.not-mapping", E, "the frontmatter is not a key: value mapping"),
    Rule("yaml.duplicate-key", E, "a key appears twice in one mapping"),
    Rule("yaml.limits", E, "too many aliases, nodes or nesting levels (alias bomb)"),
    Rule("yaml.implicit-type", W, "an unquoted value YAML reads as a number, bool, date or null"),
    Rule("yaml.recovered", W, "strict YAML refuses the frontmatter; the gateway reads it (an unquoted ': ')"),
    # fields
    Rule("field.required", E, "no description (the gateway skips the skill) or a required_fields entry"),
    Rule("field.name-missing", W, "no name: the gateway uses the folder's name"),
    Rule("field.version-missing", W, "no version (top-level or metadata.version)"),
    Rule("field.version-conflict", W, "version and metadata.version disagree"),
    Rule("field.type", W, "a field holds a list or mapping where a string is expected"),
    Rule("field.name-format", W, "name is not 1-64 lowercase letters, digits and single hyphens"),
    Rule("field.name-folder", W, "name differs from the skill's folder name"),
    Rule("field.description-length", W, "description is longer than 1024 characters"),
    # sizes (from entry sizes, never by reading blobs)
    Rule("size.skill-md", E, "SKILL.md is larger than max_skill_md_bytes or the gateway's 256,000-byte cap"),
    Rule("size.file", E, "a file is larger than max_file_bytes"),
    Rule("size.skill", E, "the skill is larger than max_skill_bytes"),
    Rule("size.files", E, "the skill has more than max_skill_files files"),
    Rule("size.release", E, "the release is larger than max_release_bytes"),
    # paths and modes
    Rule("path.dotdot", E, "a path component is '..'"),
    Rule("path.absolute", E, "a path is absolute"),
    Rule("path.dot-git", E, "a path component is '.git' (in any spelling)"),
    Rule("path.backslash", E, "a path contains a backslash"),
    Rule("path.control-char", E, "a path contains a control character"),
    Rule("path.empty-component", E, "a path has an empty or '.' component"),
    Rule("path.encoding", E, "a path is not valid UTF-8"),
    Rule("path.symlink", E, "a symlink entry"),
    Rule("path.gitlink", E, "a gitlink (submodule) entry"),
    Rule("path.mode", E, "an entry mode other than 100644 or 100755"),
    Rule("path.case-collision", E, "two paths differ only by case or Unicode normalisation"),
    Rule("path.pycache", W, "__pycache__ or .pyc files committed"),
    Rule("path.slash", E, "a git tree entry whose name contains '/' (a damaged or hand-made tree)"),
    Rule("path.name-too-long", E, "a file or folder name longer than 255 bytes"),
    Rule("path.too-long", E, "a path longer than the filesystem allows (4096 bytes)"),
    Rule("path.too-deep", E, "folders nested more than 64 levels inside a skill"),
    # secrets: generated from the one table in secret_rules.py
    *(Rule(rule_id, sev, summary) for rule_id, sev, summary in secret_catalogue()),
    Rule("allowlist.legacy-digest", W, "a secret allowed by an unkeyed SHA-256 digest in .skillsync-allow"),
    # cross-skill and working-tree layout
    Rule("release.duplicate-name", W, "two skill folders declare the same name"),
    Rule("layout.no-skills", W, "no <skills_path>/<name>/SKILL.md folder was found"),
    Rule("layout.root-skill-md", W, "a SKILL.md at the skills root is not deployed"),
    Rule("layout.not-a-skill", W, "a folder looks like a skill but has no SKILL.md"),
    Rule("layout.skills-subfolder", W, "skills exist under skills/ but skills_path points elsewhere"),
    Rule("layout.ignored", W, "files or folders that matched ignore rules: not validated, not deployed"),
    Rule("layout.root-files", W, "files at the skills root: part of no skill, not deployed"),
    Rule("layout.gitlink", W, "a submodule where a skill could be: not fetched, not deployed"),
    Rule("layout.symlink", W, "a symlinked folder where a skill could be: not deployed"),
    Rule("layout.hidden", W, "a hidden folder or node_modules: the gateway skips it and any skills inside"),
    Rule("layout.too-deep", W, "skills deeper than skill_depth folder levels: not deployed"),
    Rule("layout.nested-skill", W, "a SKILL.md inside another skill: deployed as a file, not loaded"),
    Rule("layout.gateway-cap", W, "more skills than the gateway loads from one folder"),
    # use: what the gateway offers agents after loading (validation/usage/)
    Rule("usage.requires-bins", W, "a requires.bins binary is not on the gateway's PATH"),
    Rule("usage.requires-any-bin", W, "none of metadata.openclaw.requires.anyBins is on the gateway's PATH"),
    Rule("usage.requires-env", W, "a variable in requires.env is not set for the gateway"),
    Rule("usage.requires-config", W, "a requires.config path is not truthy in the gateway's openclaw.json"),
    Rule("usage.os", W, "metadata.openclaw.os does not list the gateway's platform"),
    Rule("usage.disabled", W, "skills.entries.<key>.enabled is false in the gateway's openclaw.json"),
    Rule("usage.prompt-budget", W, "the skills catalog is over skills.limits: compact or cut"),
    Rule("usage.description-cut", W, "the prompt budget cuts this skill's description"),
    Rule("usage.prompt-omitted", W, "the prompt budget leaves this skill out of the catalog"),
    Rule("usage.allowlist-renamed", W, "an allow-list names a skill whose folder now declares another name"),
    Rule("usage.allowlist-missing", W, "an agent allow-list names a skill the release no longer has"),
    Rule("usage.shadowed", W, "a same-named skill in a higher tier wins: the gateway loads that one"),
    Rule("usage.shadows-bundled", W, "this skill replaces a bundled, plugin or extraDirs skill"),
    # trust: commit signatures (SKILLSYNC_VERIFY)
    Rule("commit.unsigned", E, "the commit is not signed while SKILLSYNC_VERIFY asks for signatures"),
    Rule("commit.bad-signature", E, "the signature does not verify, or its key expired or was revoked"),
    Rule("commit.unknown-signer", E, "a valid signature by a key that is not trusted"),
    # guards on a whole commit
    Rule("guard.mass-removal", E, "the commit would remove more than half of the live skills, or all"),
)

RULES: Mapping[str, Rule] = {r.id: r for r in _CATALOGUE}

LEVELS = ("error", "warning", "off")


def _override_for(rule_id: str, overrides: Mapping[str, str]) -> str | None:
    """Exact id first, then the group wildcard ('secret.*'), then '*'."""
    group = rule_id.split(".", 1)[0] + ".*"
    for key in (rule_id, group, "*"):
        if key in overrides:
            return overrides[key].strip().lower()
    return None


def check_overrides(overrides: Mapping[str, str]) -> None:
    """Refuse unknown rule ids and levels up front: a typo must not silently keep a rule on."""
    groups = {r.split(".", 1)[0] + ".*" for r in RULES} | {"*"}
    for key, level in overrides.items():
        if key not in RULES and key not in groups:
            raise ConfigError(
                f"unknown validation rule {key!r} in severity overrides; "
                f"known groups: {', '.join(sorted(groups))} (see docs/validation.md)"
            )
        if str(level).strip().lower() not in LEVELS:
            raise ConfigError(f"severity for {key!r} must be error, warning or off, not {level!r}")


@dataclass(frozen=True)
class Policy:
    """Resolves a rule's severity: explicit override > strict > default."""

    overrides: Mapping[str, str]
    strict: bool = False

    @classmethod
    def from_config(cls, severity: Mapping[str, str], strict: bool) -> Policy:
        check_overrides(severity)
        return cls(dict(severity), strict)

    def severity(self, rule_id: str) -> Severity | None:
        """The severity to report at, or None when the rule is switched off."""
        rule = RULES[rule_id]
        level = _override_for(rule_id, self.overrides)
        if level == "off":
            return None
        if level is not None:
            return Severity(level)
        if self.strict:
            return Severity.ERROR
        return rule.default

    def finding(self, rule_id: str, path: str, message: str, line: int | None = None) -> Finding | None:
        sev = self.severity(rule_id)
        if sev is None:
            return None
        return Finding(rule=rule_id, severity=sev, path=path, message=message, line=line)


def has_errors(findings: Iterable[Finding]) -> bool:
    """True when any finding is an error."""
    return any(f.severity is Severity.ERROR for f in findings)
