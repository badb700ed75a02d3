"""The validation gate: entry rules first, then the few blobs worth reading.

Order matters (git accepts hostile trees): paths, modes and sizes are judged
from tree entries alone; only then are regular files within their size caps
read, SKILL.md for its frontmatter and text files for secrets. A blob larger
than its cap is never read; neither is a symlink or gitlink target.

Whether a SKILL.md can load is the gateway's decision (:mod:`.gateway`); our
stricter YAML reading only adds warnings, so a skill the gateway loads is never
held back for its frontmatter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skillsyncd.config import Config
from skillsyncd.model import REGULAR_MODES, Entry, Finding, Skill
from skillsyncd.validation import frontmatter, gateway, paths
from skillsyncd.validation.fields import check_fields, declared_version
from skillsyncd.validation.rules import Policy
from skillsyncd.validation.secrets.allowlist import ALLOWLIST_FILE, AllowList, allowed, normalise_allowed
from skillsyncd.validation.secrets.decode import scan_bytes
from skillsyncd.validation.secrets.fingerprints import fingerprint_key

ReadBlob = Callable[[str], bytes]
METADATA_MAX_BYTES = gateway.MAX_SKILL_MD_BYTES


def policy_of(cfg: Config) -> Policy:
    """The config's Policy; built (and its overrides checked) once per distinct setting,
    not once per skill and rule group."""
    return _policy(tuple(sorted((str(k), str(v)) for k, v in cfg.severity.items())), cfg.strict)


@functools.lru_cache(maxsize=16)
def _policy(overrides: tuple[tuple[str, str], ...], strict: bool) -> Policy:
    return Policy.from_config(dict(overrides), strict)


def check_entries(skill: Skill, cfg: Config, prefix: str = "") -> tuple[Finding, ...]:
    """Path, mode, size and count rules from ``skill.entries`` only: no blob is read."""
    return tuple(paths.check_entries(skill, cfg, policy_of(cfg), prefix))


def check_skill_md(data: bytes, folder: str, cfg: Config, path: str) -> list[Finding]:
    """Frontmatter and field rules for one SKILL.md's bytes."""
    return _check_skill_md(data, folder, cfg, policy_of(cfg), path)[0]


# Strict-parser failures that stay what they are even when the gateway copes.
_KEEP_STRICT = frozenset({"yaml.limits", "skill-md.encoding", "skill-md.nul"})


def _check_skill_md(
    data: bytes, folder: str, cfg: Config, policy: Policy, path: str
) -> tuple[list[Finding], dict[str, str | None]]:
    """The findings, and the metadata the gateway and the manifest will see."""
    seen = gateway.view(data, folder)
    out: list[Finding | None] = []
    strict: frontmatter.Frontmatter | None = None
    strict_error: frontmatter.FrontmatterError | None = None
    try:
        strict = frontmatter.parse(data)
    except frontmatter.FrontmatterError as exc:
        strict_error = exc
    problem = seen.problem
    if problem is not None:
        if strict_error is not None and strict_error.rule not in _KEEP_STRICT \
                and problem.rule not in {"field.required", "size.skill-md"}:
            # The same refusal in our parser's words, which carry hints (quote it, no tabs).
            out.append(policy.finding(strict_error.rule, path,
                                      f"{strict_error.message}; the gateway cannot load this skill",
                                      strict_error.line or problem.line))
        else:
            out.append(policy.finding(problem.rule, path, problem.message, problem.line))
    said = problem is not None and problem.rule == getattr(strict_error, "rule", None)
    if strict_error is not None and not said and (strict_error.rule in _KEEP_STRICT or problem is None):
        rule = strict_error.rule if strict_error.rule in _KEEP_STRICT else "yaml.recovered"
        note = "" if rule in _KEEP_STRICT else "; the gateway reads it anyway, but other tools will not"
        out.append(policy.finding(rule, path, strict_error.message + note, strict_error.line))
    fm = strict if strict is not None else _as_frontmatter(seen)
    if fm is not None and (problem is None or problem.rule == "field.required"):
        out.extend(check_fields(fm, folder, tuple(k for k in cfg.required_fields if k != "description"),
                                policy, path))
    return [f for f in out if f is not None], _metadata_of(seen, strict)


def _as_frontmatter(seen: gateway.GatewayView) -> frontmatter.Frontmatter | None:
    """The gateway's text fields as a Frontmatter, so the field rules still run when only it can read them."""
    if not seen.fields:
        return None
    return frontmatter.Frontmatter(data=dict(seen.fields))


def _secret_findings(
    data: bytes, policy: Policy, path: str, allow: AllowList, key: bytes
) -> list[Finding]:
    """Secret hits as findings: rule, file, line and a keyed fingerprint, never the value."""
    out = []
    for hit in scan_bytes(data):
        how = allowed(hit, allow, path)
        if how == "entry":
            continue
        if how == "legacy":
            f = policy.finding(
                "allowlist.legacy-digest", path,
                f"{hit.label} is allowed by an unkeyed SHA-256 digest in {ALLOWLIST_FILE}; "
                f"replace that line with '{path}:{hit.rule}'",
                hit.line,
            )
        else:
            f = policy.finding(
                hit.rule, path,
                f"{hit.label} {hit.fingerprint(key)}: remove it from the repository and rotate it; "
                f"if it is a harmless test value, add '{path}:{hit.rule}' to {ALLOWLIST_FILE}",
                hit.line,
            )
        if f:
            out.append(f)
    return out


@dataclass(frozen=True)
class SkillCheck:
    """Every per-skill finding, and the metadata read from the same parse of SKILL.md."""

    findings: tuple[Finding, ...]
    metadata: Mapping[str, str | None]


def check_skill(
    skill: Skill,
    read_blob: ReadBlob,
    cfg: Config,
    *,
    prefix: str = "",
    allowed_fingerprints: Collection[str] = frozenset(),
    entry_findings: Sequence[Finding] | None = None,
) -> SkillCheck:
    """All per-skill rules plus :func:`skill_metadata`, reading and parsing SKILL.md once.

    ``prefix`` is the skill's folder in the repository, so findings name files as
    the author sees them (``skills/pdf/SKILL.md``). ``entry_findings`` is what
    :func:`check_entries` already returned for this skill with the same prefix,
    so a caller that ran it first does not pay for the path rules twice.
    """
    findings, meta = _check(skill, read_blob, cfg, prefix, allowed_fingerprints, entry_findings,
                            want_metadata=True)
    return SkillCheck(findings, meta if meta is not None else _metadata_of(None, None))


def _check(
    skill: Skill,
    read_blob: ReadBlob,
    cfg: Config,
    prefix: str,
    allowed_fingerprints: Collection[str],
    entry_findings: Sequence[Finding] | None,
    *,
    want_metadata: bool,
) -> tuple[tuple[Finding, ...], dict[str, str | None] | None]:
    policy = policy_of(cfg)
    allow = normalise_allowed(allowed_fingerprints)
    key = fingerprint_key(cfg.state_dir)
    found = (list(entry_findings) if entry_findings is not None
             else paths.check_entries(skill, cfg, policy, prefix))
    over_budget = any(f.rule in {"size.files", "size.skill"} for f in found)
    meta: dict[str, str | None] | None = None
    for e in sorted(skill.entries, key=lambda e: e.path):
        if e.mode not in REGULAR_MODES or not _worth_reading(e, cfg, over_budget):
            continue
        where = paths.join(prefix, paths.show(e.path))
        data = read_blob(e.sha)
        if e.size is None:  # size unknown from the tree: judge it now, before using the bytes
            late = paths.size_finding(e, len(data), cfg, policy, where)
            if late is not None:
                found.append(late)
                continue
        if e.path == paths.SKILL_FILE:
            md_findings, meta = _check_skill_md(data, skill.name.rsplit("/", 1)[-1], cfg, policy, where)
            found.extend(md_findings)
        found.extend(_secret_findings(data, policy, where, allow, key))
    if want_metadata and meta is None:
        # SKILL.md was not read for the rules: read it the way skill_metadata does.
        meta = skill_metadata(skill, read_blob)
    return tuple(found), meta


def validate_skill(
    skill: Skill,
    read_blob: ReadBlob,
    cfg: Config,
    *,
    prefix: str = "",
    allowed_fingerprints: Collection[str] = frozenset(),
) -> tuple[Finding, ...]:
    """All per-skill rules: :func:`check_skill` without the metadata, so no extra read."""
    return _check(skill, read_blob, cfg, prefix, allowed_fingerprints, None, want_metadata=False)[0]


def _worth_reading(e: Entry, cfg: Config, over_budget: bool) -> bool:
    if isinstance(e, paths.OmittedBlob | paths.UnsafeEntry):
        return False  # never read: size.file or a path rule already refused it
    if e.path == paths.SKILL_FILE:
        return e.size is None or e.size <= min(cfg.max_skill_md_bytes, cfg.max_file_bytes)
    if over_budget:
        return False  # the skill is refused anyway; do not read a thousand files to say more
    return e.size is None or e.size <= cfg.max_file_bytes  # scanned in windows: no smaller cap


def skill_metadata(skill: Skill, read_blob: ReadBlob) -> dict[str, str | None]:
    """What the manifest records of a skill (see :func:`_metadata_of`); never raises."""
    entry = next((e for e in skill.entries if e.path == paths.SKILL_FILE), None)
    if entry is None or entry.mode not in REGULAR_MODES:
        return _metadata_of(None, None)
    if entry.size is not None and entry.size > METADATA_MAX_BYTES:
        return _metadata_of(None, None)
    try:
        data = read_blob(entry.sha)
        if len(data) > METADATA_MAX_BYTES:
            return _metadata_of(None, None)
        try:
            strict: frontmatter.Frontmatter | None = frontmatter.parse(data)
        except frontmatter.FrontmatterError:
            strict = None
        return _metadata_of(gateway.view(data, skill.name.rsplit("/", 1)[-1]), strict)
    except Exception:  # metadata is best effort by contract: the rules report the problem
        return _metadata_of(None, None)


def _metadata_of(
    seen: gateway.GatewayView | None, strict: frontmatter.Frontmatter | None
) -> dict[str, str | None]:
    """``name`` as declared, ``effective_name`` and ``description`` as the gateway will show
    them (None when it would not load the skill), and the version as the author wrote it."""
    out: dict[str, str | None] = {"name": None, "effective_name": None, "version": None,
                                  "description": None}
    if seen is None:
        return out
    out["name"] = _as_text(seen.fields.get("name"))
    if seen.loads:
        out["effective_name"] = seen.name
        out["description"] = seen.description
    try:
        version = declared_version(strict) if strict is not None else seen.fields.get("version")
        out["version"] = _as_text(version)
    except Exception:  # best effort, as above: odd values give no version, never a crash
        out["version"] = None
    return out


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def check_release(
    skills: Sequence[Skill],
    cfg: Config,
    *,
    names: Mapping[str, str | None] | None = None,
) -> tuple[Finding, ...]:
    """Rules across skills: duplicate declared names and the release size cap.

    ``names`` maps folder -> declared frontmatter name (None when unknown); a
    folder without one counts under its own folder name, as the gateway does.
    """
    policy = policy_of(cfg)
    names = names or {}
    root = cfg.skills_path.strip("/")
    by_name: dict[str, list[str]] = {}
    for s in skills:
        declared = names.get(s.name)
        by_name.setdefault(declared if isinstance(declared, str) and declared else s.name, []).append(s.name)
    out: list[Finding | None] = []
    for name, folders in sorted(by_name.items()):
        if len(folders) < 2:
            continue
        for folder in sorted(folders):
            others = ", ".join(f for f in sorted(folders) if f != folder)
            out.append(policy.finding(
                "release.duplicate-name", paths.join(root, f"{folder}/SKILL.md"),
                f"name {name!r} is also declared by {others}; the gateway loads only one of them",
            ))
    total = sum(e.size or 0 for s in skills for e in s.entries if e.mode in REGULAR_MODES)
    if total > cfg.max_release_bytes:
        out.append(policy.finding(
            "size.release", root or ".",
            f"the release would be {total:,} bytes, more than max_release_bytes={cfg.max_release_bytes:,}",
        ))
    return tuple(f for f in out if f is not None)
