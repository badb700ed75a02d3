"""Fetch from a repository on this machine (a path or ``file://`` URL): copy only what the mirror lacks.

dulwich's local client answers a fetch into a shallow repository with every
object of the wanted commit, whatever the mirror has (its object finder drops
the "have"s when the receiver is shallow), and it ignores ``blob:limit``. So
for a local source the mirror copies the commit's tree itself, skipping every
subtree and blob it already holds and every blob the filter would leave out.
History is checked in the source itself, which holds all of it.
"""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Iterator

from dulwich.object_store import BaseObjectStore
from dulwich.objects import Commit, ObjectID, Tag, Tree
from dulwich.pack import generate_unpacked_objects
from dulwich.refs import Ref
from dulwich.repo import Repo

from skillsyncd.errors import SourceError
from skillsyncd.source import mirror
from skillsyncd.source.history import ancestry_rewritten
from skillsyncd.source.snapshot import object_size

_MODE_GITLINK = 0o160000


def local_refs(path: str, names: list[bytes]) -> dict[bytes, bytes | None]:
    """The candidate refs of a local repository and their peeled values: only those
    are read (dulwich's local ls-remote reads every ref and every symref)."""
    refs: dict[bytes, bytes | None] = {}
    with contextlib.closing(Repo(path)) as repo:
        for name in names:
            try:
                refs[name] = repo.refs[Ref(name)]
                refs[name + b"^{}"] = repo.get_peeled(Ref(name))
            except KeyError:
                continue
    return refs


def copy_local(path: str, repo: Repo, sha: bytes, previous: str | None, limit: int | None,
               safe_url: str) -> bool | None:
    """Copy one commit from the repository at ``path`` into the mirror ``repo``; whether
    history was rewritten since ``previous`` (None: unknown)."""
    try:
        with contextlib.closing(Repo(path)) as src:
            copy_commit(src, repo, ObjectID(sha), limit)
            head = src[ObjectID(sha)]
            while isinstance(head, Tag):
                head = src[head.object[1]]
            if isinstance(head, Commit):
                mirror.mark_shallow(repo, [head.id])
                return ancestry_rewritten(src, head, previous)
            return None
    except KeyError as exc:  # the source's object store lacks an object
        raise SourceError(missing_object(safe_url, exc)) from None


def missing_object(url: str, exc: KeyError) -> str:
    key = exc.args[0] if exc.args else b""
    name = key.decode("ascii", "replace") if isinstance(key, bytes) else str(key)
    return (f"fetch {url}: the source repository lacks git object {name}; it is damaged or was "
            "pushed incompletely: run `git fsck` there and push again")


def copy_commit(source: Repo, mirror_repo: Repo, sha: ObjectID, limit: int | None) -> int:
    """Copy the commit (or tag) ``sha`` and what the mirror lacks of its tree; one pack.

    A tree the mirror holds is complete there (every fetch and every prune keeps
    whole trees), so its subtree is skipped unread. Blobs of at least ``limit``
    bytes are left out, as a server honouring ``blob:limit`` would. Returns the
    number of objects written.
    """
    wanted = list(_missing_of(source.object_store, mirror_repo.object_store, sha, limit))
    if wanted:
        mirror_repo.object_store.add_pack_data(
            len(wanted),
            generate_unpacked_objects(source.object_store, [(oid, None) for oid in wanted]),
        )
    return len(wanted)


def _missing_of(src: BaseObjectStore, have: BaseObjectStore, sha: ObjectID,
                limit: int | None) -> Iterator[ObjectID]:
    obj = src[sha]
    while isinstance(obj, Tag):
        yield obj.id
        obj = src[obj.object[1]]
    if not isinstance(obj, Commit):
        yield obj.id
        return
    if obj.id not in have:
        yield obj.id
    seen: set[ObjectID] = set()
    todo = [obj.tree]
    while todo:
        tree_id = todo.pop()
        if tree_id in seen or tree_id in have:
            continue
        seen.add(tree_id)
        yield tree_id
        tree = src[tree_id]
        if not isinstance(tree, Tree):
            raise KeyError(tree_id)
        for entry in tree.iteritems():
            mode, oid = entry.mode, entry.sha
            if mode is None or oid is None or mode == _MODE_GITLINK or oid in seen:
                continue
            if stat.S_ISDIR(mode):
                todo.append(oid)
            elif oid not in have and not _too_big(src, oid, limit):
                seen.add(oid)
                yield oid


def _too_big(store: BaseObjectStore, oid: ObjectID, limit: int | None) -> bool:
    if limit is None:
        return False
    size = object_size(store, oid.decode())
    return size is not None and size >= limit
