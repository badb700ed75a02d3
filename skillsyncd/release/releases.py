"""Releases on disk: stage one link per skill, write the manifest last, flip ``current``.

Layout (README "On-disk contract"):
    store/<sha>/...                     skill versions, read-only, each stored once
    releases/<id>/<skill> -> ../../store/<sha>   one relative link per live skill
    releases/<id>.json                  the manifest; a release without one is incomplete
    current -> releases/<id>            relative symlink, replaced only by rename(2)

Releases written by 0.1.0 hold real skill folders instead of links; they stay
valid (readable, verifiable, a rollback target) until retention removes them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from dulwich.objects import Blob, ObjectID, Tree

from skillsyncd.errors import ReleaseError
from skillsyncd.fsutil import atomic_write, fsync_dir, replace_symlink
from skillsyncd.model import MODE_EXEC, MODE_FILE, Skill
from skillsyncd.release.manifest import Manifest
from skillsyncd.release.store import Store, Written, _force_remove
from skillsyncd.release.store import makedirs as _makedirs

log = structlog.get_logger(__name__)

RELEASE_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{12}$")
# fsutil.atomic_write's temp names for the files written under the deploy lock:
# "." + target name + "." + mkstemp's 8 chars + ".tmp". Others (the Neo4j cursor)
# are written outside the lock, so their temp files are not ours to remove.
_ATOMIC_TMP = re.compile(r"^\.(state|published)\.json\.[a-z0-9_]{8}\.tmp$")
_CURRENT_TMP = re.compile(r"^\.current\.tmp-\d+$")


# The last parsed manifest by (path, size, mtime, inode): the live one, read on every poll.
_MANIFESTS: dict[tuple[str, int, int, int], Manifest] = {}
_MANIFESTS_KEPT = 1
_MANIFESTS_LOCK = threading.Lock()


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

    @property
    def store(self) -> Store:
        return Store(self.state_dir)

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
        """The release's manifest (the one reader of ``releases/<id>.json``).

        Manifests are immutable, so the last few parsed are kept, keyed by path,
        size and mtime: a daemon's poll does not re-parse 10,000 skills each time.
        """
        path = self.manifest_path(release_id)
        try:
            st = os.stat(path)
            key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
            with _MANIFESTS_LOCK:
                cached = _MANIFESTS.get(key)
            if cached is not None:
                return cached
            manifest = Manifest.from_json(path.read_bytes())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReleaseError(f"release {release_id} has no readable manifest: {exc}") from exc
        with _MANIFESTS_LOCK:  # the daemon's HTTP thread reads manifests too
            _MANIFESTS[key] = manifest
            while len(_MANIFESTS) > _MANIFESTS_KEPT:
                del _MANIFESTS[next(iter(_MANIFESTS))]
        return manifest

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
        removed += self.store.recover()
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
        """Delete a release: manifest first, so a crash leaves only an incomplete leftover.

        Its skill versions stay in the store until ``collect`` finds no release using them.
        """
        with contextlib.suppress(FileNotFoundError):
            self.manifest_path(release_id).unlink()
        fsync_dir(self.root)
        _force_remove(self.dir(release_id))

    def referenced(self) -> set[str]:
        """Content shas of every skill a complete release (or ``current``) serves."""
        wanted = set(self.complete())
        if (live := self.current()) is not None:
            wanted.add(live)
        shas: set[str] = set()
        for rid in wanted:
            try:
                raw = json.loads(self.manifest_path(rid).read_bytes())
            except (OSError, ValueError) as exc:
                raise ReleaseError(f"release {rid} has no readable manifest: {exc}") from exc
            shas.update(str(s["content_sha"]) for s in raw.get("skills") or ()
                        if isinstance(s, dict) and s.get("live", True) and s.get("content_sha"))
        return shas

    def collect(self) -> list[str]:
        """Remove skill versions no complete release uses (retention's second half)."""
        store = self.store
        unused = store.shas() - self.referenced()
        return store.remove(sorted(unused))


# --- staging ---------------------------------------------------------------------

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
    todo: dict[str, Skill] = {}  # two skill folders with the same bytes share one version
    for skill in build:
        if skill.tree_sha not in stored:
            todo.setdefault(skill.tree_sha, skill)
    written = store.write_many(list(todo.values()), read_blob)
    written += [store.copy_in(sha, folder) for sha, folder in (copies or {}).items()
                if sha not in stored and sha not in todo]
    nfiles = sum(len(w.files) for w in written)
    bulk = nfiles > FSYNC_MAX_FILES
    if written:
        _make_durable(written, bulk, store.root)
        store.place(written)
    stored |= {w.sha for w in written}
    missing = sorted({sha for sha in live.values() if sha not in stored})
    if missing:
        raise ReleaseError(f"skill versions missing from the store: {', '.join(missing[:5])}")

    releases.root.mkdir(parents=True, exist_ok=True)
    target = releases.dir(release_id)
    if target.exists():
        raise ReleaseError(f"release {release_id} already exists")
    target.mkdir()
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
    atomic_write(releases.manifest_path(release_id), manifest.to_json(), mode=0o444)
    return StageStats(files_written=nfiles, versions_written=len(written),
                      versions_reused=len(set(live.values())) - len(written),
                      bytes_written=sum(w.nbytes for w in written))


def store_target(name: str, sha: str) -> str:
    """Where a release's link for skill ``name`` points: relative, so the state dir can move."""
    return "../" * (name.count("/") + 2) + f"store/{sha}"


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
    """Skill entries of a release (grouped ones as 'group/skill'), and entries that are none."""
    groups = {n.rsplit("/", i)[0] for n in expected for i in range(1, n.count("/") + 1)}
    present: set[str] = set()
    extras: list[str] = []
    stack = [("", str(root))] if root.is_dir() else []
    while stack:
        rel, folder = stack.pop()
        with os.scandir(folder) as entries:
            for e in sorted(entries, key=lambda e: e.name):
                name = f"{rel}{e.name}"
                if name in expected:
                    present.add(name)
                elif name in groups and e.is_dir(follow_symlinks=False):
                    stack.append((f"{name}/", e.path))
                else:
                    extras.append(name)
    return present, sorted(extras)


def skill_problem(releases: Releases, root: Path, name: str, sha: str, hash_it: bool) -> str | None:
    """Why one skill entry of a release does not serve ``sha``; None when it does.

    A link must point at ``store/<sha>`` and that version must exist; a real folder
    (a 0.1.0 release, or link mode) must exist. With ``hash_it`` the bytes are hashed too.
    """
    entry = os.path.join(root, name)
    if os.path.islink(entry):
        want = store_target(name, sha)
        got = os.readlink(entry)
        if got != want:
            return f"{name}: links to {got}, not to {want}"
        folder = releases.store.path(sha)
        if not os.path.isdir(folder):
            return f"{name}: skill version {sha[:12]} is missing from the store"
    else:
        folder = Path(entry)
    if hash_it:
        actual = tree_sha_of(Path(folder))
        if actual != sha:
            return f"{name}: content {actual[:12]} does not match manifest {sha[:12]}"
    return None


def verify_release(
    releases: Releases, release_id: str, only: Collection[str] | None = None
) -> list[str]:
    """Differences between a release's files and its manifest; empty when intact.

    With ``only``, just those skills are hashed; the others must merely be present
    and point at the right skill version (used after a flip, where unchanged skills
    are versions an earlier release already verified).
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
        problem = skill_problem(releases, root, name, sha, only is None or name in only)
        if problem is not None:
            problems.append(problem)
    return problems
