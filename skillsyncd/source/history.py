"""Whether a fetched commit rewrote history: is the previously deployed commit one of its ancestors?

Pure reads of an object store: the shallow mirror after a ``deepen-since`` fetch,
or a local source, which holds all of its history.
"""

from __future__ import annotations

from dataclasses import dataclass

from dulwich.objects import Commit, ObjectID
from dulwich.repo import Repo

_MAX_WALK = 10_000  # commits looked at before the answer is "unknown"


def history_rewritten(repo: Repo, new: Commit, previous: str | None, deepened: bool) -> bool | None:
    """Whether ``previous`` is no ancestor of ``new`` (a force-push); None when unknown.

    After a deepen-since fetch every commit newer than ``previous`` is in the
    mirror, so a walk that reaches the shallow edge without meeting it means
    the old commit is not in the new history.
    """
    if not previous or previous == new.id.decode():
        return None
    prev = previous.encode()
    if prev in new.parents:
        return False
    if not deepened:
        return None
    walk = _walk_back(repo, new, prev)  # a missing commit is the mirror's shallow edge
    if walk.met:
        return False
    return True if walk.finished else None


def ancestry_rewritten(src: Repo, new: Commit, previous: str | None) -> bool | None:
    """Whether ``previous`` is no ancestor of ``new`` in a full local repository.

    The walk stops at commits older than ``previous`` (as ``deepen-since`` does over
    the network) and after 10,000 commits (then: unknown).
    """
    if not previous or previous == new.id.decode():
        return None
    prev = ObjectID(previous.encode())
    if prev in new.parents:
        return False
    try:
        old = src[prev]
    except KeyError:
        return True if not src.get_shallow() else None
    since = old.commit_time - 1 if isinstance(old, Commit) else 0
    walk = _walk_back(src, new, prev, since)
    if walk.met:
        return False
    return True if walk.finished and not walk.missing else None  # missing: a shallow source


@dataclass(frozen=True)
class _Walk:
    met: bool  # the commit looked for was reached
    finished: bool  # every commit to look at was looked at (not cut off at 10,000)
    missing: bool  # some parent is not in the repository (a shallow edge)


def _walk_back(repo: Repo, new: Commit, prev: bytes, since: int | None = None) -> _Walk:
    """Walk ``new``'s ancestry looking for ``prev``, at most 10,000 commits; with ``since``,
    not past commits older than that (as ``deepen-since`` does over the network)."""
    seen: set[bytes] = set()
    todo = [new.id]
    missing = False
    while todo and len(seen) < _MAX_WALK:
        oid = todo.pop()
        if oid in seen:
            continue
        seen.add(oid)
        if oid == prev:
            return _Walk(met=True, finished=False, missing=missing)
        try:
            commit = repo[ObjectID(oid)]
        except KeyError:
            missing = True
            continue
        if isinstance(commit, Commit) and (since is None or commit.commit_time >= since):
            todo.extend(commit.parents)
    return _Walk(met=False, finished=not todo, missing=missing)
