"""The local mirror's objects: what it holds, its shallow edge, and keeping it small.

A job dulwich does not do the way a sync needs it (local fetches are
:mod:`skillsyncd.source.local_fetch`'s):

* **A bounded mirror.** Each fetch adds a pack. Only the objects of the new
  head (and of the previously deployed commit, whose time dates a history
  rewrite check) are ever read again; old skill versions needed for rollback
  live in the release store. :func:`prune` writes one pack of exactly those
  objects, then removes every other pack and loose object.

Crash safety rests on two facts of git's layout that dulwich shares: a pack
counts only once its ``.idx`` exists (written last, by rename), and objects are
only removed after the pack that keeps them is complete. A SIGKILL at any
instant leaves either the old packs, or the new pack plus some old ones, never
a mirror missing a kept object. Half-written packs are removed by the sync's
recovery (``clear_leftovers``).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dulwich.errors import ObjectFormatException, ObjectMissing
from dulwich.object_store import BaseObjectStore, DiskObjectStore
from dulwich.objects import Commit, ObjectID, Tag, Tree
from dulwich.pack import generate_unpacked_objects
from dulwich.repo import Repo

# The object bytes the mirror held right after its last prune, one decimal line.
PRUNED_BYTES_FILE = "skillsyncd-pruned-bytes"
# Growth beyond the last pruned size that triggers a prune (garbage and new versions).
GROWTH = 1.25
_MODE_GITLINK = 0o160000


@dataclass(frozen=True)
class Usage:
    """What the mirror's object store holds on disk."""

    packs: int
    loose: int
    bytes: int


@dataclass(frozen=True)
class Added:
    """What one fetch added to the mirror: objects and their pack bytes."""

    objects: int
    bytes: int


def usage(objects_dir: Path) -> Usage:
    """Count complete packs and loose objects, and the bytes of both."""
    packs = loose = size = 0
    pack_dir = objects_dir / "pack"
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(pack_dir):
            if entry.name.endswith((".pack", ".idx")) and entry.is_file():
                size += entry.stat().st_size
                packs += entry.name.endswith(".pack")
    with contextlib.suppress(FileNotFoundError):
        for sub in os.scandir(objects_dir):
            if len(sub.name) == 2 and sub.is_dir():
                for entry in os.scandir(sub.path):
                    loose += 1
                    size += entry.stat().st_size
    return Usage(packs=packs, loose=loose, bytes=size)


def complete_packs(objects_dir: Path) -> dict[str, Path]:
    """Pack basename -> .pack path, for packs whose index exists (the ones git reads)."""
    pack_dir = objects_dir / "pack"
    try:
        names = set(os.listdir(pack_dir))
    except FileNotFoundError:
        return {}
    return {n[:-5]: pack_dir / n for n in names
            if n.endswith(".pack") and n[:-5] + ".idx" in names}


def added_since(store: DiskObjectStore, before: dict[str, Path]) -> Added:
    """Objects and bytes in the packs that appeared since ``before`` was taken."""
    objects = size = 0
    new = set(complete_packs(Path(store.path))) - set(before)
    for pack in store.packs:
        name = os.path.basename(pack._basename)
        if name in new:
            objects += len(pack.index)
            size += os.path.getsize(pack._data_path) + os.path.getsize(pack._idx_path)
    return Added(objects=objects, bytes=size)


# --- reading --------------------------------------------------------------------------


def has_commit(repo: Repo, sha: bytes, with_tree: bool = False) -> bool:
    """Whether the mirror holds commit (or tag) ``sha``; ``with_tree``: and its root tree.

    The tree check keeps a commit object that arrived without its tree (a
    deepened history's edge, a mirror damaged on disk) from passing for fetched.
    """
    store = repo.object_store
    try:
        oid = ObjectID(sha)
        if oid not in store:
            return False
        obj = store[oid]
        while with_tree and isinstance(obj, Tag):
            obj = store[obj.object[1]]
        if with_tree and isinstance(obj, Commit):
            return obj.tree in store
        return obj.type_name in (b"commit", b"tag")
    except ValueError:
        return False
    except KeyError:
        # indexed but unreadable (dulwich skips a pack whose data is damaged): a mirror
        # trusted for its trees must not be half read; Source.fetch resets it
        raise ObjectMissing(sha) from None


def check_packs(repo: Repo) -> None:
    """Each pack's length and trailer against its index, before the mirror's trees are
    trusted: a truncated or overwritten pack would otherwise pass for present (its index
    is intact) and fail only when staging reads it. Reads two small spans per pack."""
    for pack in repo.object_store.packs:
        try:
            pack.check_length_and_checksum()
        except AssertionError as exc:  # dulwich's length check
            raise ObjectFormatException(f"pack {pack.name().decode()}: {exc}") from None


# --- shallow edge --------------------------------------------------------------------


def mark_shallow(repo: Repo, commits: Iterable[ObjectID]) -> None:
    """Record as shallow each commit whose parents the mirror lacks, as git would."""
    store = repo.object_store
    commits = set(commits)
    edge = {c for c in commits if any(p not in store for p in _parents(store, c))}
    still = {s for s in repo.get_shallow() if s in store and s not in commits}
    _write_shallow(repo, still | edge)


def _write_shallow(repo: Repo, commits: set[ObjectID]) -> None:
    path = Path(repo.controldir()) / "shallow"
    if not commits:
        path.unlink(missing_ok=True)
        return
    _atomic_write(path, b"".join(sorted(c + b"\n" for c in commits)))


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# --- bounding ---------------------------------------------------------------------------


def pruned_bytes(mirror_dir: Path) -> int | None:
    """The mirror's size after its last prune; None when unknown (never pruned, unreadable)."""
    try:
        return int((mirror_dir / PRUNED_BYTES_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def needs_prune(now: Usage, baseline: int | None) -> bool:
    """The bytes grew well past what the last prune kept (garbage, or a bigger head).

    A mirror with no baseline is pruned once unless it is a single pack (a first
    fetch): that pack is the baseline.
    """
    if baseline is None:
        return now.packs > 1 or now.loose > 0
    return now.bytes > baseline * GROWTH


def needs_merge(now: Usage, max_packs: int) -> bool:
    """Too many packs: merge the small ones (see :func:`merge_small_packs`)."""
    return now.packs > max_packs


def merge_small_packs(repo: Repo) -> Usage:
    """Merge every pack but the largest (and the loose objects) into one pack.

    The cheap way to bound the pack count between prunes: the largest pack is
    usually the head's full pack and is neither read nor rewritten; the others
    hold what the incremental fetches added since. Same crash-safety order as
    :func:`prune`. Garbage in them is kept; the size trigger prunes it.
    """
    store = repo.object_store
    objects_dir = Path(store.path)
    old = complete_packs(objects_dir)
    largest = max(old, key=lambda n: old[n].stat().st_size, default=None)
    small = [pack for pack in store.packs if os.path.basename(pack._basename) != largest]
    wanted = {ObjectID(sha) for pack in small for sha in pack}
    wanted |= set(store._iter_loose_objects())
    pack = store.add_pack_data(
        len(wanted), generate_unpacked_objects(store, [(o, None) for o in sorted(wanted)]))
    kept = {largest, os.path.basename(pack._basename) if pack is not None else None}
    for name, data_path in old.items():
        if name not in kept:
            _remove_pack(data_path)
    _remove_loose(objects_dir)
    store.close()
    return usage(objects_dir)


def record_baseline(mirror_dir: Path, size: int) -> None:
    _atomic_write(mirror_dir / PRUNED_BYTES_FILE, f"{size}\n".encode())


def prune(repo: Repo, head: ObjectID, previous: ObjectID | None = None) -> Usage:
    """Leave the mirror holding exactly the objects of ``head`` and ``previous``, in one pack.

    A previous commit whose tree is not all there (only blobs the fetch filter
    left out may be missing) is dropped rather than kept half, since a commit in
    the mirror promises its tree to the next fetch. A head that is not whole means
    a damaged mirror: ObjectMissing, which ``Source.fetch`` answers with a reset.
    """
    store = repo.object_store
    objects_dir = Path(store.path)
    commits, wanted = _closure(store, [head] + ([previous] if previous else []))
    if head not in commits:
        raise ObjectMissing(head)
    old = complete_packs(objects_dir)
    pack = store.add_pack_data(
        len(wanted), generate_unpacked_objects(store, [(o, None) for o in sorted(wanted)]))
    _write_shallow(repo, {c for c in commits
                          if any(p not in commits for p in _parents(store, c))})
    kept = os.path.basename(pack._basename) if pack is not None else None
    for name, data_path in old.items():
        if name != kept:
            _remove_pack(data_path)
    _remove_loose(objects_dir)
    store.close()
    now = usage(objects_dir)
    record_baseline(Path(repo.controldir()), now.bytes)
    return now


def _parents(store: BaseObjectStore, oid: ObjectID) -> list[ObjectID]:
    commit = store[oid]
    return list(commit.parents) if isinstance(commit, Commit) else []


def _closure(store: BaseObjectStore, keep: Iterable[ObjectID]) -> tuple[set[ObjectID], set[ObjectID]]:
    """The kept commits and every object their trees reach (missing blobs skipped)."""
    commits: set[ObjectID] = set()
    wanted: set[ObjectID] = set()
    for oid in keep:
        if oid in commits:
            continue
        try:
            reach = _reach(store, oid, wanted)
        except KeyError:
            continue  # this commit's tree is not whole here: do not keep it
        commits.add(oid)
        wanted |= reach
    return commits, wanted


def _reach(store: BaseObjectStore, oid: ObjectID, already: set[ObjectID]) -> set[ObjectID]:
    commit = store[oid]
    if not isinstance(commit, Commit):
        raise KeyError(oid)
    found = {oid}
    todo = [commit.tree]
    while todo:
        tree_id = todo.pop()
        if tree_id in found or tree_id in already:
            continue
        tree = store[tree_id]
        if not isinstance(tree, Tree):
            raise KeyError(tree_id)
        found.add(tree_id)
        for entry in tree.iteritems():
            mode, sha = entry.mode, entry.sha
            if mode is None or sha is None or mode == _MODE_GITLINK:
                continue
            if stat.S_ISDIR(mode):
                todo.append(sha)
            elif sha in store:  # a blob the filter left out stays out
                found.add(sha)
    return found


def _remove_pack(data_path: Path) -> None:
    """Index first: a pack without one is ignored by readers and removed at recovery."""
    for path in (data_path.with_suffix(".idx"), data_path.with_suffix(".bitmap"),
                 data_path.with_suffix(".rev"), data_path):
        path.unlink(missing_ok=True)


def _remove_loose(objects_dir: Path) -> None:
    """Every loose object is either in the new pack or garbage."""
    for sub in objects_dir.iterdir():
        if len(sub.name) == 2 and sub.is_dir():
            for entry in sub.iterdir():
                entry.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                sub.rmdir()


def clear_leftovers(mirror: Path) -> list[str]:
    """Remove what a killed fetch leaves in the mirror: git lock files and half-written packs.

    Called under the deploy lock, so no other fetch can own them. A stale
    ``refs/.../X.lock`` would otherwise fail every later fetch (dulwich FileLocked).
    """
    removed: list[str] = []
    if not mirror.is_dir():
        return removed
    doomed: list[Path] = [p for p in mirror.glob("*.lock") if p.is_file()]
    refs = mirror / "refs"
    if refs.is_dir():
        doomed += [p for p in refs.rglob("*.lock") if p.is_file()]
    objects = mirror / "objects"
    if objects.is_dir():
        doomed += [p for p in objects.glob("tmp_pack_*") if p.is_file()]
    packs = objects / "pack"
    if packs.is_dir():
        for p in packs.iterdir():
            if not p.is_file():
                continue
            if p.suffix == ".lock" or (p.suffix == ".pack" and not p.with_suffix(".idx").exists()):
                doomed.append(p)
    for p in doomed:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(str(p.relative_to(mirror.parent)))
    return removed
