"""Publish: make the gateway's watcher see the release that ``current`` points at.

The flip stays the atomic commit point; publishing follows it and is idempotent,
so re-running it from ``current`` after a crash or a rollback converges.

Two modes (design.md §3):

``link``
    The consumer watches ``<state>/current`` itself (OpenClaw ≥ 2026.9 with
    ``skills.load.extraDirs: ["<state>/current"]``). Nothing to do after the flip.

``mirror``
    A real directory (``publish_dir``) holds a copy of each skill. Per skill,
    supporting files are renamed into place first and ``SKILL.md`` last; a removed
    skill loses its ``SKILL.md`` first. Only skills skillsyncd published are ever
    touched: ownership is tracked in ``<state>/published.json``. A fresh marker
    folder after a change makes chokidar-based gateways rescan at once.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from skillsyncd.config import Config
from skillsyncd.errors import ConfigError, SkillsyncError
from skillsyncd.fsutil import atomic_write, fsync_dir
from skillsyncd.release import Releases, tree_sha_of

log = structlog.get_logger("skillsyncd.publish")

OWNERSHIP_FILE = "published.json"
MARKER_PREFIX = ".skillsyncd-reload-"
TMP_DIR = ".skillsyncd-tmp"
SKILL_FILE = "SKILL.md"
PENDING = "pending"


class PublishError(SkillsyncError):
    """The published view could not be brought in line with ``current``."""


@dataclass(frozen=True)
class PublishResult:
    mode: str
    path: str
    release: str
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()  # names held by someone else in a shared directory
    marker: str | None = None


@dataclass(frozen=True)
class MirrorPlan:
    """What a mirror publish will do; a pure function of the two views' summaries."""

    add: tuple[str, ...] = ()
    change: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()
    keep: tuple[str, ...] = field(default=())


def plan_mirror(
    wanted: dict[str, str], owned: dict[str, str], present: set[str]
) -> MirrorPlan:
    """Decide per skill: ``wanted`` and ``owned`` map names to content shas (or PENDING)."""
    add: list[str] = []
    change: list[str] = []
    keep: list[str] = []
    foreign: list[str] = []
    for name, sha in sorted(wanted.items()):
        if name in owned:
            (keep if owned[name] == sha and name in present else change).append(name)
        elif name in present:
            foreign.append(name)
        else:
            add.append(name)
    remove = sorted(n for n in owned if n not in wanted)
    return MirrorPlan(tuple(add), tuple(change), tuple(remove), tuple(foreign), tuple(keep))


def publish(cfg: Config, release_dir: Path) -> PublishResult:
    """Bring the configured published view in line with ``release_dir`` (a complete release)."""
    release = release_dir.name
    if cfg.publish_mode == "link":
        return PublishResult(mode="link", path=str(cfg.current_link), release=release)
    if cfg.publish_mode != "mirror":
        raise ConfigError(f"unknown publish mode {cfg.publish_mode!r}: use 'link' or 'mirror'")
    if cfg.publish_dir is None:
        raise ConfigError("publish mode 'mirror' needs a directory: set SKILLSYNC_PUBLISH_DIR")
    return Mirror(cfg.publish_dir, cfg.state_dir / OWNERSHIP_FILE, cfg.publish_marker).sync(
        release_dir, Releases(cfg.state_dir).manifest(release)
    )


def verify_published(cfg: Config, release_id: str) -> list[str]:
    """Post-flip check: the published view holds exactly the release's live skills."""
    if cfg.publish_mode != "mirror" or cfg.publish_dir is None:
        target = os.readlink(cfg.current_link) if cfg.current_link.is_symlink() else None
        if target is None or Path(target).name != release_id:
            return [f"current does not point at {release_id}"]
        return []
    manifest = Releases(cfg.state_dir).manifest(release_id)
    owned = _load_owned(cfg.state_dir / OWNERSHIP_FILE, cfg.publish_dir)
    problems = []
    for skill in manifest.get("skills", []):
        if not skill.get("live"):
            continue
        name, sha = skill["name"], skill["content_sha"]
        folder = cfg.publish_dir / name
        if name not in owned:
            if folder.exists():
                continue  # someone else's skill of the same name: reported at publish time
            problems.append(f"{name}: not published in {cfg.publish_dir}")
        elif not folder.is_dir():
            problems.append(f"{name}: missing from {cfg.publish_dir}")
        elif (actual := tree_sha_of(folder)) != sha:
            problems.append(f"{name}: published content {actual[:12]} is not {sha[:12]}")
    live = {s["name"] for s in manifest.get("skills", []) if s.get("live")}
    for name in sorted(set(owned) - live):
        problems.append(f"{name}: still published but not in {release_id}")
    return problems


# --- mirror mode -------------------------------------------------------------------


class Mirror:
    """A real directory kept equal to a release, skill by skill, crash-safe."""

    def __init__(self, root: Path, ownership: Path, marker: bool = True) -> None:
        self.root = root
        self.ownership = ownership
        self.marker = marker

    def sync(self, release_dir: Path, manifest: dict[str, Any]) -> PublishResult:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / TMP_DIR
        shutil.rmtree(tmp, ignore_errors=True)  # leftovers of a crash
        tmp.mkdir()
        wanted = {s["name"]: s["content_sha"] for s in manifest.get("skills", []) if s.get("live")}
        owned = _load_owned(self.ownership, self.root)
        present = {p.name for p in self.root.iterdir() if p.is_dir() and p.name != TMP_DIR
                   and not p.name.startswith(MARKER_PREFIX)}
        plan = plan_mirror(wanted, owned, present)
        for name in plan.foreign:
            log.warning("publish_skipped_foreign", skill=name, dir=str(self.root),
                        hint="a skill of this name exists and was not published by skillsyncd")
        try:
            for name in plan.remove:
                self._remove_skill(name, owned)
            for name in (*plan.add, *plan.change):
                owned[name] = PENDING  # claim the name before the first byte lands
                self._save(owned)
                self._copy_skill(release_dir / name, self.root / name, tmp)
                owned[name] = wanted[name]
                self._save(owned)
        except OSError as exc:
            raise PublishError(f"cannot publish into {self.root}: {exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        marker = None
        if self.marker and (plan.add or plan.change or plan.remove):
            marker = self._touch_marker(release_dir.name)
        return PublishResult(
            mode="mirror", path=str(self.root), release=release_dir.name,
            added=plan.add, changed=plan.change, removed=plan.remove, foreign=plan.foreign,
            marker=marker,
        )

    def _save(self, owned: dict[str, str]) -> None:
        doc = {"dir": str(self.root.resolve()), "skills": owned}
        atomic_write(self.ownership, json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n")

    def _copy_skill(self, src: Path, dest: Path, tmp: Path) -> None:
        """Supporting files first, stale files out, then SKILL.md: readers never see a mix."""
        dest.mkdir(exist_ok=True)
        wanted: set[Path] = set()
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel = Path(dirpath).relative_to(src)
            (dest / rel).mkdir(exist_ok=True)
            for filename in sorted(filenames):
                wanted.add(rel / filename)
                if rel == Path(".") and filename == SKILL_FILE:
                    continue
                _place(Path(dirpath) / filename, dest / rel / filename, tmp)
        for dirpath, dirnames, filenames in os.walk(dest, topdown=False):
            rel = Path(dirpath).relative_to(dest)
            for filename in filenames:
                if rel / filename not in wanted and not (rel == Path(".") and filename == SKILL_FILE):
                    os.unlink(Path(dirpath) / filename)
            for dirname in dirnames:
                with contextlib.suppress(OSError):  # only empty, unwanted folders go
                    if not (src / rel / dirname).is_dir():
                        os.rmdir(Path(dirpath) / dirname)
        if (src / SKILL_FILE).exists():
            _place(src / SKILL_FILE, dest / SKILL_FILE, tmp)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest / SKILL_FILE)
        fsync_dir(dest)

    def _remove_skill(self, name: str, owned: dict[str, str]) -> None:
        folder = self.root / name
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / SKILL_FILE)  # the gateway drops the skill before its files go
        shutil.rmtree(folder, ignore_errors=True)
        del owned[name]
        self._save(owned)

    def _touch_marker(self, release: str) -> str:
        """A fresh folder at the root: chokidar-based watchers rescan right away."""
        for old in self.root.glob(f"{MARKER_PREFIX}*"):
            shutil.rmtree(old, ignore_errors=True)
        marker = self.root / f"{MARKER_PREFIX}{release}-{uuid.uuid4().hex[:6]}"
        marker.mkdir()
        return marker.name


def _place(src: Path, dest: Path, tmp: Path) -> None:
    """Put ``src``'s bytes at ``dest`` by rename, unless they are already there."""
    if dest.is_file() and not dest.is_symlink():
        same_inode = os.path.samestat(os.stat(src), os.stat(dest))
        if same_inode or (filecmp.cmp(src, dest, shallow=False) and _same_exec(src, dest)):
            return
    staged = tmp / uuid.uuid4().hex
    try:
        os.link(src, staged)  # release files are read-only: sharing the inode is safe
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(src, staged)
    if dest.is_dir() and not dest.is_symlink():
        shutil.rmtree(dest)
    os.replace(staged, dest)


def _same_exec(a: Path, b: Path) -> bool:
    return bool(os.stat(a).st_mode & 0o111) == bool(os.stat(b).st_mode & 0o111)


def _load_owned(path: Path, root: Path) -> dict[str, str]:
    """Names skillsyncd published into ``root`` (empty if it published elsewhere before)."""
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise PublishError(f"{path} is corrupt ({exc}); remove it and the skills it lists") from exc
    if doc.get("dir") != str(root.resolve()):
        if doc.get("skills"):
            log.warning("publish_dir_changed", old=doc.get("dir"), new=str(root.resolve()),
                        hint="skills published to the old directory are left in place")
        return {}
    skills = doc.get("skills") or {}
    return {str(k): str(v) for k, v in skills.items()}
