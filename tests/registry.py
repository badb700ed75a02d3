"""A reference consumer: load skills from a published directory and keep them fresh.

Point it at what skillsyncd publishes, either the ``<state>/current`` link (link
mode) or a mirror directory (mirror mode). It is what a Python gateway would
embed, and the test peer that proves a watchfiles-based consumer hot-reloads.

Two traps it avoids:

* A watcher on the ``current`` link keeps watching the release the link pointed
  at when the watch began; releases never change, so it would never fire again.
  For a link, the registry watches the link's *parent* (not recursively) and
  re-resolves the link on every reload.
* A reload must not mix two releases. It resolves the link once and reads every
  skill under that one release folder. In mirror mode each skill's ``SKILL.md``
  lands last, so a skill read at any instant is whole; the publish's last event
  triggers a final reload that sees the complete set.

    registry = SkillRegistry(Path("/data/skillsync/current"), on_change=print)
    registry.start()          # a background thread; registry.skills is always a full snapshot
    ...
    registry.stop()
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import structlog
import watchfiles

from skillsyncd.validation import gateway

log = structlog.get_logger("registry")

SKILL_FILE = "SKILL.md"


@dataclass(frozen=True)
class LoadedSkill:
    """One skill as a consumer sees it."""

    name: str  # the frontmatter ``name``, else the folder name
    folder: str  # the folder name under the published root
    description: str | None
    path: Path  # the skill folder, resolved: stays valid across later flips
    content: str  # SKILL.md as text


@dataclass(frozen=True)
class Snapshot:
    """Every skill under the root at one instant; ``source`` is where the root resolved to."""

    root: Path
    source: Path
    skills: Mapping[str, LoadedSkill] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def release(self) -> str | None:
        """The release id when the root is skillsyncd's ``current`` link."""
        return self.source.name if self.source != self.root and self.source.parent.name == "releases" \
            else None

    def names(self) -> list[str]:
        return sorted(s.name for s in self.skills.values())


def describe(text: str, folder: str) -> tuple[str, str | None]:
    """(name, description) as the gateway reads them; the folder name when there is no name."""
    seen = gateway.view(text.encode("utf-8"), folder)
    return seen.name, seen.description


def load_skills(root: Path) -> Snapshot:
    """Read ``<root>/<folder>/SKILL.md`` one level deep, through ``root`` resolved once.

    Hidden folders (markers, staging) and folders without a ``SKILL.md`` are not skills.
    A root that does not exist yet is an empty snapshot.
    """
    try:
        source = Path(os.path.realpath(root, strict=True))
    except OSError:
        return Snapshot(root=root, source=root)
    skills: dict[str, LoadedSkill] = {}
    try:
        entries = sorted(os.scandir(source), key=lambda e: e.name)
    except OSError:
        return Snapshot(root=root, source=source)
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        folder = source / entry.name
        try:
            raw = (folder / SKILL_FILE).read_bytes()
        except OSError:
            continue  # not a skill, or removed while we looked: the next reload settles it
        text = raw.decode("utf-8", errors="replace")
        name, description = describe(text, entry.name)
        skills[entry.name] = LoadedSkill(name=name, folder=entry.name, description=description,
                                         path=folder, content=text)
    return Snapshot(root=root, source=source, skills=MappingProxyType(skills))


OnChange = Callable[[Snapshot, Snapshot], None]


class SkillRegistry:
    """Skills from one published root, reloaded whenever skillsyncd publishes."""

    def __init__(self, root: Path, on_change: OnChange | None = None, step_ms: int = 50,
                 debounce_ms: int = 400) -> None:
        self.root = Path(root)
        self.on_change = on_change
        self.step_ms = step_ms
        self.debounce_ms = debounce_ms
        self._snapshot = load_skills(self.root)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reloads = 0  # how many reloads changed something (for status pages and tests)
        self.armed = threading.Event()  # set once the watcher runs: every later change is seen

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def skills(self) -> Mapping[str, LoadedSkill]:
        return self._snapshot.skills

    def reload(self) -> Snapshot:
        """Load again; tell ``on_change`` when anything differs. Safe from any thread."""
        with self._lock:
            old, new = self._snapshot, load_skills(self.root)
            if new == old:
                return old
            self._snapshot = new
            self.reloads += 1
        added = sorted(set(new.skills) - set(old.skills))
        removed = sorted(set(old.skills) - set(new.skills))
        log.info("skills_reloaded", root=str(self.root), source=str(new.source),
                 count=len(new.skills), added=added, removed=removed)
        if self.on_change is not None:
            try:
                self.on_change(old, new)
            except Exception:  # a consumer's callback must not kill the watcher
                log.exception("skills_on_change_failed")
        return new

    # -- watching --

    def _target(self) -> tuple[Path, bool]:
        """What to watch now: the parent (not recursively) for a link or a missing root."""
        if self.root.is_symlink() or not self.root.is_dir():
            return self.root.parent, False
        return self.root, True

    def _relevant(self, changes: set[tuple[watchfiles.Change, str]], recursive: bool) -> bool:
        if recursive:
            return True  # inside the published tree every change may matter: reload is cheap
        return any(Path(p).name == self.root.name for _c, p in changes)

    def watch_forever(self) -> None:
        """Block, reloading on changes, until :meth:`stop`. Re-arms when the root changes kind."""
        while not self._stop.is_set():
            target, recursive = self._target()
            if not target.is_dir():
                raise FileNotFoundError(f"cannot watch {self.root}: {target} does not exist")
            self.reload()  # serve the current view at once...
            armed = False
            for changes in watchfiles.watch(
                target, recursive=recursive, stop_event=self._stop, step=self.step_ms,
                debounce=self.debounce_ms, watch_filter=None, yield_on_timeout=True,
                rust_timeout=1000, raise_interrupt=False,
            ):
                if (changes and self._relevant(changes, recursive)) or not armed:
                    self.reload()  # ...and once more when armed: nothing slips in between
                    armed = True
                    self.armed.set()
                if self._target() != (target, recursive):
                    break  # e.g. the mirror directory appeared, or a dir became a link

    def start(self) -> None:
        """Watch in a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.watch_forever, name="skill-registry",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.armed.clear()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> SkillRegistry:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        with contextlib.suppress(Exception):
            self.stop()
