"""Values that flow between the steps of a sync. All frozen, no I/O."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

# git tree entry modes we care about
MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_SYMLINK = 0o120000
MODE_TREE = 0o040000
MODE_GITLINK = 0o160000
REGULAR_MODES = frozenset({MODE_FILE, MODE_EXEC})


@dataclass(frozen=True, slots=True)
class Entry:
    """One blob-like entry of a skill folder, path relative to the folder (posix)."""

    path: str
    mode: int
    sha: str
    size: int | None = None


@dataclass(frozen=True, slots=True)
class Skill:
    """A skill as it exists in one commit: `<skills_path>/<name>/` with a SKILL.md."""

    name: str
    tree_sha: str
    entries: tuple[Entry, ...]

    @property
    def content_sha(self) -> str:
        """The skill's content hash: the git tree id of its folder."""
        return self.tree_sha


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One validation result, precise enough for an author to fix it."""

    rule: str
    severity: Severity
    path: str
    message: str
    line: int | None = None

    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path

    def __str__(self) -> str:
        return f"{self.location()}: {self.severity} [{self.rule}] {self.message}"


class Change(enum.StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    REMOVED = "removed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Plan:
    """What a sync has to do, skill by skill (see skillsyncd.plan)."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    @property
    def to_build(self) -> tuple[str, ...]:
        """Skills whose bytes must be read from git (added or changed)."""
        return tuple(sorted(self.added + self.changed))

    @functools.cached_property
    def _change_by_name(self) -> dict[str, Change]:
        # Built once per plan: a sync asks once per skill, and scanning the tuples
        # each time was quadratic (~1.5 s for 10,000 skills).
        out = {n: Change.ADDED for n in self.added}
        out.update((n, Change.CHANGED) for n in self.changed)
        out.update((n, Change.REMOVED) for n in self.removed)
        return out

    def change_of(self, name: str) -> Change:
        return self._change_by_name.get(name, Change.UNCHANGED)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.changed or self.removed)
