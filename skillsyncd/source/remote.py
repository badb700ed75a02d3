"""The git remote: probe one ref, fetch one commit shallowly into the mirror.

dulwich is fully blocking: callers run these methods in a worker thread, and
every network call here is bounded twice, by a per-socket timeout and by an
overall deadline checked as bytes arrive, so a slow or silent server cannot pin
the thread for ever. Both are scoped to the operation (a thread-local deadline);
importing this module changes nothing process-wide.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import structlog
import urllib3
from dulwich.client import (
    GitClient,
    HTTPUnauthorized,
    default_urllib3_manager,
    get_transport_and_path,
)
from dulwich.errors import (
    ApplyDeltaError,
    ChecksumMismatch,
    GitProtocolError,
    HangupException,
    NotGitRepository,
    ObjectFormatException,
    ObjectMissing,
)
from dulwich.objects import Commit, ObjectID, Tag
from dulwich.pack import UnresolvedDeltas
from dulwich.refs import Ref
from dulwich.repo import Repo

from skillsyncd.config import Config
from skillsyncd.errors import RefNotFound, SourceError
from skillsyncd.log import register_secret
from skillsyncd.model import Severity
from skillsyncd.source import mirror
from skillsyncd.validation.rules import Policy

log = structlog.get_logger(__name__)

_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_RECENT_BLOBS = 8  # blob_reader keeps at most this many blobs of at most
_RECENT_BLOB_BYTES = 256 * 1024  # this size each (2 MiB in all)

# Under refs/heads/ because dulwich offers only heads as "have"s when it fetches: a
# ref elsewhere would make every incremental fetch download the whole tree again.
FETCHED_REF = Ref(b"refs/heads/skillsyncd-fetched")

# The blob:limit the mirror was fetched with, one decimal line. Every blob the mirror
# lacks is at least this large (see Source.fetch); no file: the mirror lacks none.
BLOB_LIMIT_FILE = "skillsyncd-blob-limit"


def blob_limit(cfg: Config) -> int | None:
    """The ``blob:limit`` for fetches: only blobs that ``size.file`` refuses anyway.

    git's filter leaves out blobs of at least ``limit`` bytes, so ``max_file_bytes + 1``
    keeps every file the rules can accept. None (no filter) when ``size.file`` is not
    an error under the configured policy: a skill that then goes live with an oversized
    file needs its bytes.
    """
    policy = Policy.from_config(cfg.severity, cfg.strict)
    if policy.severity("size.file") is not Severity.ERROR:
        return None
    return cfg.max_file_bytes + 1


def mirror_blob_limit(mirror_dir: Path) -> int | None:
    """The limit recorded for a mirror; None when it holds every blob it has a tree for."""
    try:
        return int((mirror_dir / BLOB_LIMIT_FILE).read_text().strip())
    except FileNotFoundError:
        return None
    except ValueError:
        return 0  # unreadable: assume the worst, any blob may be missing


def limit_grew(recorded: int | None, wanted: int | None) -> bool:
    """Whether the mirror may lack a blob that a fetch with ``wanted`` would keep."""
    if recorded is None:
        return False
    return wanted is None or wanted > recorded


def redact_url(url: str) -> str:
    """The URL without any user:password part (safe to log and to record)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


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


class _Deadline:
    """The overall budget of one network operation, enforced two ways.

    dulwich reports activity as bytes arrive, and each report checks the clock.
    That alone cannot stop a server that trickles one pkt-line a byte at a time
    (each read succeeds inside the socket timeout), so a watchdog also shuts down
    every socket this thread connected during the operation once the budget is
    spent; the blocked read then fails at once. One shared watchdog thread serves
    every deadline: starting a timer thread per operation cost about 5 ms of a
    60 ms no-change poll on a loaded 2-core box.
    """

    def __init__(self, seconds: float, socket_timeout: float | None = None) -> None:
        self.seconds = seconds
        self.socket_timeout = socket_timeout
        self.expires = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def __call__(self, _nbytes: int = 0, _direction: str = "") -> None:
        if self.expired or time.monotonic() > self.expires:
            raise TimeoutError(f"network operation exceeded {self.seconds:.0f}s overall")

    def __enter__(self) -> _Deadline:
        _install_audit_hook()
        _active.deadline = self
        _watchdog.arm(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _watchdog.disarm(self)
        _active.deadline = None
        with self._lock:
            self._sockets.clear()

    def watch(self, sock: socket.socket) -> None:
        # dulwich's git:// client sets no timeout of its own: the operation's applies.
        if self.socket_timeout is not None and sock.gettimeout() is None:
            with contextlib.suppress(OSError):
                sock.settimeout(self.socket_timeout)
        with self._lock:
            self._sockets.append(sock)

    def _expire(self) -> None:
        self.expired = True
        with self._lock:
            doomed = list(self._sockets)
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread that expires armed deadlines; started at the first operation."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: set[_Deadline] = set()
        self._pid: int | None = None

    def arm(self, deadline: _Deadline) -> None:
        with self._cond:
            self._armed.add(deadline)
            if self._pid != os.getpid():  # first use, or a forked child without the thread
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="skillsyncd-deadline", daemon=True).start()
            self._cond.notify()

    def disarm(self, deadline: _Deadline) -> None:
        with self._cond:
            self._armed.discard(deadline)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [d for d in self._armed if d.expires <= now]
                self._armed.difference_update(due)
                nxt = min((d.expires for d in self._armed), default=None)
                if not due:
                    self._cond.wait(None if nxt is None else nxt - now)
            for deadline in due:
                deadline._expire()


_watchdog = _Watchdog()


class _Active(threading.local):
    deadline: _Deadline | None = None


_active = _Active()


def _on_audit(event: str, args: tuple[Any, ...]) -> None:
    """Hand every socket a network operation connects to that operation's deadline."""
    if event == "socket.connect":
        deadline = _active.deadline
        if deadline is not None and isinstance(args[0], socket.socket):
            deadline.watch(args[0])


_hook_lock = threading.Lock()
_hook_installed = False


def _install_audit_hook() -> None:
    """Install :func:`_on_audit` once, at the first network operation (never on import).

    An audit hook cannot be removed; it does nothing outside an operation's deadline.
    """
    global _hook_installed
    with _hook_lock:
        if not _hook_installed:
            sys.addaudithook(_on_audit)
            _hook_installed = True


class Source:
    """One configured remote and ref, and the local shallow mirror."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.url = cfg.require_repo()
        self.safe_url = redact_url(self.url)
        self.mirror_dir = cfg.mirror_dir

    # --- connection -----------------------------------------------------------

    def _client(self, deadline: _Deadline, thin_packs: bool = True) -> tuple[GitClient, str]:
        cfg = self.cfg
        url = self.url
        token = cfg.token.get() if cfg.token else None
        register_secret(token)
        parts = urlsplit(url)
        if parts.password:
            register_secret(parts.password)
        kwargs: dict[str, Any] = {"report_activity": deadline, "thin_packs": thin_packs}
        if parts.scheme in {"http", "https"}:
            timeout = urllib3.Timeout(connect=cfg.network_timeout, read=cfg.network_timeout)
            retries = urllib3.Retry(total=1, connect=1, read=0, redirect=3, status=0)
            kwargs["pool_manager"] = default_urllib3_manager(
                None,
                base_url=url,
                timeout=timeout,  # type: ignore[arg-type]
                pool_manager_cls=functools.partial(urllib3.PoolManager, retries=retries),  # type: ignore[arg-type]
                proxy_manager_cls=functools.partial(urllib3.ProxyManager, retries=retries),  # type: ignore[arg-type]
            )
            if token:
                kwargs["username"] = cfg.username
                kwargs["password"] = token
        elif _is_ssh(url):
            # System ssh, never prompting, with its own connect and keep-alive bounds.
            t = max(1, int(cfg.network_timeout))
            kwargs["ssh_command"] = cfg.ssh_command or (
                f"ssh -o BatchMode=yes -o ConnectTimeout={t} "
                f"-o ServerAliveInterval={max(1, t // 3)} -o ServerAliveCountMax=3"
            )
        try:
            return get_transport_and_path(url, **kwargs)
        except ValueError as exc:
            raise SourceError(f"unsupported repository URL {self.safe_url}: {exc}") from exc

    @contextlib.contextmanager
    def _network(self, what: str) -> Iterator[_Deadline]:
        """Map every transport failure to a SourceError with an actionable message."""
        try:
            with _Deadline(self.cfg.network_timeout * 4, self.cfg.network_timeout) as deadline:
                try:
                    yield deadline
                except Exception:
                    if deadline.expired:  # the watchdog cut the connection
                        raise TimeoutError(
                            f"network operation exceeded {deadline.seconds:.0f}s overall"
                        ) from None
                    raise
        except HTTPUnauthorized as exc:
            raise SourceError(
                f"{what} {self.safe_url}: authentication refused (401); "
                "check GITHUB_TOKEN/SKILLSYNC_TOKEN and that it can read the repository"
            ) from exc
        except TimeoutError as exc:
            raise SourceError(f"{what} {self.safe_url}: timed out ({exc})") from exc
        except NotGitRepository as exc:
            raise SourceError(
                f"{what} {self.safe_url}: no repository there ({_one_line(exc)}); "
                "check SKILLSYNC_REPO, and for a private repository that the token can read it"
            ) from exc
        except (GitProtocolError, HangupException) as exc:
            raise SourceError(f"{what} {self.safe_url}: {_one_line(exc)}") from exc
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise SourceError(f"{what} {self.safe_url}: {_one_line(exc)}") from exc

    # --- probe ----------------------------------------------------------------

    def candidate_refs(self) -> list[bytes]:
        ref = self.cfg.ref
        if ref.startswith("refs/"):
            return [ref.encode()]
        return [f"refs/heads/{ref}".encode(), f"refs/tags/{ref}".encode()]

    def probe(self) -> str:
        """The commit the configured ref points at now (one ls-remote round trip)."""
        if _SHA_RE.match(self.cfg.ref):
            return self.cfg.ref
        local = _local_path(self.url)
        with self._network("ls-remote") as deadline:
            if local is not None:
                refs = _local_refs(local, self.candidate_refs())
            else:
                client, path = self._client(deadline)
                result = client.get_refs(path.encode(), ref_prefix=self.candidate_refs())
                refs = {bytes(k): v for k, v in result.refs.items()}
        return _pick_ref(refs, self.candidate_refs(), self.cfg.ref, self.safe_url)

    # --- fetch ----------------------------------------------------------------

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

    def _drop_mirror_if_limit_grew(self, wanted: int | None) -> None:
        """A blob the filter left out stays out of the mirror for good: incremental
        fetches only send what is new. So when ``max_file_bytes`` grows, or
        ``size.file`` stops being an error, the mirror is fetched afresh (one shallow
        fetch; history_rewritten is then unknown for that sync)."""
        recorded = mirror_blob_limit(self.mirror_dir)
        if limit_grew(recorded, wanted):
            log.warning("mirror_reset", reason="the blob size limit grew since the mirror was "
                        "fetched", previous_limit=recorded, limit=wanted)
            self.reset_mirror()

    def _record_limit(self, wanted: int | None) -> None:
        """Written before the fetch, so a fetch killed half-way never leaves a missing
        blob the record does not explain. Lowering the limit keeps the record true:
        whatever is missing is larger than the old limit, hence than the new one."""
        if wanted is not None and mirror_blob_limit(self.mirror_dir) != wanted:
            path = self.mirror_dir / BLOB_LIMIT_FILE
            tmp = path.with_suffix(".tmp")
            tmp.write_text(f"{wanted}\n")
            tmp.replace(path)

    def fetch(self, commit: str, previous: str | None = None) -> FetchResult:
        """Make ``commit`` and its tree present in the mirror; heal a damaged mirror once.

        Damaged pack data (mangled in transit, or the mirror's own packs damaged on
        disk) fails in dulwich's decoder, not in the transport. The mirror is a
        cache: drop it and fetch afresh once, so local damage heals within this sync
        and transit damage fails as a plain, retryable fetch error.
        """
        try:
            return self._fetch_once(commit, previous)
        except _CORRUPT_PACK as exc:
            log.warning("mirror_reset", reason=f"{type(exc).__name__}: {exc}")
            self.reset_mirror()
            try:
                return self._fetch_once(commit, previous=None)
            except _CORRUPT_PACK as again:
                raise SourceError(f"fetch {self.safe_url}: received a corrupt pack "
                                  f"({type(again).__name__}: {again}); will retry") from again

    def _fetch_once(self, commit: str, previous: str | None = None) -> FetchResult:
        """One attempt: single ref, shallow, then keep the mirror bounded.

        Over the network, with a previous commit in the mirror the fetch reaches
        back to that commit's time (``deepen-since``) instead of depth 1, so one
        round trip also tells whether history was rewritten. A local source is
        read directly (see :mod:`skillsyncd.source.mirror`).
        """
        start = time.monotonic()
        wanted = blob_limit(self.cfg)
        self._drop_mirror_if_limit_grew(wanted)
        repo = self.open_mirror()
        _check_packs(repo)
        self._record_limit(wanted)
        sha = commit.encode()
        before = mirror.complete_packs(Path(repo.object_store.path))
        fetched = False
        rewritten: bool | None = None
        try:
            if not _has_commit(repo, sha, with_tree=True):
                local = _local_path(self.url)
                if local is not None:
                    rewritten = self._copy_local(local, repo, sha, previous, wanted)
                else:
                    rewritten = self._fetch_remote(repo, sha, previous, wanted)
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

    def _fetch_remote(self, repo: Repo, sha: bytes, previous: str | None,
                      limit: int | None) -> bool | None:
        """Fetch over the network (git://, http(s)://, ssh); whether history was rewritten."""
        since: str | None = None
        old = repo[previous.encode()] if previous and _has_commit(repo, previous.encode()) \
            else None
        if isinstance(old, Commit):
            since = str(old.commit_time - 1)
        try:
            self._fetch_into(repo, sha, depth=None if since else 1, since=since, limit=limit)
        except SourceError:
            if since is None:
                raise
            # e.g. clock skew: nothing newer than the previous commit's time
            since = None
            self._fetch_into(repo, sha, depth=1, limit=limit)
        target = repo[sha]
        if isinstance(target, Tag):
            target = repo[target.object[1]]
        if not isinstance(target, Commit):
            return None
        return _history_rewritten(repo, target, previous, deepened=since is not None)

    def _copy_local(self, path: str, repo: Repo, sha: bytes, previous: str | None,
                    limit: int | None) -> bool | None:
        """Copy one commit from a repository on this machine: only what the mirror lacks.

        dulwich's own local fetch sends the whole tree into a shallow mirror every
        time; reading the source directly costs what changed. History is checked in
        the source itself, which holds all of it.
        """
        with self._network("fetch"):
            try:
                with contextlib.closing(Repo(path)) as src:
                    mirror.copy_commit(src, repo, ObjectID(sha), limit)
                    head = src[ObjectID(sha)]
                    while isinstance(head, Tag):
                        head = src[head.object[1]]
                    if isinstance(head, Commit):
                        mirror.mark_shallow(repo, [head.id])
                        return _ancestry_rewritten(src, head, previous)
                    return None
            except KeyError as exc:  # the source's object store lacks an object
                raise SourceError(_missing_object(self.safe_url, exc)) from None

    def _fetch_into(self, repo: Repo, sha: bytes, *, depth: int | None = None,
                    since: str | None = None, limit: int | None = None) -> None:
        """One fetch of ``sha``. With a ``limit``, servers that offer the protocol v2
        ``filter`` feature (GitHub, git with uploadpack.allowFilter) leave out every
        blob of at least ``limit`` bytes, so a huge file never reaches dulwich, which
        inflates each object of the pack whole while indexing it. Other servers send
        everything, as if no filter had been asked for (dulwich logs a warning).

        A thin pack may send a file that shrank under the limit as a delta against
        its big old version, which the mirror never received (git would fetch that
        base lazily; dulwich raises UnresolvedDeltas). The fetch is then asked again
        for a self-contained pack, where every changed file arrives whole.
        """

        def wants(refs: Mapping[bytes, bytes], depth: int | None = None) -> list[bytes]:
            return [sha]

        def once(thin_packs: bool) -> None:
            with self._network("fetch") as deadline:
                client, path = self._client(deadline, thin_packs=thin_packs)
                try:
                    client.fetch(
                        path,
                        repo,
                        determine_wants=wants,  # type: ignore[arg-type]
                        depth=depth,
                        ref_prefix=self.candidate_refs() if not _SHA_RE.match(self.cfg.ref) else None,
                        shallow_since=since,
                        filter_spec=f"blob:limit={limit}".encode() if limit is not None else None,
                    )
                except KeyError as exc:  # a local source whose object store lacks an object
                    raise SourceError(_missing_object(self.safe_url, exc)) from None

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
        if not _has_commit(repo, sha):
            raise SourceError(
                f"fetch {self.safe_url}: the server did not send commit {sha.decode()[:12]}"
            )

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

    # --- reading --------------------------------------------------------------

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


def _history_rewritten(repo: Repo, new: Commit, previous: str | None, deepened: bool) -> bool | None:
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
    while todo and len(seen) < 10_000:
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


def _is_ssh(url: str) -> bool:
    scheme = urlsplit(url).scheme
    if scheme in {"ssh", "git+ssh", "ssh+git"}:
        return True
    # scp-like syntax: user@host:path (but not a local path or a Windows drive)
    return not scheme and ":" in url and not url.startswith(("/", ".")) and "@" in url.split(":")[0]


def _missing_object(url: str, exc: KeyError) -> str:
    key = exc.args[0] if exc.args else b""
    name = key.decode("ascii", "replace") if isinstance(key, bytes) else str(key)
    return (f"fetch {url}: the source repository lacks git object {name}; it is damaged or was "
            "pushed incompletely: run `git fsck` there and push again")


def _has_commit(repo: Repo, sha: bytes, with_tree: bool = False) -> bool:
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
        # trusted for its trees must not be half read; fetch() resets it
        raise ObjectMissing(sha) from None


def _check_packs(repo: Repo) -> None:
    """Each pack's length and trailer against its index, before the mirror's trees are
    trusted: a truncated or overwritten pack would otherwise pass for present (its index
    is intact) and fail only when staging reads it. Reads two small spans per pack."""
    for pack in repo.object_store.packs:
        try:
            pack.check_length_and_checksum()
        except AssertionError as exc:  # dulwich's length check
            raise ObjectFormatException(f"pack {pack.name().decode()}: {exc}") from None


def _local_path(url: str) -> str | None:
    """The filesystem path of a local source (a path or ``file://`` URL), else None."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return unquote(parts.path)
    if parts.scheme or _is_ssh(url):
        return None
    return url


def _local_refs(path: str, names: list[bytes]) -> dict[bytes, bytes | None]:
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


def _ancestry_rewritten(src: Repo, new: Commit, previous: str | None) -> bool | None:
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


def _pick_ref(
    refs: Mapping[bytes, bytes | None], candidates: list[bytes], ref: str, url: str
) -> str:
    for name in candidates:
        peeled = refs.get(name + b"^{}")
        value = peeled or refs.get(name)
        if value:
            return value.decode()
    raise RefNotFound(
        f"ref {ref!r} not found on {url}; check SKILLSYNC_REF (branch, tag or full commit SHA)"
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
