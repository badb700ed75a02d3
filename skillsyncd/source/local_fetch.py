"""Fetch from a repository on this machine (a path or ``file://`` URL): copy only what the mirror lacks.

dulwich's local client answers a fetch into a shallow repository with every
object of the wanted commit, whatever the mirror has (its object finder drops
the "have"s when the receiver is shallow), and it ignores ``blob:limit``. So
for a local source the mirror copies the commit's tree itself, skipping every
subtree and blob it already holds and every blob the filter would leave out.
History is checked in the source itself, which holds all of it. A source that
git repacks while it is read (``git gc --auto`` after a big commit) is read again.
"""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Iterator

import structlog
from dulwich.object_store import BaseObjectStore
from dulwich.objects import Commit, ObjectID, Tag, Tree
from dulwich.pack import PackFileDisappeared, generate_unpacked_objects
from dulwich.refs import Ref
from dulwich.repo import Repo

from skillsyncd.errors import SourceError
from skillsyncd.source import mirror
from skillsyncd.source.channels import TAGS_PREFIX
from skillsyncd.source.history import ancestry_rewritten
from skillsyncd.source.snapshot import object_size

log = structlog.get_logger(__name__)

_MODE_GITLINK = 0o160000
_ATTEMPTS = 4  # reads of a local source that is being repacked
_PAUSE = 0.05  # seconds before the second attempt, doubling
_PAUSE_MAX = 1.0


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


def local_tags(path: str) -> dict[bytes, bytes | None]:
    """Every tag of a local repository and its peeled value (what ls-remote lists of them)."""
    with contextlib.closing(Repo(path)) as repo:
        names = [TAGS_PREFIX + bytes(n) for n in repo.refs.keys(base=Ref(TAGS_PREFIX))]
    return local_refs(path, names)


class _SourceMoved(Exception):
    """An object or pack of the source vanished while it was read: ``git gc`` or ``git
    repack`` ran there (``git gc --auto`` starts by itself after a big commit)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


def copy_local(path: str, repo: Repo, sha: bytes, previous: str | None, limit: int | None,
               safe_url: str) -> bool | None:
    """Copy one commit from the repository at ``path`` into the mirror ``repo``; whether
    history was rewritten since ``previous`` (None: unknown).

    A read the source's own repacking pulls objects from under is tried again on a
    freshly opened repository, at most ``_ATTEMPTS`` times. Each attempt is whole and
    idempotent: what an earlier one copied is in the mirror and not copied again.
    """
    import stamina  # deferred: only fetching a new commit from a local path needs it

    try:
        for attempt in stamina.retry_context(on=_SourceMoved, attempts=_ATTEMPTS, timeout=None,
                                             wait_initial=_PAUSE, wait_max=_PAUSE_MAX,
                                             wait_jitter=_PAUSE):
            with attempt:
                try:
                    return _copy_once(path, repo, sha, previous, limit)
                except _SourceMoved as exc:
                    log.warning("fetch_retried", source=safe_url, attempt=attempt.num,
                                attempts=_ATTEMPTS, reason=f"the source's objects moved while "
                                f"they were read (a git gc or repack there?): {exc}")
                    raise
    except _SourceMoved as exc:
        if isinstance(exc.cause, KeyError):  # missing every time: not a move, damage
            raise SourceError(missing_object(safe_url, exc.cause)) from None
        raise SourceError(
            f"fetch {safe_url}: the source repository's objects kept moving while they were "
            f"read, {_ATTEMPTS} times ({exc}); a git gc or repack runs there: a later sync "
            "tries again") from None
    raise AssertionError("stamina returns or raises")  # pragma: no cover


def _copy_once(path: str, repo: Repo, sha: bytes, previous: str | None,
               limit: int | None) -> bool | None:
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
    except (PackFileDisappeared, FileNotFoundError) as exc:
        raise _SourceMoved(exc) from exc
    except KeyError as exc:  # a loose object packed and removed between two lookups, or damage
        raise _SourceMoved(exc) from exc


def missing_object(url: str, exc: KeyError) -> str:
    key = exc.args[0] if exc.args else b""
    name = key.decode("ascii", "replace") if isinstance(key, bytes) else str(key)
    return (f"fetch {url}: the source repository lacks git object {name}; it is damaged or was "
            "pushed incompletely: run `git fsck` there and push again")


def copy_commit(source: Repo, mirror_repo: Repo, sha: ObjectID, limit: int | None) -> int:
    """Copy the commit (or tag) ``sha`` and what the mirror lacks of its tree; one pack.

    A tree the mirror holds is complete there (every fetch and every prune keeps
    whole trees), so its subtree is skipped unread. Blobs of at least ``limit``
    bytes are left out, as a server honouring ``blob:limit`` would, and no object
    outside the commit is read. Returns the number of objects written.
    """
    wanted = list(_missing_of(source.object_store, mirror_repo.object_store, sha, limit))
    if wanted:
        # Each object is looked up by the pack index and inflated alone. Reusing the
        # source's deltas (dulwich's default) inflates every object of every source
        # pack to find them, a big blob elsewhere in history included.
        mirror_repo.object_store.add_pack_data(
            len(wanted),
            generate_unpacked_objects(source.object_store, [(oid, None) for oid in wanted],
                                      reuse_deltas=False),
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
