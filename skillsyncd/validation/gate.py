"""The validation gate: entry rules first, then the few blobs worth reading.

Order matters (design.md §4, hostile trees): paths, modes and sizes are judged
from tree entries alone; only then are regular files within their size caps
read, SKILL.md for its frontmatter and text files for secrets. A blob larger
than its cap is never read; neither is a symlink or gitlink target.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skillsyncd.config import Config
from skillsyncd.model import REGULAR_MODES, Entry, Finding, Skill
from skillsyncd.validation import frontmatter, paths, secrets
from skillsyncd.validation.fields import check_fields, declared_version
from skillsyncd.validation.rules import Policy

ReadBlob = Callable[[str], bytes]
METADATA_MAX_BYTES = 256_000  # the gateway's own SKILL.md cap (design.md §7)


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


def _check_skill_md(
    data: bytes, folder: str, cfg: Config, policy: Policy, path: str
) -> tuple[list[Finding], frontmatter.Frontmatter | None]:
    """The findings, and the parsed frontmatter (None when it does not parse) for reuse."""
    try:
        fm = frontmatter.parse(data)
    except frontmatter.FrontmatterError as exc:
        f = policy.finding(exc.rule, path, exc.message, exc.line)
        return ([f] if f else []), None
    return check_fields(fm, folder, cfg.required_fields, policy, path), fm


def _secret_findings(
    data: bytes, policy: Policy, path: str, allow: secrets.AllowList, key: bytes
) -> list[Finding]:
    """Secret hits as findings: rule, file, line and a keyed fingerprint, never the value."""
    out = []
    for hit in secrets.scan_bytes(data):
        how = secrets.allowed(hit, allow, path)
        if how == "entry":
            continue
        if how == "legacy":
            f = policy.finding(
                "allowlist.legacy-digest", path,
                f"{hit.label} is allowed by an unkeyed SHA-256 digest in {secrets.ALLOWLIST_FILE}; "
                f"replace that line with '{path}:{hit.rule}'",
                hit.line,
            )
        else:
            f = policy.finding(
                hit.rule, path,
                f"{hit.label} {hit.fingerprint(key)}: remove it from the repository and rotate it; "
                f"if it is a harmless test value, add '{path}:{hit.rule}' to {secrets.ALLOWLIST_FILE}",
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
    return SkillCheck(findings, meta if meta is not None else _metadata_of(None))


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
    allow = secrets.normalise_allowed(allowed_fingerprints)
    key = secrets.fingerprint_key(cfg.state_dir)
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
            md_findings, fm = _check_skill_md(data, skill.name, cfg, policy, where)
            found.extend(md_findings)
            if len(data) <= METADATA_MAX_BYTES:  # the limits skill_metadata applies
                meta = _metadata_of(fm)
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
    if isinstance(e, paths.OmittedBlob):
        return False  # the fetch filter left it on the server: size.file already refused it
    if e.path == paths.SKILL_FILE:
        return e.size is None or e.size <= min(cfg.max_skill_md_bytes, cfg.max_file_bytes)
    if over_budget:
        return False  # the skill is refused anyway; do not read a thousand files to say more
    return e.size is None or e.size <= cfg.max_file_bytes  # scanned in windows: no smaller cap


def skill_metadata(skill: Skill, read_blob: ReadBlob) -> dict[str, str | None]:
    """name, version and description as the author wrote them; None where absent. Never raises."""
    entry = next((e for e in skill.entries if e.path == paths.SKILL_FILE), None)
    if entry is None or entry.mode not in REGULAR_MODES:
        return _metadata_of(None)
    if entry.size is not None and entry.size > METADATA_MAX_BYTES:
        return _metadata_of(None)
    try:
        data = read_blob(entry.sha)
        if len(data) > METADATA_MAX_BYTES:
            return _metadata_of(None)
        return _metadata_of(frontmatter.parse(data))
    except Exception:  # metadata is best effort by contract: the rules report the problem
        return _metadata_of(None)


def _metadata_of(fm: frontmatter.Frontmatter | None) -> dict[str, str | None]:
    if fm is None:
        return {"name": None, "version": None, "description": None}
    try:
        return {"name": _as_text(fm.text("name")), "version": _as_text(declared_version(fm)),
                "description": _as_text(fm.text("description"))}
    except Exception:  # best effort, as above: odd values give no metadata, never a crash
        return _metadata_of(None)


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
