"""The source: one configured remote and ref, and the local shallow mirror it is fetched into.

:class:`Source` is what a sync calls: probe the ref, fetch one commit, read blobs.
How each part is done lives beside it: reaching the remote
(:mod:`~skillsyncd.source.transport`, under :mod:`~skillsyncd.source.deadline`),
fetching over the network (:mod:`~skillsyncd.source.network_fetch`) or from a local
path (:mod:`~skillsyncd.source.local_fetch`), the blob filter
(:mod:`~skillsyncd.source.blob_limit`), and the mirror's objects
(:mod:`~skillsyncd.source.mirror`).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog
from dulwich.errors import (
    ApplyDeltaError,
    ChecksumMismatch,
    NotGitRepository,
    ObjectFormatException,
    ObjectMissing,
)
from dulwich.objects import Commit, ObjectID, Tag
from dulwich.refs import Ref
from dulwich.repo import Repo

from skillsyncd.config import NO_SECRET, Config
from skillsyncd.errors import RefNotFound, SourceError
from skillsyncd.source import mirror
from skillsyncd.source.blob_limit import blob_limit, drop_mirror_if_limit_grew, record_limit
from skillsyncd.source.channels import parse_channel, pick_tag, tag_commits, tag_moved
from skillsyncd.source.failures import Remote
from skillsyncd.source.local_fetch import copy_local, local_refs, local_tags
from skillsyncd.source.network_fetch import SHA_RE, Wanted, fetch_over_network
from skillsyncd.source.transport import candidate_refs, local_path, network, open_client, redact_url

log = structlog.get_logger(__name__)

_RECENT_BLOBS = 8  # blob_reader keeps at most this many blobs of at most
_RECENT_BLOB_BYTES = 256 * 1024  # this size each (2 MiB in all)

# Under refs/heads/ because dulwich offers only heads as "have"s when it fetches: a
# ref elsewhere would make every incremental fetch download the whole tree again.
FETCHED_REF = Ref(b"refs/heads/skillsyncd-fetched")


@dataclass(frozen=True)
class FetchResult:
    commit: str
    tree: str
    fetched: bool  # False when the commit was already in the mirror
    history_rewritten: bool | None  # None: unknown (no previous commit, or not decidable)
    duration: float
    objects: int = 0  # objects this fetch added to the mirror (thin-pack bases included)
    bytes: int = 0  # bytes of the packs (and indexes) this fetch added to the mirror


# What dulwich raises when pack bytes are damaged (see tests/test_faults.py).
_CORRUPT_PACK = (zlib.error, ChecksumMismatch, ApplyDeltaError, ObjectFormatException,
                 ObjectMissing)


class Source:
    """One configured remote and ref, and the local shallow mirror."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.url = cfg.require_repo()
        self.safe_url = redact_url(self.url)
        self.remote = Remote(self.safe_url, token_set=cfg.token != NO_SECRET or bool(cfg.github_app_id),
                             network_timeout=cfg.network_timeout, github_app=bool(cfg.github_app_id))
        self.mirror_dir = cfg.mirror_dir
        self.tag: str | None = None  # a channel's tag the last probe picked
        self._tags: dict[str, str] = {}  # the tags that probe listed -> their commits

    def probe(self) -> str:
        """The commit the configured ref points at now (one ls-remote round trip); for a
        channel, the newest tag in its range (named by :attr:`tag` afterwards)."""
        if SHA_RE.match(self.cfg.ref):
            return self.cfg.ref
        names = candidate_refs(self.cfg.ref)
        channel = parse_channel(self.cfg.ref)
        local = local_path(self.url)
        with network("ls-remote", self.remote) as deadline:
            if local is not None:
                refs = local_tags(local) if channel else local_refs(local, names)
            else:
                client, path = open_client(self.cfg, self.url, deadline)
                result = client.get_refs(path.encode(), ref_prefix=names)
                refs = {bytes(k): v for k, v in result.refs.items()}
        if channel is None:
            return _pick_ref(refs, names, self.cfg.ref, self.safe_url)
        self._tags = tag_commits(refs)
        pick = pick_tag(channel, self._tags, self.safe_url)
        self.tag = pick.name
        log.info("tag_picked", tag=pick.name, version=pick.version, channel=self.cfg.ref)
        return pick.commit

    def open_mirror(self) -> Repo:
        """Open the mirror, re-creating it when missing or unreadable."""
        if self.mirror_dir.exists():
            try:
                repo = Repo(str(self.mirror_dir))
                repo.object_store  # noqa: B018 - touch it so a broken store fails here
                return repo
            except (NotGitRepository, OSError, ValueError, KeyError) as exc:
                log.warning("mirror_unreadable", path=str(self.mirror_dir), error=str(exc))
                shutil.rmtree(self.mirror_dir, ignore_errors=True)
        self.mirror_dir.parent.mkdir(parents=True, exist_ok=True)
        return Repo.init_bare(str(self.mirror_dir), mkdir=True)

    def reset_mirror(self) -> None:
        shutil.rmtree(self.mirror_dir, ignore_errors=True)

    def fetch(self, commit: str, previous: str | None = None) -> FetchResult:
        """Make ``commit`` and its tree present in the mirror; heal a damaged mirror once.

        Damaged pack data (mangled in transit, or the mirror's own packs damaged on
        disk) fails in dulwich's decoder, not in the transport. The mirror is a
        cache: drop it and fetch afresh once, so local damage heals within this sync
        and transit damage fails as a plain, retryable fetch error.
        """
        try:
            result = self._fetch_once(commit, previous)
        except _CORRUPT_PACK as exc:
            log.warning("mirror_reset", reason=f"{type(exc).__name__}: {exc}")
            self.reset_mirror()
            try:
                result = self._fetch_once(commit, previous=None)
            except _CORRUPT_PACK as again:
                raise SourceError(f"fetch {self.safe_url}: received a corrupt pack "
                                  f"({type(again).__name__}: {again}); will retry") from again
        if (self.tag is not None and commit != previous and result.history_rewritten is not False
                and tag_moved(self._tags, previous)):
            # The deployed commit's tag moved or was deleted, and the new commit is not known to
            # descend from it (a fallback to an older tag is often not decidable in a shallow
            # mirror): a force-push.
            return dataclasses.replace(result, history_rewritten=True)
        return result

    def _fetch_once(self, commit: str, previous: str | None = None) -> FetchResult:
        """One attempt: single ref, shallow, then keep the mirror bounded."""
        start = time.monotonic()
        wanted = blob_limit(self.cfg)
        drop_mirror_if_limit_grew(self.mirror_dir, wanted)
        repo = self.open_mirror()
        mirror.check_packs(repo)
        record_limit(self.mirror_dir, wanted)
        sha = commit.encode()
        before = mirror.complete_packs(Path(repo.object_store.path))
        fetched = False
        rewritten: bool | None = None
        try:
            if not mirror.has_commit(repo, sha, with_tree=True):
                rewritten = self._copy(repo, Wanted(sha, self.url, self.remote, wanted), previous)
                fetched = True
            target = repo[sha]
            if isinstance(target, Tag):
                sha = target.object[1]
                target = repo[sha]
            if not isinstance(target, Commit):
                raise SourceError(f"{commit} is not a commit")
            repo.refs[FETCHED_REF] = ObjectID(sha)
            added = mirror.added_since(repo.object_store, before)
            self._bound_packs(repo, ObjectID(sha), ObjectID(previous.encode()) if previous else None)
            return FetchResult(
                commit=sha.decode(),
                tree=target.tree.decode(),
                fetched=fetched,
                history_rewritten=rewritten if fetched else None,
                duration=time.monotonic() - start,
                objects=added.objects,
                bytes=added.bytes,
            )
        finally:
            repo.close()

    def _copy(self, repo: Repo, want: Wanted, previous: str | None) -> bool | None:
        """Bring the commit into the mirror: a local source is read directly (see
        :mod:`skillsyncd.source.local_fetch`), any other one is fetched."""
        local = local_path(self.url)
        if local is None:
            return fetch_over_network(self.cfg, repo, want, previous)
        with network("fetch", self.remote):
            return copy_local(local, repo, want.sha, previous, want.limit, self.safe_url)

    def _bound_packs(self, repo: Repo, head: ObjectID, previous: ObjectID | None) -> None:
        """Keep the mirror's size and pack count bounded.

        Grown well past its size after the last prune: rewrite it as one pack of the
        head and the previous commit (a full read of the head). Only too many packs:
        merge the small ones, which costs what the fetches since added.
        """
        mirror_dir = Path(repo.controldir())
        now = mirror.usage(Path(repo.object_store.path))
        baseline = mirror.pruned_bytes(mirror_dir)
        if mirror.needs_prune(now, baseline):
            after = mirror.prune(repo, head, previous)
            log.info("mirror_pruned", packs=now.packs, loose=now.loose, bytes=now.bytes,
                     bytes_after=after.bytes)
        elif mirror.needs_merge(now, self.cfg.max_packs):
            after = mirror.merge_small_packs(repo)
            log.info("mirror_packs_merged", packs=now.packs, packs_after=after.packs)
        elif baseline is None:
            mirror.record_baseline(mirror_dir, now.bytes)

    def blob_reader(self, repo: Repo) -> Callable[[str], bytes]:
        """Blob bytes by id. Validation reads a SKILL.md twice in a row (rules, then
        metadata), so the last few small blobs are kept rather than inflated again."""
        recent: dict[str, bytes] = {}

        def read(sha: str) -> bytes:
            data = recent.get(sha)
            if data is not None:
                return data
            try:
                data = repo.object_store[ObjectID(sha.encode())].as_raw_string()
            except KeyError:
                # Only a blob the fetch filter left out can be missing, and size.file
                # holds back its skill before any read: reaching here is a caller bug.
                raise SourceError(
                    f"blob {sha[:12]} is not in the mirror: the fetch filter left it out "
                    "as larger than max_file_bytes, so it must not be read"
                ) from None
            if len(data) <= _RECENT_BLOB_BYTES:
                if len(recent) >= _RECENT_BLOBS:
                    del recent[next(iter(recent))]
                recent[sha] = data
            return data

        return read


def _pick_ref(
    refs: Mapping[bytes, bytes | None], candidates: list[bytes], ref: str, url: str
) -> str:
    for name in candidates:
        peeled = refs.get(name + b"^{}")
        value = peeled or refs.get(name)
        if value:
            return value.decode()
    raise RefNotFound(
        f"ref {ref!r} not found on {url}; check SKILLSYNC_REF (branch, tag, full commit SHA or semver:RANGE)"
    )
