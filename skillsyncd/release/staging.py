"""Staging a release: write the skill versions it lacks, its entries, then its manifest.

Each step is durable before the next, so a crash at any instant leaves either
no release or one whose missing manifest marks it incomplete (recovery removes it).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from skillsyncd.errors import ReleaseError
from skillsyncd.fsutil import fsync_dir
from skillsyncd.model import Skill
from skillsyncd.release.manifest import Manifest, write_manifest
from skillsyncd.release.releases import Releases, store_target
from skillsyncd.release.store import Store, Written
from skillsyncd.release.store import makedirs as _makedirs

log = structlog.get_logger(__name__)

# Up to this many new files, each written file and folder is fsynced; above it, one
# ``syncfs`` of the file system is cheaper (on ext4 every fsync is a journal commit).
FSYNC_MAX_FILES = 256


@dataclass(frozen=True)
class StageStats:
    files_written: int  # files of new skill versions
    versions_written: int  # new skill versions in the store
    versions_reused: int  # skill versions already in the store
    bytes_written: int


def stage_release(
    releases: Releases,
    release_id: str,
    live: Mapping[str, str],
    build: Iterable[Skill],
    read_blob: Callable[[str], bytes],
    manifest: Manifest,
    copies: Mapping[str, Path] | None = None,
    folders: bool = False,
    previous: str | None = None,
) -> StageStats:
    """Write the skill versions that are missing, then ``releases/<id>/``, then its manifest.

    ``live`` maps every skill the release serves to its content sha. Versions
    missing from the store come from ``build`` (skills materialised from git
    blobs) or ``copies`` (sha -> a skill folder of a 0.1.0 release, on upgrade).
    The release itself is one symlink per skill into the store, so a deploy
    writes only what changed plus one link per skill (an unchanged skill's link is a
    hard link to ``previous``'s, the live release). With ``folders`` (link
    mode) each skill is instead a real folder of hard links to its version's
    files, SKILL.md copied: a gateway that reads skills through ``current``
    refuses skill folders that are symlinks out of the release (OpenClaw 2026.9's
    symlink-prefix check, which ``allowSymlinkTargets`` does not lift).

    Order, so that a crash at any instant leaves no complete-looking half: new
    versions are written under temporary names and made durable, renamed to
    their sha, then the release's links are made durable, then the manifest
    (what makes a release complete) is written.
    """
    store = releases.store
    stored = store.shas()
    written = _write_versions(store, stored, build, read_blob, copies or {})
    nfiles = sum(len(w.files) for w in written)
    bulk = nfiles > FSYNC_MAX_FILES
    if written:
        _make_durable(written, bulk, store.root)
        store.place(written)
    stored |= {w.sha for w in written}
    missing = sorted({sha for sha in live.values() if sha not in stored})
    if missing:
        raise ReleaseError(f"skill versions missing from the store: {', '.join(missing[:5])}")
    target = _release_dir(releases, release_id)
    before = releases.manifest(previous).live_shas() if previous and not folders else None
    groups = _link_skills(target, live, store, folders,
                          releases.dir(previous) if before is not None and previous else None, before)
    for d in sorted(groups, key=lambda p: p.count(os.sep), reverse=True):
        os.chmod(d, 0o555)
    os.chmod(target, 0o555)
    if bulk or folders:
        sync_filesystem(target)
    else:
        for d in [*groups, str(target), str(releases.root)] + ([str(store.root)] if written else []):
            fsync_dir(Path(d))
    write_manifest(releases.manifest_path(release_id), manifest)
    return StageStats(files_written=nfiles, versions_written=len(written),
                      versions_reused=len(set(live.values())) - len(written),
                      bytes_written=sum(w.nbytes for w in written))


def _write_versions(store: Store, stored: set[str], build: Iterable[Skill],
                    read_blob: Callable[[str], bytes], copies: Mapping[str, Path]) -> list[Written]:
    """The skill versions the store lacks, written under temporary names (not yet durable)."""
    todo: dict[str, Skill] = {}  # two skill folders with the same bytes share one version
    for skill in build:
        if skill.tree_sha not in stored:
            todo.setdefault(skill.tree_sha, skill)
    written = store.write_many(list(todo.values()), read_blob)
    written += [store.copy_in(sha, folder) for sha, folder in copies.items()
                if sha not in stored and sha not in todo]
    return written


def _release_dir(releases: Releases, release_id: str) -> Path:
    """``releases/<id>/``, new and empty; a release id is never written twice."""
    releases.root.mkdir(parents=True, exist_ok=True)
    target = releases.dir(release_id)
    if target.exists():
        raise ReleaseError(f"release {release_id} already exists")
    target.mkdir()
    return target


def _link_skills(target: Path, live: Mapping[str, str], store: Store, folders: bool,
                 previous: Path | None = None, previous_shas: Mapping[str, str] | None = None
                 ) -> list[str]:
    """Each skill into the release: a symlink to its version, or (``folders``) a real
    folder of hard links to the version's files. Returns every folder made.

    An unchanged skill's symlink is a hard link to the one in ``previous`` (the live
    release): the same relative target, no new inode. Allocating 10,000 symlink
    inodes is what a one-skill deploy cost otherwise (0.35-5 s here, with the load).
    """
    root = str(target)
    made: set[str] = {root}
    created: list[str] = []
    before = previous_shas or {}
    for name, sha in live.items():
        dest = os.path.join(root, name)
        _makedirs(os.path.dirname(dest), made, created)
        reuse = previous / name if previous is not None and before.get(name) == sha else None
        _link_skill(store, name, sha, dest, created if folders else None, reuse)
    return created


def _link_skill(store: Store, name: str, sha: str, dest: str, folders: list[str] | None,
                reuse: Path | None = None) -> None:
    if folders is not None:  # OpenClaw skips a SKILL.md with more than one link: copy each
        _link_tree(str(store.path(sha)), dest, folders, copy_names=frozenset({"SKILL.md"}))
        return
    if reuse is not None:  # same sha, same depth: the same link target
        try:
            os.link(reuse, dest, follow_symlinks=False)
            return
        except OSError as exc:  # a 0.1.0 release's real folder (EPERM), or no hard links here
            if exc.errno not in (errno.EISDIR, errno.ENOENT, errno.EPERM, errno.EMLINK,
                                 errno.ENOTSUP, errno.EXDEV):
                raise
    os.symlink(store_target(name, sha), dest)


def _link_tree(src_root: str, dest_root: str, created: list[str],
               copy_names: frozenset[str] = frozenset()) -> int:
    """Hard-link every file of one skill version into a real folder; returns the count.

    Top-level files named in ``copy_names`` are copied instead.
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




def _make_durable(written: Sequence[Written], bulk: bool, store_root: Path) -> None:
    """New versions' files and folders on disk before they are renamed to their sha."""
    if bulk:
        sync_filesystem(store_root)
        return
    for w in written:
        for f in w.files:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for d in w.dirs:
            fsync_dir(d)


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

