"""Releases on disk: stage an immutable tree, write its manifest last, flip ``current``.

Layout (README "On-disk contract"):
    releases/<id>/<skill>/...   the skill folders, read-only
    releases/<id>.json          the manifest; a release without one is incomplete
    current -> releases/<id>    relative symlink, replaced only by rename(2)
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from dulwich.objects import Blob, ObjectID, Tree

from skillsyncd.errors import ReleaseError
from skillsyncd.fsutil import atomic_write, fsync_dir, replace_symlink, write_all
from skillsyncd.manifest import Manifest
from skillsyncd.model import MODE_EXEC, MODE_FILE, Skill

log = structlog.get_logger(__name__)

RELEASE_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{12}$")
# fsutil.atomic_write's temp names for the files written under the deploy lock:
# "." + target name + "." + mkstemp's 8 chars + ".tmp". Others (the Neo4j cursor)
# are written outside the lock, so their temp files are not ours to remove.
_ATOMIC_TMP = re.compile(r"^\.(state|published)\.json\.[a-z0-9_]{8}\.tmp$")
_CURRENT_TMP = re.compile(r"^\.current\.tmp-\d+$")


def new_release_id(commit: str, now: float | None = None) -> str:
    stamp = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    return f"{stamp:%Y%m%dT%H%M%SZ}-{commit[:12]}"


def commit_of(release_id: str) -> str:
    """The (abbreviated) commit a release id names."""
    return release_id.rsplit("-", 1)[-1]


@dataclass(frozen=True)
class Releases:
    """Paths of one state dir's releases."""

    state_dir: Path

    @property
    def root(self) -> Path:
        return self.state_dir / "releases"

    @property
    def current_link(self) -> Path:
        return self.state_dir / "current"

    def dir(self, release_id: str) -> Path:
        return self.root / release_id

    def manifest_path(self, release_id: str) -> Path:
        return self.root / f"{release_id}.json"

    # --- reading ----------------------------------------------------------------

    def complete(self) -> list[str]:
        """Ids of complete releases (folder and manifest), oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if RELEASE_ID_RE.match(p.name) and p.is_dir() and self.manifest_path(p.name).is_file()
        )

    def current(self) -> str | None:
        """The release ``current`` points at, if it is a complete release."""
        try:
            target = os.readlink(self.current_link)
        except OSError:
            return None
        name = Path(target).name
        if (
            Path(target).parent.name == "releases"
            and RELEASE_ID_RE.match(name)
            and self.dir(name).is_dir()
            and self.manifest_path(name).is_file()
        ):
            return name
        return None

    def manifest(self, release_id: str) -> Manifest:
        """The release's manifest (the one reader of ``releases/<id>.json``)."""
        try:
            return Manifest.from_json(self.manifest_path(release_id).read_bytes())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReleaseError(f"release {release_id} has no readable manifest: {exc}") from exc

    # --- writing ----------------------------------------------------------------

    def flip(self, release_id: str) -> None:
        """Point ``current`` at a complete release, atomically."""
        if not self.manifest_path(release_id).is_file() or not self.dir(release_id).is_dir():
            raise ReleaseError(f"refusing to flip to incomplete release {release_id}")
        replace_symlink(self.current_link, f"releases/{release_id}")

    def unflip(self) -> None:
        """Remove ``current``: nothing is live (a first deploy that failed after its flip)."""
        with contextlib.suppress(FileNotFoundError):
            self.current_link.unlink()
        fsync_dir(self.state_dir)

    def recover(self) -> list[str]:
        """Remove what a crash can leave: incomplete releases and temp files/links."""
        removed: list[str] = []
        # A flip's temp link, and atomic_write's temp files (state.json, published.json)
        # orphaned by a kill between mkstemp and rename: without this they pile up.
        if self.state_dir.is_dir():
            for tmp in self.state_dir.iterdir():
                if _CURRENT_TMP.match(tmp.name) or (_ATOMIC_TMP.match(tmp.name) and tmp.is_file()):
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
                        removed.append(tmp.name)
        if not self.root.is_dir():
            return removed
        for path in self.root.iterdir():
            name = path.name
            temp = name.startswith(".")  # a temp manifest from atomic_write
            if temp or (path.is_dir() and not self.manifest_path(name).is_file()):
                _force_remove(path)
                removed.append(name)
            elif name.endswith(".json") and not self.dir(name[:-5]).is_dir():
                path.unlink()
                removed.append(name)
        if removed:
            fsync_dir(self.root)
        return removed

    def delete(self, release_id: str) -> None:
        """Delete a release: manifest first, so a crash leaves only an incomplete leftover."""
        with contextlib.suppress(FileNotFoundError):
            self.manifest_path(release_id).unlink()
        fsync_dir(self.root)
        _force_remove(self.dir(release_id))


def _force_remove(path: Path) -> None:
    """rmtree that first restores write permission on the read-only release folders."""
    if path.is_symlink() or path.is_file():
        path.unlink()
        return

    for dirpath, dirnames, _ in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, stat.S_IRWXU)
        for d in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, d), stat.S_IRWXU)
    shutil.rmtree(path)


# --- staging ---------------------------------------------------------------------


@dataclass(frozen=True)
class StageStats:
    files_written: int
    files_linked: int
    bytes_written: int


def file_mode(git_mode: int) -> int:
    return 0o555 if git_mode == MODE_EXEC else 0o444


def stage_release(
    releases: Releases,
    release_id: str,
    build: Iterable[Skill],
    reuse: Mapping[str, str],
    read_blob: Callable[[str], bytes],
    manifest: Manifest,
    copy_names: frozenset[str] = frozenset(),
) -> StageStats:
    """Build ``releases/<id>/`` and write its manifest last.

    ``build`` are skills materialised from git blobs; ``reuse`` maps skill name ->
    previous release id whose copy is hard-linked (unchanged or held-back skills),
    except files at a skill's top level named in ``copy_names``, which are copied:
    OpenClaw refuses a ``SKILL.md`` with more than one link when it reads releases
    through the ``current`` link.

    Durability: files and folders are not fsynced one by one (on ext4 every fsync
    is a journal commit, ~40 ms per thousand files here, minutes for 10,000 skills);
    one ``syncfs`` of the release's file system makes all of them durable before the
    manifest is written, and the manifest is what makes a release complete.
    """
    releases.root.mkdir(parents=True, exist_ok=True)
    target = releases.dir(release_id)
    if target.exists():
        raise ReleaseError(f"release {release_id} already exists")
    target.mkdir()
    root = str(target)
    written = linked = nbytes = 0
    dirs: list[str] = []
    made: set[str] = {root}
    for skill in build:
        for entry in skill.entries:
            dest = os.path.join(root, skill.name, entry.path)
            _makedirs(os.path.dirname(dest), made, dirs)
            data = read_blob(entry.sha)
            write_new(Path(dest), data, file_mode(entry.mode))
            written += 1
            nbytes += len(data)
    sources = {rid: str(releases.dir(rid)) for rid in set(reuse.values())}
    for name, source_release in reuse.items():
        _makedirs(os.path.dirname(os.path.join(root, name)), made, dirs)  # a grouped skill's group
        linked += _link_tree(os.path.join(sources[source_release], name),
                             os.path.join(root, name), dirs, copy_names)
    # Directories become read-only, deepest first, then the release root; then one
    # file-system sync makes every file, link, folder and mode above durable.
    for d in sorted(dirs, key=lambda p: p.count(os.sep), reverse=True):
        os.chmod(d, 0o555)
    os.chmod(target, 0o555)
    sync_filesystem(target)
    atomic_write(releases.manifest_path(release_id), manifest.to_json(), mode=0o444)
    return StageStats(files_written=written, files_linked=linked, bytes_written=nbytes)


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Create one file of a release being staged (it must not exist yet); no fsync.

    Durable once ``stage_release`` has run ``sync_filesystem``, which it does
    before the manifest makes the release complete; nothing sees the file before.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        write_all(fd, data)
    except OSError as exc:  # os.write names no file: say which one (and so which filesystem)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        os.close(fd)


def sync_filesystem(path: Path) -> None:
    """Flush the whole file system holding ``path`` to disk (Linux ``syncfs``).

    One call replaces an fsync per file and per folder. Where ``syncfs`` is
    missing (not Linux), ``sync()`` flushes every file system instead.
    """
    syncfs = _syncfs()
    if syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs failed: {os.strerror(err)}", str(path))
    finally:
        os.close(fd)


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError):
        return None
    return fn


def _makedirs(path: str, made: set[str], created: list[str]) -> None:
    """Create ``path`` and any missing parents below the release root (in ``made``)."""
    if path in made:
        return
    _makedirs(os.path.dirname(path), made, created)
    os.mkdir(path)
    made.add(path)
    created.append(path)


def _link_tree(src_root: str, dest_root: str, created: list[str],
               copy_names: frozenset[str] = frozenset()) -> int:
    """Hard-link every file of one skill folder of an earlier release; returns the count.

    Top-level files named in ``copy_names`` are copied instead (durable via sync_filesystem).
    """
    linked = 0
    for dirpath, _dirnames, filenames in os.walk(src_root):
        dest_dir = dest_root + dirpath[len(src_root):]
        os.mkdir(dest_dir)
        created.append(dest_dir)
        for name in filenames:
            src, dest = os.path.join(dirpath, name), os.path.join(dest_dir, name)
            if name in copy_names and dirpath == src_root:
                _copy_file(src, dest)
            else:
                _link_or_copy(src, dest)
            linked += 1
    return linked


def _link_or_copy(src: str | Path, dest: str | Path) -> None:
    """A hard link; a copy where the file system refuses one (durable via sync_filesystem)."""
    try:
        os.link(src, dest)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        _copy_file(src, dest)


def _copy_file(src: str | Path, dest: str | Path) -> None:
    """A new file with the bytes and permission bits of ``src`` (durable via sync_filesystem).

    Leaner than ``shutil.copy2`` (no timestamps or xattrs, which a release does not
    promise), and the copy stays in the kernel where ``copy_file_range`` exists.
    """
    fd_in = os.open(src, os.O_RDONLY)
    try:
        st = os.fstat(fd_in)
        fd_out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(st.st_mode))
        try:
            if not _copy_in_kernel(fd_in, fd_out, st.st_size):
                while chunk := os.read(fd_in, 1 << 20):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd_out, view):]
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _copy_in_kernel(fd_in: int, fd_out: int, size: int) -> bool:
    """Copy with copy_file_range; False (nothing written) where it is unavailable."""
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is None:
        return False
    done = 0
    try:
        while done < size:
            n = copy_range(fd_in, fd_out, size - done)
            if n == 0:
                break
            done += n
    except OSError as exc:
        if done or exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
        return False
    return True


# --- verification -------------------------------------------------------------------


def tree_sha_of(folder: Path) -> str:
    """The git tree id of a folder on disk, so a release can be checked against git."""
    tree = Tree()
    for child in sorted(folder.iterdir()):
        if child.is_symlink():
            raise ReleaseError(f"unexpected symlink in release: {child}")
        if child.is_dir():
            tree.add(child.name.encode("utf-8", "surrogateescape"), 0o040000,
                     ObjectID(tree_sha_of(child).encode()))
        else:
            blob = Blob.from_string(child.read_bytes())
            mode = MODE_EXEC if os.stat(child).st_mode & 0o111 else MODE_FILE
            tree.add(child.name.encode("utf-8", "surrogateescape"), mode, blob.id)
    return tree.id.decode()


def _skill_folders(root: Path, expected: set[str]) -> tuple[set[str], list[str]]:
    """Skill folders of a release (grouped ones as 'group/skill'), and entries that are none."""
    groups = {n.rsplit("/", i)[0] for n in expected for i in range(1, n.count("/") + 1)}
    present: set[str] = set()
    extras: list[str] = []
    stack = [("", root)] if root.is_dir() else []
    while stack:
        rel, folder = stack.pop()
        for p in sorted(folder.iterdir()):
            name = f"{rel}{p.name}"
            if name in expected:
                present.add(name)
            elif name in groups and p.is_dir() and not p.is_symlink():
                stack.append((f"{name}/", p))
            else:
                extras.append(name)
    return present, sorted(extras)


def verify_release(
    releases: Releases, release_id: str, only: Collection[str] | None = None
) -> list[str]:
    """Differences between a release's files and its manifest; empty when intact.

    With ``only``, just those skills are hashed; the others must merely be present
    (used after a flip, where unchanged skills are links to an already-verified copy).
    """
    problems: list[str] = []
    try:
        manifest = releases.manifest(release_id)
    except ReleaseError as exc:
        return [str(exc)]
    root = releases.dir(release_id)
    expected = manifest.live_shas()
    present, extras = _skill_folders(root, set(expected))
    for extra in extras:
        problems.append(f"{extra}: in the release but not in its manifest")
    for name, sha in sorted(expected.items()):
        if name not in present:
            problems.append(f"{name}: in the manifest but missing from the release")
            continue
        if only is not None and name not in only:
            continue
        actual = tree_sha_of(root / name)
        if actual != sha:
            problems.append(f"{name}: content {actual[:12]} does not match manifest {sha[:12]}")
    return problems
