"""Which folders of a tree are skills, found the way the gateway finds them, and why the rest are not.

OpenClaw loads ``<root>/<folder>/SKILL.md`` and, below a folder without one,
grouped skills ``<root>/<group>/<skill>/SKILL.md`` (2 levels below a
configured ``extraDirs`` root, 6 below its managed folder). It skips hidden
folders and ``node_modules``, and a folder holding a ``SKILL.md`` is one skill
whatever lies below it. :func:`discover` applies the same rules to any tree
(a git tree or a folder on disk, through ``list_folder``) and returns, besides
the skills, one :class:`Skipped` for every entry it does not deploy, so that
nothing is left out in silence.

Pure: the caller supplies the listing; nothing here does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

SKILL_FILE = "SKILL.md"
GATEWAY_MAX_DEPTH = 6  # OpenClaw's limit below its managed folder
DEFAULT_DEPTH = 2  # below an extraDirs root: valid for every way of pointing the gateway here
NAME_MAX = 255  # bytes in one file or folder name (Linux)
PATH_MAX = 4096  # bytes in a path (Linux)
SKILL_PATH_MAX = PATH_MAX - 512  # what a path below the skills root may take; the rest is the root's
ROOT_FILES_SHOWN = 8


class Kind(enum.Enum):
    FOLDER = "folder"
    FILE = "file"
    SYMLINK = "symlink"
    GITLINK = "gitlink"


@dataclass(frozen=True, slots=True)
class Child:
    """One entry of a folder: its raw name, what it is, and the key to list or read it by."""

    name: bytes
    kind: Kind
    key: Hashable


@dataclass(frozen=True)
class Skipped:
    """An entry under the skills root that is not deployed, and the rule that says why."""

    path: str  # relative to the skills root
    rule: str
    message: str


@dataclass(frozen=True)
class Found:
    """A skill folder: its name (its path below the skills root) and the key to read it by."""

    name: str
    key: Hashable


ListFolder = Callable[[Hashable], Sequence[Child]]


def name_problem(raw: bytes) -> tuple[str, str] | None:
    """(rule, reason) when a folder name cannot be a path on the gateway's disk, else None."""
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "path.encoding", "its name is not UTF-8"
    if "/" in name or "\0" in name:
        return "path.slash", "its name contains '/' (a damaged or hand-made git tree)"
    if name in ("", ".", ".."):
        return "path.dotdot", f"its name is {name!r}"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "path.control-char", "its name contains a control character"
    if name.lower().rstrip(". ") == ".git":
        return "path.dot-git", "it is named like a .git folder"
    if len(raw) > NAME_MAX:
        return "path.name-too-long", f"its name is {len(raw)} bytes, more than {NAME_MAX}"
    return None


Ignored = Callable[[str, bool], bool]  # (path below the skills root, is a folder) -> ignored?


def _nothing_ignored(path: str, is_dir: bool) -> bool:
    return False


def discover(
    root: Hashable,
    list_folder: ListFolder,
    *,
    max_depth: int = DEFAULT_DEPTH,
    skills_path_set: bool = False,
    ignored: Ignored = _nothing_ignored,
) -> tuple[tuple[Found, ...], tuple[Skipped, ...]]:
    """The skills below ``root`` in gateway order, and every entry left out with its reason.

    ``skills_path_set``: the caller chose a skills path; without one, a ``skills/``
    folder beside top-level skills is a second, older set (reported, not deployed).
    ``ignored``: the ignore rules; what they match is left out as ``layout.ignored``.
    """
    found: list[Found] = []
    top, skipped = _top_level(list_folder(root), ignored)
    has_top_skills = any(c.kind is Kind.FOLDER and _holds_skill_md(list_folder, c.key) for c in top)
    queue: list[tuple[str, Child, int]] = [("", c, 1) for c in sorted(top, key=lambda c: c.name)
                                           if c.kind is not Kind.FILE]
    while queue:
        parent, child, depth = queue.pop(0)
        text = child.name.decode("utf-8", "replace")
        path = f"{parent}{text}"
        refused = _refused_entry(path, child, list_folder)
        if refused is not None:
            skipped.append(refused)
        elif _holds_skill_md(list_folder, child.key):
            found.append(Found(path, child.key))
        elif depth == 1 and text == "skills" and has_top_skills and not skills_path_set:
            count = _count_skills(list_folder, child.key, max_depth)
            skipped.append(Skipped(path, "layout.skills-subfolder",
                                   f"{count} skill(s) under skills/ are a second set beside the top-level "
                                   "skills and are not deployed; a gateway pointed at a checkout would load "
                                   "that set instead: set SKILLSYNC_SKILLS_PATH=skills to deploy it"))
        else:
            below, left_out = _group(path, child, depth, max_depth, list_folder, ignored)
            queue.extend(below)
            skipped.extend(left_out)
    return tuple(found), tuple(skipped)


def _top_level(children: Sequence[Child], ignored: Ignored) -> tuple[list[Child], list[Skipped]]:
    """The root's entries that are not ignored, and what the root itself leaves out:
    ignored entries, a SKILL.md at the root, and loose files."""
    skipped: list[Skipped] = []
    top = []
    for c in children:
        path = c.name.decode("utf-8", "replace")
        if ignored(path, c.kind is Kind.FOLDER):
            skipped.append(Skipped(path, "layout.ignored", "matched an ignore rule"))
        else:
            top.append(c)
    root_files = sorted(c.name.decode("utf-8", "replace") for c in top if c.kind is Kind.FILE)
    if SKILL_FILE in root_files:
        skipped.append(Skipped(SKILL_FILE, "layout.root-skill-md",
                               "a SKILL.md at the skills root is not deployed: only folders are skills "
                               "(a gateway pointed at this folder would load the whole root as one skill)"))
        root_files.remove(SKILL_FILE)
    if root_files:
        more = ", ..." if len(root_files) > ROOT_FILES_SHOWN else ""
        shown = ", ".join(root_files[:ROOT_FILES_SHOWN]) + more
        skipped.append(Skipped(".", "layout.root-files",
                               f"{len(root_files)} file(s) at the skills root are not part of any skill "
                               f"and are not deployed: {shown}"))
    return top, skipped


def _refused_entry(path: str, child: Child, list_folder: ListFolder) -> Skipped | None:
    """Why a folder entry can be neither a skill nor a group of skills; None when it can."""
    text = child.name.decode("utf-8", "replace")
    problem = name_problem(child.name)
    if problem is not None:
        return Skipped(path, problem[0], f"not deployed: {problem[1]}")
    if len(path.encode()) > SKILL_PATH_MAX:
        return Skipped(path, "path.too-long", "not deployed: the folder's path is too long")
    if child.kind is Kind.GITLINK:
        return Skipped(path, "layout.gitlink",
                       "a submodule (gitlink) is not fetched and not deployed: "
                       "commit its files into this repository to deploy it")
    if child.kind is Kind.SYMLINK:
        return Skipped(path, "layout.symlink",
                       "a symlinked folder is not deployed: git stores only the link")
    if text.startswith(".") or text == "node_modules":
        has_skills = _holds_skill_md(list_folder, child.key, GATEWAY_MAX_DEPTH)
        what = f"skills under {text!r} are" if has_skills else f"the folder {text!r} is"
        return Skipped(path, "layout.hidden",
                       f"{what} not deployed: the gateway skips hidden folders and node_modules")
    return None


def _group(path: str, child: Child, depth: int, max_depth: int, list_folder: ListFolder,
           ignored: Ignored) -> tuple[list[tuple[str, Child, int]], list[Skipped]]:
    """A folder without a SKILL.md: the entries to look at below it, and what it leaves out."""
    children = list(list_folder(child.key))
    if not _holds_skill_md(list_folder, child.key, GATEWAY_MAX_DEPTH):
        return [], [_no_skill(path, children)]  # no skill anywhere below: said once, here
    if depth >= max_depth:
        return [], [Skipped(path, "layout.too-deep",
                            f"skills below {path}/ are more than {max_depth} folder level(s) "
                            "down and are not deployed; raise SKILLSYNC_SKILL_DEPTH "
                            f"(up to {GATEWAY_MAX_DEPTH} when publishing into the gateway's "
                            "managed folder)")]
    below: list[tuple[str, Child, int]] = []
    skipped: list[Skipped] = []
    for c in sorted(children, key=lambda c: c.name):
        name = f"{path}/{c.name.decode('utf-8', 'replace')}"
        if ignored(name, c.kind is Kind.FOLDER):
            skipped.append(Skipped(name, "layout.ignored", "matched an ignore rule"))
        elif c.kind is not Kind.FILE:
            below.append((f"{path}/", c, depth + 1))
    files = [c for c in children if c.kind is Kind.FILE
             and not ignored(f"{path}/{c.name.decode('utf-8', 'replace')}", False)]
    if files:
        skipped.append(Skipped(path, "layout.not-a-skill",
                               f"{len(files)} file(s) in the group folder {path}/ belong to no skill "
                               "and are not deployed"))
    return below, skipped


def _no_skill(path: str, children: Sequence[Child]) -> Skipped:
    names = {c.name for c in children}
    hint = ""
    if b"skill.yaml" in names or b"skill.md" in names:
        hint = " (it has skill.yaml or skill.md: the gateway needs a SKILL.md)"
    return Skipped(path, "layout.not-a-skill", f"no SKILL.md in {path}/: not a skill, not deployed{hint}")


def _holds_skill_md(list_folder: ListFolder, key: Hashable, depth: int = 0) -> bool:
    """A SKILL.md in this folder (depth 0), or anywhere ``depth`` levels below it."""
    children = list_folder(key)
    if any(c.name == SKILL_FILE.encode() and c.kind is not Kind.FOLDER for c in children):
        return True
    return depth > 0 and any(
        _holds_skill_md(list_folder, c.key, depth - 1) for c in children if c.kind is Kind.FOLDER)


def _count_skills(list_folder: ListFolder, key: Hashable, levels: int) -> int:
    total = 0
    for c in list_folder(key):
        if c.kind is not Kind.FOLDER:
            continue
        if _holds_skill_md(list_folder, c.key):
            total += 1
        elif levels > 1:
            total += _count_skills(list_folder, c.key, levels - 1)
    return total


def nested_skills(skill_name: str, paths: Sequence[str]) -> tuple[Skipped, ...]:
    """A SKILL.md below a skill's own: deployed as one of its files, never loaded as a skill."""
    return tuple(
        Skipped(f"{skill_name}/{p}", "layout.nested-skill",
                f"{skill_name}/{p} is deployed as a file of {skill_name!r}, but the gateway does not "
                "load a skill inside another skill: move it beside its parent")
        for p in sorted(paths) if p.endswith("/" + SKILL_FILE))


def gateway_unloaded(names: Sequence[str], max_candidates: int, max_loaded: int) -> tuple[str, ...]:
    """Skills a gateway with these per-root caps would not load from a root holding ``names``.

    It lists at most ``max_candidates`` folders of each folder (sorted), then loads
    candidates in name order until ``max_loaded`` are loaded. Its name order is
    the locale's; case-folded order is the approximation used here.
    """
    children: dict[str, set[str]] = {}
    for name in names:
        parts = name.split("/")
        for i, part in enumerate(parts):
            children.setdefault("/".join(parts[:i]), set()).add(part)
    kept = {parent: set(sorted(kids)[:max_candidates]) for parent, kids in children.items()}

    def listed(name: str) -> bool:
        parts = name.split("/")
        return all(part in kept["/".join(parts[:i])] for i, part in enumerate(parts))

    ordered = sorted((n for n in names if listed(n)), key=lambda n: (n.casefold(), n))
    loaded = set(ordered[:max_loaded])
    return tuple(sorted(n for n in names if n not in loaded))
