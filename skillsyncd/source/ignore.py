"""Ignore rules: files a release never holds, in gitignore syntax (through ``pathspec``).

Three sources, all gitignore syntax:

- the defaults, :data:`DEFAULT_PATTERNS` (compiled caches and Finder debris);
- ``SKILLSYNC_IGNORE`` patterns and a ``.skillsyncignore`` at the repository root,
  matched against paths from the repository root;
- a ``.skillsyncignore`` in a skill's folder, matched against paths from that folder.

An ignored file is never validated, staged or published; a skill's content hash
is then the git tree id of what remains (:func:`tree_id`), so a release can
still be checked against its manifest. The ``.skillsyncignore`` files
themselves are configuration, not content: they are left out too.

Pure: callers read the files; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pathspec
from dulwich.objects import ObjectID, Tree

from skillsyncd.model import Entry

IGNORE_FILE = ".skillsyncignore"
IGNORE_FILE_MAX_BYTES = 64 * 1024
DEFAULT_PATTERNS: tuple[str, ...] = ("__pycache__/", "*.pyc", ".DS_Store")


def _spec(lines: Iterable[str]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines([ln for ln in lines if ln.strip()])


def parse(data: bytes) -> tuple[str, ...]:
    """The pattern lines of a ``.skillsyncignore`` (comments and blanks kept out)."""
    text = data[:IGNORE_FILE_MAX_BYTES].decode("utf-8", "replace")
    return tuple(ln.rstrip("\r") for ln in text.splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#"))


@dataclass(frozen=True)
class IgnoreRules:
    """The repository-wide rules: defaults, settings and the root ``.skillsyncignore``."""

    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    _compiled: pathspec.GitIgnoreSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", _spec(self.patterns))

    @classmethod
    def build(cls, settings: Sequence[str] = (), root_file: Sequence[str] = ()) -> IgnoreRules:
        return cls((*DEFAULT_PATTERNS, *settings, *root_file))

    def matches(self, repo_path: str, is_dir: bool = False) -> bool:
        """Whether a path (from the repository root) is ignored; folders are asked with a '/'."""
        return bool(self._compiled.match_file(repo_path + ("/" if is_dir else "")))


@dataclass(frozen=True)
class Filtered:
    entries: tuple[Entry, ...]
    ignored: tuple[str, ...]  # entry paths left out


def filter_entries(
    entries: Sequence[Entry], rules: IgnoreRules, skill_repo_path: str, own: Sequence[str] = ()
) -> Filtered:
    """A skill's entries without the ignored ones. ``own``: its ``.skillsyncignore`` lines."""
    local = _spec(own) if own else None
    kept: list[Entry] = []
    ignored: list[str] = []
    for e in entries:
        repo_path = f"{skill_repo_path}/{e.path}" if skill_repo_path else e.path
        if (e.path == IGNORE_FILE or rules.matches(repo_path)
                or (local is not None and local.match_file(e.path))):
            ignored.append(e.path)
        else:
            kept.append(e)
    return Filtered(tuple(kept), tuple(ignored))


def tree_id(entries: Sequence[Entry]) -> str:
    """The git tree id a folder holding exactly ``entries`` would have."""
    files: dict[bytes, tuple[int, bytes]] = {}
    folders: dict[bytes, list[Entry]] = {}
    for e in entries:
        head, sep, rest = e.path.partition("/")
        name = head.encode("utf-8", "surrogateescape")
        if sep:
            folders.setdefault(name, []).append(Entry(rest, e.mode, e.sha, e.size))
        else:
            files[name] = (e.mode, e.sha.encode())
    tree = Tree()
    for name, (mode, sha) in files.items():
        tree.add(name, mode, ObjectID(sha))
    for name, inner in folders.items():
        tree.add(name, 0o040000, ObjectID(tree_id(inner).encode()))
    return tree.id.decode()
