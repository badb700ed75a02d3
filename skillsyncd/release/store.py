"""Skill versions on disk, each stored once: ``store/<content-sha>/``.

A skill version is the folder of one skill at one content sha (the git tree id
of what is deployed of it). It is immutable: files and folders read-only, and
written under a temporary name, made durable, then renamed into place, so a
version under its final name is always complete. Releases refer to versions by
symlink (skillsyncd.release.releases), so a deploy writes only the skills that changed.

A version is removed only when no complete release refers to it, and removal
renames it aside first: a half-removed version never sits under its sha.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from skillsyncd.errors import ReleaseError
from skillsyncd.fsutil import fsync_dir, write_all
from skillsyncd.model import MODE_EXEC, Skill

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
WRITE_WORKERS = 4  # threads creating files during a large write (first sync)
PARALLEL_MIN_SKILLS = 64  # below this, threads cost more than they save
IN_FLIGHT_PER_WORKER = 8
WORK = ".work"  # store/.work/: versions being written (new-<sha>) or removed (old-<sha>)
_NEW = "new-"
_OLD = "old-"


def file_mode(git_mode: int) -> int:
    return 0o555 if git_mode == MODE_EXEC else 0o444


@dataclass(frozen=True)
class Written:
    """A version written under its temporary name, not yet durable or in place."""

    sha: str
    tmp: Path
    files: tuple[Path, ...]
    dirs: tuple[Path, ...]  # deepest first, the version's root last
    nbytes: int


@dataclass(frozen=True)
class Store:
    """The skill versions of one state dir."""

    state_dir: Path

    @property
    def root(self) -> Path:
        return self.state_dir / "store"

    @property
    def work(self) -> Path:
        """Where versions are written and removed: recovery lists this, never all of store/."""
        return self.root / WORK

    def path(self, sha: str) -> Path:
        return self.root / sha

    def has(self, sha: str) -> bool:
        return os.path.isdir(self.root / sha)

    def shas(self) -> set[str]:
        """Every complete version on disk."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return set()
        return {n for n in names if SHA_RE.match(n)}

    # --- writing ------------------------------------------------------------------

    def write(self, skill: Skill, read_blob: Callable[[str], bytes]) -> Written:
        """Write one skill's files from git blobs under a temporary name (no fsync)."""
        self.work.mkdir(parents=True, exist_ok=True)
        return self._write(skill, [read_blob(e.sha) for e in skill.entries])

    def write_many(self, skills: Sequence[Skill], read_blob: Callable[[str], bytes],
                   workers: int = WRITE_WORKERS) -> list[Written]:
        """Write many skills; file writes run in threads while this one reads the pack.

        dulwich reads the pack through one file position, so blobs are read here,
        in order; creating and writing files releases the GIL, so a first sync of
        thousands of skills overlaps reading with writing. In-flight skills are
        bounded, and so is the memory their blobs hold.
        """
        if workers <= 1 or len(skills) < PARALLEL_MIN_SKILLS:
            return [self.write(skill, read_blob) for skill in skills]
        self.work.mkdir(parents=True, exist_ok=True)
        done: list[Written] = []
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="store-write") as pool:
            pending: deque[Future[Written]] = deque()
            for skill in skills:
                blobs = [read_blob(e.sha) for e in skill.entries]
                pending.append(pool.submit(self._write, skill, blobs))
                while len(pending) > workers * IN_FLIGHT_PER_WORKER:
                    done.append(pending.popleft().result())
            done.extend(f.result() for f in pending)
        return done

    def _write(self, skill: Skill, blobs: Sequence[bytes]) -> Written:
        tmp = self.work / f"{_NEW}{skill.tree_sha}"
        if tmp.exists() or tmp.is_symlink():
            _force_remove(tmp)
        os.mkdir(tmp)
        dirs: list[str] = [str(tmp)]
        made = {str(tmp)}
        files: list[Path] = []
        nbytes = 0
        for entry, data in zip(skill.entries, blobs, strict=True):
            dest = os.path.join(tmp, entry.path)
            makedirs(os.path.dirname(dest), made, dirs)
            write_new(dest, data, file_mode(entry.mode))
            files.append(Path(dest))
            nbytes += len(data)
        ordered = sorted(dirs, key=lambda p: p.count(os.sep), reverse=True)
        for d in ordered[:-1]:  # the version's own folder stays writable until it is placed
            os.chmod(d, 0o555)
        return Written(skill.tree_sha, tmp, tuple(files), tuple(Path(d) for d in ordered), nbytes)

    def copy_in(self, sha: str, folder: Path) -> Written:
        """A version copied from a skill folder of a release written by 0.1.0 (upgrade)."""
        self.work.mkdir(parents=True, exist_ok=True)
        tmp = self.work / f"{_NEW}{sha}"
        if tmp.exists() or tmp.is_symlink():
            _force_remove(tmp)
        files: list[Path] = []
        dirs: list[Path] = []
        nbytes = 0
        for dirpath, dirnames, filenames in os.walk(folder):
            dest_dir = Path(str(tmp) + dirpath[len(str(folder)):])
            os.mkdir(dest_dir)
            dirs.append(dest_dir)
            for name in dirnames:
                if os.path.islink(os.path.join(dirpath, name)):
                    raise ReleaseError(f"unexpected symlink in release: {dirpath}/{name}")
            for name in filenames:
                src = os.path.join(dirpath, name)
                if os.path.islink(src):
                    raise ReleaseError(f"unexpected symlink in release: {src}")
                data = Path(src).read_bytes()
                mode = 0o555 if os.stat(src).st_mode & 0o111 else 0o444
                write_new(os.path.join(dest_dir, name), data, mode)
                files.append(dest_dir / name)
                nbytes += len(data)
        ordered = sorted(dirs, key=lambda p: str(p).count(os.sep), reverse=True)
        for d in ordered[:-1]:  # the version's own folder stays writable until it is placed
            os.chmod(d, 0o555)
        return Written(sha, tmp, tuple(files), tuple(ordered), nbytes)

    def place(self, written: Iterable[Written]) -> None:
        """Rename durable versions to their sha; a version already there wins (same bytes)."""
        for w in written:
            self._place_one(w)

    def _place_one(self, w: Written) -> None:
        """Rename into place, then make the version's folder read-only.

        Moving a folder to another parent rewrites its '..' entry, which needs write
        permission on the folder itself (for any user but root): so it is read-only
        only once it is in place.
        """
        try:
            os.rename(w.tmp, self.path(w.sha))
        except OSError:
            if not self.has(w.sha):
                raise
            _force_remove(w.tmp)  # written twice (a retry): the placed one is identical
            return
        os.chmod(self.path(w.sha), 0o555)

    # --- removing -----------------------------------------------------------------

    def recover(self) -> list[str]:
        """Remove what a crash can leave: versions half written or half removed."""
        removed: list[str] = []
        try:
            names = os.listdir(self.work)
        except FileNotFoundError:
            return removed
        for name in names:
            _force_remove(self.work / name)
            removed.append(f"store/{WORK}/{name}")
        return removed

    def remove(self, shas: Iterable[str]) -> list[str]:
        """Remove versions no release refers to: rename aside (atomic), then delete."""
        removed: list[str] = []
        for sha in shas:
            self.work.mkdir(parents=True, exist_ok=True)
            try:
                os.chmod(self.path(sha), 0o755)  # a folder moved to another parent must be writable
                os.rename(self.path(sha), self.work / f"{_OLD}{sha}")
            except FileNotFoundError:
                continue
            removed.append(sha)
        if removed:
            fsync_dir(self.root)
        for sha in removed:
            _force_remove(self.work / f"{_OLD}{sha}")
        return removed


def write_new(path: str | Path, data: bytes, mode: int) -> None:
    """Create one file of a version being written (it must not exist yet); no fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        write_all(fd, data)
    except OSError as exc:  # os.write names no file: say which one (and so which filesystem)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        os.close(fd)


def makedirs(path: str, made: set[str], created: list[str]) -> None:
    """Create ``path`` and any missing parents below a root already in ``made``
    (recording each folder made, for the read-only pass that follows)."""
    if path in made:
        return
    makedirs(os.path.dirname(path), made, created)
    os.mkdir(path)
    made.add(path)
    created.append(path)


def _force_remove(path: Path) -> None:
    """rmtree that first restores write permission on read-only folders; never follows links."""
    if path.is_symlink() or path.is_file():
        path.unlink()
        return
    if not path.exists():
        return
    for dirpath, dirnames, _ in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, stat.S_IRWXU)
        for d in dirnames:
            full = os.path.join(dirpath, d)
            if not os.path.islink(full):
                with contextlib.suppress(OSError):
                    os.chmod(full, stat.S_IRWXU)
    shutil.rmtree(path)
