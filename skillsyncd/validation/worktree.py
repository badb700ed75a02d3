"""``skillsyncd validate PATH``: the same rules over a checked-out working tree.

The skills repository's CI runs this on a plain checkout, without git objects:
files on disk become :class:`Entry` values (mode 100755 when executable,
symlinks as symlink entries, nested checkouts as gitlinks) and a blob is read
from its file only when the gate asks for it. Skills are found by
the same discovery as the sync (:mod:`skillsyncd.source.discovery`), so every folder
it would leave out is reported here too, such as a second set of skills under
``skills/`` while ``skills_path`` points at the root.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Hashable, Sequence
from pathlib import Path

from skillsyncd.config import Config
from skillsyncd.errors import ConfigError
from skillsyncd.model import MODE_EXEC, MODE_FILE, MODE_GITLINK, MODE_SYMLINK, Entry, Finding, Skill
from skillsyncd.source import ignore
from skillsyncd.source.discovery import Child, Kind, discover, nested_skills
from skillsyncd.validation import gate
from skillsyncd.validation.paths import join
from skillsyncd.validation.report import Report
from skillsyncd.validation.rules import Policy
from skillsyncd.validation.secrets.allowlist import ALLOWLIST_FILE, parse_allowlist
from skillsyncd.validation.usage.check import usage_findings
from skillsyncd.validation.usage.context import read_context
from skillsyncd.validation.usage.skill import SkillUse, read_skill


def read_allowlist(root: Path, skills_path: str) -> frozenset[str]:
    """Fingerprints from .skillsync-allow at the repository root and at the skills root."""
    out: set[str] = set()
    for folder in {root, root / skills_path} if skills_path else {root}:
        try:
            out |= parse_allowlist((folder / ALLOWLIST_FILE).read_bytes())
        except OSError:
            continue
    return frozenset(out)


def _walk(folder: Path, rel: str, files: dict[str, Path], out: list[Entry]) -> None:
    with os.scandir(folder) as it:
        items = sorted(it, key=lambda d: d.name)
    for d in items:
        if d.name == ".git":
            continue  # git's own metadata, never content
        path = rel + d.name
        st = d.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            out.append(Entry(path, MODE_SYMLINK, f"worktree:{path}", len(os.readlink(d.path))))
        elif stat.S_ISDIR(st.st_mode):
            if os.path.lexists(os.path.join(d.path, ".git")):
                out.append(Entry(path, MODE_GITLINK, f"worktree:{path}", None))
            else:
                _walk(Path(d.path), path + "/", files, out)
        elif stat.S_ISREG(st.st_mode):
            key = f"worktree:{path}"
            files[key] = Path(d.path)
            mode = MODE_EXEC if st.st_mode & 0o111 else MODE_FILE
            out.append(Entry(path, mode, key, st.st_size))


def load_skill(folder: Path) -> tuple[Skill, dict[str, Path]]:
    """A working-tree folder as a Skill; entry shas are keys into the returned file map."""
    files: dict[str, Path] = {}
    entries: list[Entry] = []
    _walk(folder, "", files, entries)
    return Skill(name=folder.name, tree_sha=f"worktree:{folder.name}", entries=tuple(entries)), files


def _read_small(path: Path) -> bytes:
    """An ignore file's bytes, capped; empty when there is none."""
    try:
        with path.open("rb") as fh:
            return fh.read(ignore.IGNORE_FILE_MAX_BYTES)
    except OSError:
        return b""


def _children(folder: Hashable) -> Sequence[Child]:
    """A folder on disk as git would store it: nested checkouts are gitlinks, .git is not content."""
    out: list[Child] = []
    try:
        with os.scandir(str(folder)) as it:
            items = list(it)
    except OSError:
        return out
    for d in items:
        if d.name == ".git":
            continue
        if d.is_symlink():
            kind = Kind.SYMLINK
        elif d.is_dir():
            kind = Kind.GITLINK if os.path.lexists(os.path.join(d.path, ".git")) else Kind.FOLDER
        else:
            kind = Kind.FILE
        out.append(Child(os.fsencode(d.name), kind, Path(d.path)))
    return out


def _skill_use(folder: Path, name: str, path: str) -> SkillUse | None:
    """What the use rules need of a skill on disk; None when the gateway would not load it."""
    md = folder / "SKILL.md"
    try:
        if md.is_symlink() or md.stat().st_size > gate.METADATA_MAX_BYTES:
            return None
        return read_skill(md.read_bytes(), name, path)
    except OSError:
        return None


def validate_path(path: Path, cfg: Config) -> Report:
    """``validate PATH``: a repository (its skills), or a path that is itself a skill folder.

    A skill folder holds SKILL.md at its top; judged as a repository root it has no skills,
    and "0 skills checked" would pass a CI pointed at the wrong folder.
    """
    path = Path(path)
    folder = path.resolve()
    if not cfg.skills_path.strip("/") and (folder / "SKILL.md").is_file() and folder.parent != folder:
        report = validate_tree(folder.parent, cfg, only=folder)
        if report.skills:
            return report
    return validate_tree(path, cfg)


def validate_tree(path: Path, cfg: Config, only: Path | None = None) -> Report:
    """Run every rule over the skills below ``<path>/<skills_path>``, found as the sync finds them.

    ``only``: judge just the skill in that folder (release-wide rules then see it alone).
    """
    path = Path(path)
    policy = gate.policy_of(cfg)
    rel_root = cfg.skills_path.strip("/")
    root = path / rel_root if rel_root else path
    if not root.is_dir():
        raise ConfigError(f"skills_path {rel_root!r} is not a folder under {path}")
    allow = read_allowlist(path, rel_root)
    rules = ignore.IgnoreRules.build(cfg.ignore, ignore.parse(_read_small(path / ignore.IGNORE_FILE)))

    def ignored(p: str, is_dir: bool) -> bool:
        return rules.matches(join(rel_root, p), is_dir)

    found, skipped = discover(root, _children, max_depth=cfg.skill_depth, skills_path_set=bool(rel_root),
                              ignored=ignored)
    left_out = [s.path for s in skipped if s.rule == "layout.ignored"]
    findings: list[Finding | None] = [
        policy.finding(s.rule, join(rel_root, s.path) if s.path != "." else (rel_root or "."), s.message)
        for s in skipped if s.rule != "layout.ignored"]
    if only is not None:
        found = tuple(f for f in found if Path(str(f.key)).resolve() == only)
        findings, left_out = [], []
    skills: list[Skill] = []
    names: dict[str, str | None] = {}
    checked: list[str] = []
    for f in found:
        prefix = join(rel_root, f.name)
        loaded, files = load_skill(Path(str(f.key)))
        own = ignore.parse(_read_small(Path(str(f.key)) / ignore.IGNORE_FILE))
        kept = ignore.filter_entries(loaded.entries, rules, prefix, own)
        left_out.extend(f"{f.name}/{p}" for p in kept.ignored)
        skill = Skill(name=f.name, tree_sha=loaded.tree_sha, entries=kept.entries)

        def read_blob(sha: str, files: dict[str, Path] = files) -> bytes:
            return files[sha].read_bytes()

        result = gate.check_skill(skill, read_blob, cfg, prefix=prefix, allowed_fingerprints=allow)
        findings.extend(result.findings)
        findings.extend(policy.finding(s.rule, join(rel_root, s.path), s.message)
                        for s in nested_skills(f.name, [e.path for e in skill.entries]))
        names[skill.name] = result.metadata.get("effective_name")
        skills.append(skill)
        checked.append(prefix)
    findings.extend(gate.check_release(skills, cfg, names=names))
    uses = (_skill_use(Path(str(f.key)), f.name, join(rel_root, f"{f.name}/SKILL.md")) for f in found)
    findings.extend(usage_findings([u for u in uses if u is not None], read_context(cfg, ci=True),
                                   policy, rel_root))
    findings.extend(_tree_findings(policy, rel_root, left_out, bool(skills)))
    return Report(root=str(path), skills=tuple(checked),
                  findings=tuple(f for f in findings if f is not None))


def _tree_findings(policy: Policy, rel_root: str, left_out: list[str],
                   any_skill: bool) -> list[Finding | None]:
    """What the tree as a whole says: files the ignore rules left out, or no skill at all."""
    out: list[Finding | None] = []
    if left_out:
        out.append(policy.finding(
            "layout.ignored", rel_root or ".",
            f"{len(left_out)} file(s) or folder(s) matched ignore rules and are not checked or deployed: "
            + ", ".join(sorted(left_out)[:8]) + (", ..." if len(left_out) > 8 else "")))
    if not any_skill:
        out.append(policy.finding(
            "layout.no-skills", rel_root or ".",
            f"no <folder>/SKILL.md found under {rel_root or 'the repository root'}; "
            "check SKILLSYNC_SKILLS_PATH",
        ))
    return out
