"""Fetch one commit over the network (git://, http(s)://, ssh) into the shallow mirror.

With a previous commit in the mirror the fetch reaches back to that commit's time
(``deepen-since``) instead of depth 1, so one round trip also tells whether history
was rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog
from dulwich.objects import Commit, Tag
from dulwich.pack import UnresolvedDeltas
from dulwich.repo import Repo

from skillsyncd.config import Config
from skillsyncd.errors import SourceError
from skillsyncd.source.failures import Remote
from skillsyncd.source.history import history_rewritten
from skillsyncd.source.local_fetch import missing_object
from skillsyncd.source.mirror import has_commit
from skillsyncd.source.transport import candidate_refs, network, open_client

log = structlog.get_logger(__name__)

SHA_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Wanted:
    """One fetch's target: the commit, the remote it comes from, the blob filter."""

    sha: bytes
    url: str
    remote: Remote
    limit: int | None


def fetch_over_network(cfg: Config, repo: Repo, want: Wanted, previous: str | None) -> bool | None:
    """Fetch ``want.sha`` into ``repo``; whether history was rewritten (None: unknown)."""
    since: str | None = None
    old = repo[previous.encode()] if previous and has_commit(repo, previous.encode()) else None
    if isinstance(old, Commit):
        since = str(old.commit_time - 1)
    try:
        _fetch_into(cfg, repo, want, depth=None if since else 1, since=since)
    except SourceError:
        if since is None:
            raise
        # e.g. clock skew: nothing newer than the previous commit's time
        since = None
        _fetch_into(cfg, repo, want, depth=1)
    target = repo[want.sha]
    if isinstance(target, Tag):
        target = repo[target.object[1]]
    if not isinstance(target, Commit):
        return None
    return history_rewritten(repo, target, previous, deepened=since is not None)


def _fetch_into(cfg: Config, repo: Repo, want: Wanted, *, depth: int | None = None,
                since: str | None = None) -> None:
    """One fetch of ``want.sha``. With a ``limit``, servers that offer the protocol v2
    ``filter`` feature (GitHub, git with uploadpack.allowFilter) leave out every
    blob of at least ``limit`` bytes, so a huge file never reaches dulwich, which
    inflates each object of the pack whole while indexing it. Other servers send
    everything, as if no filter had been asked for (dulwich logs a warning).

    A thin pack may send a file that shrank under the limit as a delta against
    its big old version, which the mirror never received (git would fetch that
    base lazily; dulwich raises UnresolvedDeltas). The fetch is then asked again
    for a self-contained pack, where every changed file arrives whole.
    """
    limit = want.limit

    def wants(refs: Mapping[bytes, bytes], depth: int | None = None) -> list[bytes]:
        return [want.sha]

    def once(thin_packs: bool) -> None:
        with network("fetch", want.remote) as deadline:
            client, path = open_client(cfg, want.url, deadline, thin_packs=thin_packs)
            try:
                client.fetch(
                    path,
                    repo,
                    determine_wants=wants,  # type: ignore[arg-type]
                    depth=depth,
                    ref_prefix=None if SHA_RE.match(cfg.ref) else candidate_refs(cfg.ref),
                    shallow_since=since,
                    filter_spec=f"blob:limit={limit}".encode() if limit is not None else None,
                )
            except KeyError as exc:  # a local source whose object store lacks an object
                raise SourceError(missing_object(want.remote.safe_url, exc)) from None

    objects = Path(repo.object_store.path)
    before = set(objects.glob("tmp_pack_*"))
    try:
        once(thin_packs=True)
    except UnresolvedDeltas as exc:
        if limit is None:
            raise
        for leftover in set(objects.glob("tmp_pack_*")) - before:  # the refused pack
            leftover.unlink(missing_ok=True)
        log.info("fetch_again_without_thin_pack", reason=f"a delta base was left out "
                 f"by the fetch filter ({len(exc.shas)} object(s))")
        once(thin_packs=False)
    if not has_commit(repo, want.sha):
        raise SourceError(
            f"fetch {want.remote.safe_url}: the server did not send commit {want.sha.decode()[:12]}"
        )
