"""Rules over a skill's entries alone: paths, modes, sizes and counts.

These run before any blob is read (git objects can describe hostile trees),
so a skill with ``../`` paths or a 2 GB blob is refused from tree data
only. Sizes come from ``Entry.size``; an unknown size (None) is checked after
reading by the caller, except for an OmittedBlob, which is never read: it is
refused by ``size.file`` from the fetch filter's promise alone.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from skillsyncd.config import Config
from skillsyncd.model import MODE_GITLINK, MODE_SYMLINK, REGULAR_MODES, Entry, Finding, Skill
from skillsyncd.validation.rules import Policy

SKILL_FILE = "SKILL.md"

# Code points HFS+ ignores when comparing names: '.g\u200cit' is '.git' there (CVE-2014-9390).
_IGNORABLE = dict.fromkeys(
    [*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF]
)


@dataclass(frozen=True)
class OmittedBlob(Entry):
    """A regular file whose blob the mirror does not hold.

    The fetch asks the server to leave out blobs larger than ``max_file_bytes``
    (``blob:limit``, source.py), and the mirror is fetched afresh whenever that
    limit grows, so a missing blob is one ``size.file`` refuses. Its size is
    unknown (None) and it must never be read.
    """


@dataclass(frozen=True)
class UnsafeEntry(Entry):
    """An entry the tree walk refused to follow: a name with '/', one over 255 bytes, a path
    over 4096 bytes, or folders nested too deep. ``rule`` names why; it is never read or staged."""

    rule: str = "path.slash"
    why: str = ""


MAX_NESTING = 64  # folder levels inside one skill


def join(prefix: str, path: str) -> str:
    return f"{prefix.rstrip('/')}/{path}" if prefix else path


def show(path: str) -> str:
    """A path safe to print on one line: control characters and bad bytes escaped."""
    out = []
    for ch in path:
        if ord(ch) < 0x20 or ord(ch) == 0x7F or 0xDC80 <= ord(ch) <= 0xDCFF:
            code = ord(ch) - 0xDC00 if ord(ch) >= 0xDC80 else ord(ch)
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    return "".join(out)


def is_dot_git(component: str) -> bool:
    """'.git' as Windows, macOS or git itself would resolve it ('.GIT', '.git ', 'git~1')."""
    name = component.translate(_IGNORABLE).split(":", 1)[0].rstrip(" .").casefold()
    return name in {".git", "git~1"}


def _fold(path: str) -> str:
    return unicodedata.normalize("NFC", path).casefold()


def _path_problems(path: str) -> Iterator[tuple[str, str]]:
    if any(0xDC80 <= ord(ch) <= 0xDCFF for ch in path):
        yield "path.encoding", "is not valid UTF-8"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        yield "path.control-char", "contains a control character (newline, tab, escape, ...)"
    if "\\" in path:
        yield "path.backslash", "contains a backslash, a separator on Windows"
    if path.startswith("/"):
        yield "path.absolute", "is absolute"
    parts = path.split("/")
    inner = parts[1:] if path.startswith("/") else parts
    if any(p in ("", ".") for p in inner):
        yield "path.empty-component", "has an empty or '.' component"
    if ".." in parts:
        yield "path.dotdot", "has a '..' component that would escape the skill folder"
    if any(is_dot_git(p) for p in parts):
        yield "path.dot-git", "has a '.git' component (in some spelling), which git clients refuse"


def is_pycache(path: str) -> bool:
    parts = path.split("/")
    return "__pycache__" in parts[:-1] or parts[-1].endswith((".pyc", ".pyo"))


def check_entries(skill: Skill, cfg: Config, policy: Policy, prefix: str = "") -> list[Finding]:
    """What the skill's tree alone says is wrong: each entry in path order, then its totals."""
    # The folder's own name becomes a path in the release and the published view.
    out: list[Finding | None] = [
        policy.finding(rule, show(prefix.rstrip("/") or skill.name),
                       f"skill folder name {show(skill.name)!r} {why}")
        for rule, why in _path_problems(skill.name)]
    regular: list[Entry] = []
    folds = _CaseFolds()
    for e in sorted(skill.entries, key=lambda e: e.path):
        where = join(prefix, show(e.path))
        found, is_regular = _entry_findings(e, policy, where)
        out.extend(found)
        if is_regular:
            regular.append(e)
            out.append(_size_finding(e, cfg, policy, where))
            out.extend(folds.collisions(e.path, policy, where))
    out.extend(_skill_findings(skill, regular, cfg, policy, prefix))
    return [f for f in out if f is not None]


def _mode_refusal(mode: int) -> tuple[str, str] | None:
    """The rule and message refusing an entry of this mode, or None for a regular file."""
    if mode == MODE_SYMLINK:
        return "path.symlink", "symlinks are not deployed: copy the file into the skill instead"
    if mode == MODE_GITLINK:
        return ("path.gitlink", "a git submodule (gitlink) has no content in this repository; "
                                "vendor the files instead")
    if mode not in REGULAR_MODES:
        return "path.mode", f"entry mode {mode:o} is not a regular file (100644 or 100755)"
    return None


def _entry_findings(e: Entry, policy: Policy, where: str) -> tuple[list[Finding | None], bool]:
    """One entry's path and mode findings, and whether it is a regular file to check further."""
    if isinstance(e, UnsafeEntry):
        return [policy.finding(e.rule, where, e.why)], False
    found = [policy.finding(rule, where, f"path {show(e.path)!r} {why}")
             for rule, why in _path_problems(e.path)]
    refusal = _mode_refusal(e.mode)
    if refusal is not None:
        found.append(policy.finding(refusal[0], where, refusal[1]))
        return found, False
    return found, True


class _CaseFolds:
    """Paths seen so far by their case- and accent-folded form: two that fold alike collide
    on macOS and Windows checkouts."""

    def __init__(self) -> None:
        self._files: dict[str, str] = {}
        self._dirs: dict[str, str] = {}

    def collisions(self, path: str, policy: Policy, where: str) -> list[Finding | None]:
        """Findings for ``path`` (a regular file) against every path seen before it."""
        out: list[Finding | None] = []
        fold = _fold(path)
        other = self._files.get(fold) or self._dirs.get(fold)
        if other is not None and other != path:
            out.append(policy.finding(
                "path.case-collision", where,
                f"{show(path)!r} and {show(other)!r} differ only by case or accents: "
                "one overwrites the other on macOS and Windows checkouts"))
        self._files.setdefault(fold, path)
        parts = path.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            fd = _fold(d)
            if fd in self._files and self._files[fd] != d:
                out.append(policy.finding("path.case-collision", where,
                                          f"folder {show(d)!r} and file {show(self._files[fd])!r} "
                                          "differ only by case"))
            self._dirs.setdefault(fd, d)
        return out


def _skill_findings(skill: Skill, regular: list[Entry], cfg: Config, policy: Policy,
                    prefix: str) -> list[Finding | None]:
    """Findings about the skill as a whole: SKILL.md present, compiled Python, counts and sizes."""
    out: list[Finding | None] = []
    if not any(e.path == SKILL_FILE for e in regular):
        lower = next((e.path for e in skill.entries if e.path.lower() == "skill.md"), None)
        hint = f" (found {lower!r}: rename it to SKILL.md)" if lower else ""
        out.append(policy.finding("skill-md.missing", join(prefix, SKILL_FILE),
                                  f"no SKILL.md regular file in the skill folder{hint}"))
    pycache = sum(1 for e in regular if is_pycache(e.path))
    if pycache:
        out.append(policy.finding(
            "path.pycache", join(prefix, "__pycache__"),
            f"{pycache} compiled Python file(s) (__pycache__/, *.pyc) are committed; "
            "they are published as committed, but useless to the gateway: delete them and "
            "add them to .gitignore"))
    folder = prefix.rstrip("/") or skill.name
    if len(regular) > cfg.max_skill_files:
        out.append(policy.finding("size.files", folder,
                                  f"{len(regular)} files, more than max_skill_files={cfg.max_skill_files}"))
    # An omitted blob is larger than max_file_bytes: count that much at least.
    total = sum(cfg.max_file_bytes + 1 if isinstance(e, OmittedBlob) else e.size or 0 for e in regular)
    if total > cfg.max_skill_bytes:
        at_least = "at least " if any(isinstance(e, OmittedBlob) for e in regular) else ""
        out.append(policy.finding("size.skill", folder,
                                  f"{at_least}{total:,} bytes in total, more than "
                                  f"max_skill_bytes={cfg.max_skill_bytes:,}"))
    return out


def size_cap(e: Entry, cfg: Config) -> int:
    return min(cfg.max_skill_md_bytes, cfg.max_file_bytes) if e.path == SKILL_FILE else cfg.max_file_bytes


def size_finding(e: Entry, size: int, cfg: Config, policy: Policy, where: str) -> Finding | None:
    """The size rule for one regular file whose size is known."""
    if e.path == SKILL_FILE and size > cfg.max_skill_md_bytes:
        return policy.finding("size.skill-md", where,
                              f"SKILL.md is {size:,} bytes, more than max_skill_md_bytes="
                              f"{cfg.max_skill_md_bytes:,}; move detail into references/ files")
    if size > cfg.max_file_bytes:
        return policy.finding("size.file", where,
                              f"{size:,} bytes, more than max_file_bytes={cfg.max_file_bytes:,}")
    return None


def _size_finding(e: Entry, cfg: Config, policy: Policy, where: str) -> Finding | None:
    if isinstance(e, OmittedBlob):
        return policy.finding("size.file", where,
                              f"more than max_file_bytes={cfg.max_file_bytes:,} bytes: the fetch "
                              "filter left this blob out of the mirror, so it was never downloaded")
    return None if e.size is None else size_finding(e, e.size, cfg, policy, where)
