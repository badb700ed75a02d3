"""``skillsyncd validate PATH``: the same rules over a checked-out working tree.

The skills repository's CI runs this on a plain checkout, without git objects:
files on disk become :class:`Entry` values (mode 100755 when executable,
symlinks as symlink entries, nested checkouts as gitlinks) and a blob is read
from its file only when the gate asks for it. It also reports layout
surprises the sync would silently pass over, such as skills under ``skills/``
while ``skills_path`` points at the root (design.md §7).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from skillsyncd.config import Config
from skillsyncd.errors import ConfigError
from skillsyncd.model import MODE_EXEC, MODE_FILE, MODE_GITLINK, MODE_SYMLINK, Entry, Finding, Skill
from skillsyncd.validation import gate, secrets
from skillsyncd.validation.paths import SKILL_FILE, join
from skillsyncd.validation.report import Report
from skillsyncd.validation.rules import Policy

_SKILLISH = {"skill.md", "skill.yaml", "skill.yml"}


def read_allowlist(root: Path, skills_path: str) -> frozenset[str]:
    """Fingerprints from .skillsync-allow at the repository root and at the skills root."""
    out: set[str] = set()
    for folder in {root, root / skills_path} if skills_path else {root}:
        try:
            out |= secrets.parse_allowlist((folder / secrets.ALLOWLIST_FILE).read_bytes())
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


def _has_skill_md(folder: Path) -> bool:
    return os.path.lexists(folder / SKILL_FILE)


def _layout(root: Path, rel_root: str, cfg: Config, policy: Policy) -> list[Finding | None]:
    out: list[Finding | None] = []
    if (root / SKILL_FILE).is_file():
        out.append(policy.finding(
            "layout.root-skill-md", join(rel_root, SKILL_FILE),
            "a SKILL.md at the skills root is not deployed (only <folder>/SKILL.md skills are); "
            "move it into a folder of its own",
        ))
    nested_root = root / "skills"
    if not cfg.skills_path and nested_root.is_dir():
        nested = [d.name for d in sorted(nested_root.iterdir())
                  if d.is_dir() and not d.name.startswith(".") and _has_skill_md(d)]
        if nested:
            out.append(policy.finding(
                "layout.skills-subfolder", "skills",
                f"{len(nested)} skill(s) under skills/ are not deployed with skills_path at the "
                "repository root; set SKILLSYNC_SKILLS_PATH=skills if those are the ones to ship",
            ))
    return out


def validate_tree(path: Path, cfg: Config) -> Report:
    """Run every rule over ``<path>/<skills_path>/<name>/`` skill folders."""
    path = Path(path)
    policy = gate.policy_of(cfg)
    rel_root = cfg.skills_path.strip("/")
    root = path / rel_root if rel_root else path
    if not root.is_dir():
        raise ConfigError(f"skills_path {rel_root!r} is not a folder under {path}")
    allow = read_allowlist(path, rel_root)
    findings: list[Finding | None] = list(_layout(root, rel_root, cfg, policy))
    skills: list[Skill] = []
    names: dict[str, str | None] = {}
    checked: list[str] = []
    for d in sorted(root.iterdir()):
        if d.name.startswith(".") or d.is_symlink() or not d.is_dir():
            continue
        prefix = join(rel_root, d.name)
        if not _has_skill_md(d):
            if rel_root == "" and d.name == "skills":
                continue  # reported by layout.skills-subfolder
            hint = _skillish(d)
            if hint:
                findings.append(policy.finding(
                    "layout.not-a-skill", prefix,
                    f"folder has {hint} but no SKILL.md, so it is not deployed; "
                    "add a SKILL.md with name and description",
                ))
            continue
        skill, files = load_skill(d)

        def read_blob(sha: str, files: dict[str, Path] = files) -> bytes:
            return files[sha].read_bytes()

        result = gate.check_skill(skill, read_blob, cfg, prefix=prefix, allowed_fingerprints=allow)
        findings.extend(result.findings)
        names[skill.name] = result.metadata.get("name")
        skills.append(skill)
        checked.append(prefix)
    findings.extend(gate.check_release(skills, cfg, names=names))
    if not skills:
        findings.append(policy.finding(
            "layout.no-skills", rel_root or ".",
            f"no <folder>/SKILL.md found under {rel_root or 'the repository root'}; "
            "check SKILLSYNC_SKILLS_PATH",
        ))
    return Report(root=str(path), skills=tuple(checked),
                  findings=tuple(f for f in findings if f is not None))


def _skillish(folder: Path) -> str | None:
    try:
        names = {p.name for p in folder.iterdir()}
    except OSError:
        return None
    lower = {n.lower() for n in names}
    for n in sorted(_SKILLISH & lower):
        return n
    for sub in sorted(folder.iterdir()):
        if sub.is_dir() and not sub.is_symlink() and _has_skill_md(sub):
            return f"a nested skill ({sub.name}/SKILL.md; only one level is loaded)"
    return None
