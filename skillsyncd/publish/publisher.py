"""Publish: make the gateway's watcher see the release that ``current`` points at.

The flip stays the atomic commit point; publishing follows it and is idempotent,
so re-running it from ``current`` after a crash or a rollback converges.

Two modes (docs/publish.md):

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
import filecmp
import json
import os
import shutil
import stat
import uuid
from collections.abc import Mapping, Set
from dataclasses import dataclass
from pathlib import Path

import structlog

from skillsyncd.config import WATCHER_IGNORED_NAMES, Config
from skillsyncd.errors import ConfigError, ReleaseError, SkillsyncError
from skillsyncd.fsutil import atomic_write
from skillsyncd.release.manifest import EMPTY, Manifest
from skillsyncd.release.releases import Releases
from skillsyncd.release.verify import tree_sha_of

log = structlog.get_logger(__name__)

OWNERSHIP_FILE = "published.json"
MARKER_PREFIX = ".skillsyncd-reload-"
TMP_DIR = ".skillsyncd-tmp"  # inside publish_dir, only when the state dir is on another device
STATE_TMP_DIR = "publish-tmp"  # inside the state dir: no watcher event at all for staging
STORE_DIR = "store"  # <state>/store/<content sha>: one immutable copy of each skill version
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
    ignored: tuple[str, ...] = ()  # names the gateway's watcher ignores: never published
    marker: str | None = None


@dataclass(frozen=True)
class MirrorPlan:
    """What a mirror publish will do; a pure function of the two views' summaries.

    ``remove`` runs first, then ``add`` and ``change`` (each skill's SKILL.md last).
    ``foreign`` and ``ignored`` are reported and left alone; ``keep`` needs nothing.
    """

    add: tuple[str, ...] = ()
    change: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()

    @property
    def touches(self) -> bool:
        return bool(self.add or self.change or self.remove)


def is_watcher_ignored(name: str) -> bool:
    """A folder the gateway's watcher never reports on: publishing it is a trap.
    A grouped skill ('group/skill') is ignored when any of its folders is."""
    return any(part in WATCHER_IGNORED_NAMES for part in name.split("/"))


def plan_mirror(
    wanted: Mapping[str, str], owned: Mapping[str, str], present: Set[str],
    damaged: Set[str] = frozenset(),
) -> MirrorPlan:
    """Decide per skill what to do.

    ``wanted``: the release's live skills, name -> content sha. ``owned``: what
    ``published.json`` says skillsyncd put there, name -> sha (or PENDING while a
    copy was under way). ``present``: names that exist in the directory now.
    A name present but not owned belongs to someone else and is never touched;
    an owned name whose sha differs, is PENDING, vanished or is ``damaged`` (its
    files no longer match the release) is rewritten.
    """
    add: list[str] = []
    change: list[str] = []
    keep: list[str] = []
    foreign: list[str] = []
    ignored: list[str] = []
    for name, sha in sorted(wanted.items()):
        if is_watcher_ignored(name):
            ignored.append(name)
        elif name in owned:
            intact = owned[name] == sha and name in present and name not in damaged
            (keep if intact else change).append(name)
        elif name in present:
            foreign.append(name)
        else:
            add.append(name)
    remove = sorted(n for n in owned if n not in wanted or is_watcher_ignored(n))
    return MirrorPlan(tuple(add), tuple(change), tuple(remove), tuple(foreign),
                      tuple(ignored), tuple(keep))


def mirror_for(cfg: Config) -> Mirror | None:
    """The Mirror ``cfg`` publishes through, or None in link mode (refused when misconfigured)."""
    if cfg.publish_mode == "link":
        return None
    if cfg.publish_mode != "mirror":
        raise ConfigError(f"unknown publish mode {cfg.publish_mode!r}: use 'link' or 'mirror'")
    if cfg.publish_dir is None:
        raise ConfigError("publish mode 'mirror' needs a directory: set SKILLSYNC_PUBLISH_DIR")
    return Mirror(cfg.publish_dir, cfg.state_dir / OWNERSHIP_FILE, cfg.publish_marker)


def publish(cfg: Config, release_dir: Path, mirror: Mirror | None = None) -> PublishResult:
    """Bring the configured published view in line with ``release_dir`` (a complete release).

    ``mirror``: the Mirror a Syncer keeps for its life (see :class:`Mirror`); without it a
    new one is made, which compares every kept skill as a fresh process does.
    """
    release = release_dir.name
    mirror = mirror or mirror_for(cfg)
    if mirror is None:
        return PublishResult(mode="link", path=str(cfg.current_link), release=release)
    return mirror.sync(release_dir, Releases(cfg.state_dir).manifest(release))


def unpublish(cfg: Config, mirror: Mirror | None = None) -> PublishResult | None:
    """Take every skill skillsyncd published out of the mirror: nothing is live any more."""
    if cfg.publish_mode != "mirror" or cfg.publish_dir is None:
        return None  # link mode: removing `current` is the whole of it
    mirror = mirror or mirror_for(cfg)
    assert mirror is not None  # mirror mode with a publish dir
    return mirror.sync(Releases(cfg.state_dir).root / "none", EMPTY)


def published_check(cfg: Config, release_id: str) -> list[str]:
    """Post-flip check: :func:`verify_published`, hashing only the skills this release wrote.

    The others were hashed when they were published, and publishing compares each
    kept skill with its release copy (stat) before trusting it.
    """
    try:
        manifest = Releases(cfg.state_dir).manifest(release_id)
    except ReleaseError as exc:
        return [str(exc)]
    return verify_published(cfg, release_id, only={s.name for s in manifest.live
                                                   if s.change != "unchanged"})


def verify_published(cfg: Config, release_id: str, only: Set[str] | None = None) -> list[str]:
    """The published view holds exactly the release's live skills (``only``: hash just those)."""
    if cfg.publish_mode != "mirror" or cfg.publish_dir is None:
        target = os.readlink(cfg.current_link) if cfg.current_link.is_symlink() else None
        if target is None or Path(target).name != release_id:
            return [f"current does not point at {release_id}"]
        return []
    manifest = Releases(cfg.state_dir).manifest(release_id)
    owned = load_owned(cfg.state_dir / OWNERSHIP_FILE, cfg.publish_dir)
    problems = []
    live = manifest.live_shas()
    for name, sha in sorted(live.items()):
        if is_watcher_ignored(name):
            continue  # deliberately not published; warned about at publish time
        folder = cfg.publish_dir / name
        if owned.get(name) in (None, PENDING):
            if name not in owned and folder.exists():
                continue  # someone else's skill of the same name: reported at publish time
            problems.append(f"{name}: not published in {cfg.publish_dir}")
        elif not folder.is_dir():
            problems.append(f"{name}: missing from {cfg.publish_dir}")
        elif only is not None and name not in only:
            continue
        elif (actual := tree_sha_of(folder)) != sha:
            problems.append(f"{name}: published content {actual[:12]} is not {sha[:12]}")
    for name in sorted(set(owned) - set(live)):
        problems.append(f"{name}: still published but not in {release_id}")
    return problems


# --- mirror mode -------------------------------------------------------------------


class Mirror:
    """A real directory kept equal to a release, skill by skill, crash-safe, in private copies.

    Crash safety comes from three facts: every file lands by rename(2) of a complete
    staged copy; ``published.json`` (written durably) claims a name (PENDING)
    before its first byte lands and forgets it only after its folder is gone; and
    the first publish of each Mirror object (and every drift repair, and every publish
    after one that failed part-way) compares each kept skill with the release (stat,
    not read). A restart therefore redoes any half-done skill, including one a power
    cut left behind after its name was recorded as done, so the mirror itself needs no
    fsync: the release is the durable copy. Later publishes through the same object
    (a Syncer keeps one for its life) trust the skills it published itself, so one
    changed skill does not cost a stat of every file of every kept skill.
    """

    def __init__(self, root: Path, ownership: Path, marker: bool = True) -> None:
        self.root = root
        self.ownership = ownership
        self.marker = marker
        # The skills this object published or compared, name -> content sha; empty at first.
        self._checked: dict[str, str] = {}

    def sync(self, release_dir: Path, manifest: Manifest, recheck: bool = False) -> PublishResult:
        """Publish ``release_dir``. Kept skills are compared with the release (stat) once
        per process, or every time with ``recheck`` (drift repair); a restart after a
        crash or power cut therefore compares them all."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PublishError(f"cannot publish into {self.root}: {exc}") from exc
        wanted = manifest.live_shas()
        owned = load_owned(self.ownership, self.root)
        known = {} if recheck else self._checked
        # Grouped skills ('group/skill') live below a group folder: ask for each name.
        present = {n for n in {*wanted, *owned} if os.path.lexists(self.root / n)}
        damaged = {n for n in present if n in wanted and owned.get(n) == wanted[n]
                   and known.get(n) != wanted[n]
                   and not _intact(skill_source(release_dir, n), self.root / n)}
        plan = plan_mirror(wanted, owned, present, damaged)
        for name in plan.foreign:
            log.warning("publish_skipped_foreign", skill=name, dir=str(self.root),
                        hint="a skill of this name exists and was not published by skillsyncd")
        for name in plan.ignored:
            log.warning("publish_skipped_ignored_name", skill=name,
                        hint=f"the gateway's watcher ignores folders named {name!r}: "
                             "rename the skill folder in the repository")
        marker = None
        if plan.touches:
            self._checked = {}  # a publish that fails part-way leaves a full compare next
            tmp = self._tmp_dir()
            try:
                # One claim for every name about to be written or removed, before the first
                # change: a half-removed or half-copied folder is redone by the next run.
                claimed = {**owned, **{n: PENDING for n in (*plan.remove, *plan.add, *plan.change)}}
                if claimed != owned:
                    self._save(claimed)
                for name in plan.remove:
                    self._remove_skill(name)
                for name in (*plan.add, *plan.change):
                    self._copy_skill(skill_source(release_dir, name), self.root / name, tmp)
                final = {n: wanted[n] for n in claimed if n in wanted and not is_watcher_ignored(n)}
                self._save(final)
                if self.marker:
                    marker = self._touch_marker(release_dir.name)
            except OSError as exc:
                raise PublishError(f"cannot publish into {self.root}: {exc}") from exc
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        elif (self.root / TMP_DIR).exists():
            shutil.rmtree(self.root / TMP_DIR, ignore_errors=True)  # a crash's leftovers
        self._checked = {n: sha for n, sha in wanted.items()
                         if n not in plan.foreign and n not in plan.ignored}
        return PublishResult(
            mode="mirror", path=str(self.root), release=release_dir.name,
            added=plan.add, changed=plan.change, removed=plan.remove, foreign=plan.foreign,
            ignored=plan.ignored, marker=marker,
        )

    def _tmp_dir(self) -> Path:
        """Where files are staged before their rename: off the watched tree when possible."""
        state_tmp = self.ownership.parent / STATE_TMP_DIR
        root_tmp = self.root / TMP_DIR
        shutil.rmtree(root_tmp, ignore_errors=True)  # leftovers of a crash
        shutil.rmtree(state_tmp, ignore_errors=True)
        same_device = os.stat(self.ownership.parent).st_dev == os.stat(self.root).st_dev
        tmp = state_tmp if same_device else root_tmp
        tmp.mkdir()
        return tmp

    def _save(self, owned: Mapping[str, str]) -> None:
        doc = {"dir": str(self.root.resolve()), "skills": dict(sorted(owned.items()))}
        atomic_write(self.ownership, json.dumps(doc, indent=1).encode() + b"\n")

    def _copy_skill(self, src: Path, dest: Path, tmp: Path) -> None:
        """Supporting files first, stale files out, then SKILL.md: readers never see a mix."""
        if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
            dest.unlink()
        for group in reversed(dest.relative_to(self.root).parents[:-1]):
            _ensure_dir(self.root / group)  # a grouped skill's group folder
        dest.mkdir(exist_ok=True)
        wanted: set[Path] = set()
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel = Path(dirpath).relative_to(src)
            _ensure_dir(dest / rel)
            for filename in sorted(filenames):
                wanted.add(rel / filename)
                if rel == Path(".") and filename == SKILL_FILE:
                    continue
                _place(Path(dirpath) / filename, dest / rel / filename, tmp)
        for dirpath, dirnames, filenames in os.walk(dest, topdown=False):
            rel = Path(dirpath).relative_to(dest)
            for filename in filenames:
                if rel / filename not in wanted:
                    os.unlink(Path(dirpath) / filename)
            for dirname in dirnames:
                path = Path(dirpath) / dirname
                if path.is_symlink():
                    os.unlink(path)
                elif not (src / rel / dirname).is_dir():
                    shutil.rmtree(path)
        if (src / SKILL_FILE).is_file():
            _place(src / SKILL_FILE, dest / SKILL_FILE, tmp)

    def _remove_skill(self, name: str) -> None:
        folder = self.root / name
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(folder / SKILL_FILE)  # the gateway drops the skill before its files go
        if folder.is_symlink() or folder.is_file():
            folder.unlink()
        elif folder.exists():
            shutil.rmtree(folder)
        for group in Path(name).parents[:-1]:  # group folders the last skill left empty
            with contextlib.suppress(OSError):
                (self.root / group).rmdir()

    def _touch_marker(self, release: str) -> str:
        """A fresh folder at the root: chokidar-based watchers rescan right away."""
        marker = self.root / f"{MARKER_PREFIX}{release}-{uuid.uuid4().hex[:6]}"
        marker.mkdir()
        for old in self.root.glob(f"{MARKER_PREFIX}*"):
            if old != marker:
                shutil.rmtree(old, ignore_errors=True)
        return marker.name


def skill_source(release_dir: Path, name: str) -> Path:
    """The folder holding a release's copy of skill ``name``, read through its link if it has one.

    A release written by 0.1.0 holds real folders; a newer one holds a relative symlink
    per skill into ``<state>/store/<content sha>`` (no symlinks inside a store version).
    A link that leads anywhere but a version in that store is refused: publishing copies
    what it reads into the gateway's folder.
    """
    folder = release_dir / name
    if not folder.is_symlink():
        return folder
    store = (release_dir.parent.parent / STORE_DIR).resolve()
    target = folder.resolve()
    if target.parent != store or not target.is_dir():
        raise PublishError(f"{folder} does not lead to a skill version in {store}")
    return target


def _intact(src: Path, dest: Path) -> bool:
    """``dest`` holds exactly ``src``'s files, each a private copy (cheap: stat, not read)."""
    if dest.is_symlink() or not dest.is_dir():
        return False
    for (sdir, sdirs, sfiles), (ddir, ddirs, dfiles) in zip(os.walk(src), os.walk(dest), strict=False):
        if Path(sdir).relative_to(src) != Path(ddir).relative_to(dest):
            return False
        sdirs.sort()
        ddirs.sort()
        if sdirs != ddirs or sorted(sfiles) != sorted(dfiles):
            return False
        if any((Path(ddir) / d).is_symlink() for d in ddirs):
            return False
        for name in sfiles:
            b = Path(ddir) / name
            if b.is_symlink() or not b.is_file() or not _same_file(Path(sdir) / name, b):
                return False
    return True


def _ensure_dir(path: Path) -> None:
    """A real directory at ``path``, replacing a file or symlink of that name."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    path.mkdir(exist_ok=True)


def _place(src: Path, dest: Path, tmp: Path) -> None:
    """Put a private copy of ``src`` at ``dest`` by rename, unless it is already there.

    Never a hard link into the release: OpenClaw refuses a SKILL.md whose link
    count is above 1 ("path must not be hardlinked"), and its media access is as
    strict; a private copy also keeps a consumer's write away from the release.
    """
    if dest.is_file() and not dest.is_symlink() and _same_file(src, dest):
        return
    staged = tmp / uuid.uuid4().hex
    shutil.copy2(src, staged)  # bytes, mode and mtime: the mtime lets the next run skip it
    if dest.is_dir() and not dest.is_symlink():
        shutil.rmtree(dest)
    os.replace(staged, dest)


def _same_file(src: Path, dest: Path) -> bool:
    """``dest`` is a private (single-link) copy of ``src`` with the same bytes and permissions."""
    sa, sd = os.stat(src), os.stat(dest)
    # Every permission bit, not only the exec bit: a chmod by hand is drift to repair.
    if sd.st_nlink != 1 or sa.st_size != sd.st_size or stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sd.st_mode):
        return False
    return sa.st_mtime_ns == sd.st_mtime_ns or filecmp.cmp(src, dest, shallow=False)


def load_owned(path: Path, root: Path) -> dict[str, str]:
    """Names skillsyncd published into ``root`` (empty if it published elsewhere before)."""
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise PublishError(f"{path} is corrupt ({exc}); remove it and the skills it lists") from exc
    if not isinstance(doc, dict) or doc.get("dir") != str(root.resolve()):
        if isinstance(doc, dict) and doc.get("skills"):
            log.warning("publish_dir_changed", old=doc.get("dir"), new=str(root.resolve()),
                        hint="skills published to the old directory are left in place")
        return {}
    skills = doc.get("skills") or {}
    return {str(k): str(v) for k, v in skills.items()}
