"""Replicate the journal to Neo4j: in order, from a persisted cursor, idempotently.

Each event is written in its own transaction keyed by the event id (MERGE), and
the cursor (the last shipped ``seq``) is saved only after the transaction
commits. A crash between the two re-sends one event, which MERGE turns into a
no-op, so the graph never holds a duplicate. The sink runs in its own thread
and never raises into a sync: while Neo4j is away, events wait in the journal.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from skillsyncd.audit.events import (
    Deployed,
    FreezeEnded,
    FreezeStarted,
    Frozen,
    JournalEvent,
    ManualRollback,
    NoChange,
    Rejected,
    RolledBack,
    is_deployment,
)
from skillsyncd.audit.journal import Journal
from skillsyncd.config import Config
from skillsyncd.errors import ConfigError, SkillsyncError
from skillsyncd.fsutil import atomic_write
from skillsyncd.log import redact_text
from skillsyncd.source.transport import redact_url

log = structlog.get_logger(__name__)

CURSOR_FILE = "audit-cursor.json"
SHIP_LOCK_FILE = "audit-ship.lock"
BACKOFF_START = 1.0
BACKOFF_MAX = 60.0
IDLE_WAIT = 30.0  # re-check the journal even without a wake-up (e.g. `audit push` elsewhere)
MERGE_RACE_TRIES = 3  # attempts of one event's transaction that lose a race to another replica


class SinkError(SkillsyncError):
    """Neo4j refused or could not be reached; the events stay in the journal."""


# --- the graph (pure: an event in, Cypher statements and parameters out) --------

SCHEMA = (
    "CREATE CONSTRAINT skillsync_deployment_id IF NOT EXISTS "
    "FOR (d:SkillDeployment) REQUIRE d.id IS UNIQUE",
    "CREATE CONSTRAINT skillsync_skill_name IF NOT EXISTS FOR (s:Skill) REQUIRE s.name IS UNIQUE",
    "CREATE CONSTRAINT skillsync_commit_sha IF NOT EXISTS FOR (c:Commit) REQUIRE c.sha IS UNIQUE",
    "CREATE CONSTRAINT skillsync_replica_id IF NOT EXISTS FOR (r:Replica) REQUIRE r.id IS UNIQUE",
    # A skill version is shared by every replica that deploys it, so two of them can MERGE
    # the same one at once; a plain index (0.2.0's `skillsync_version`) let both create it
    # (tests/test_audit_fleet.py). Neo4j refuses a constraint over an index on the same
    # properties, hence the drop first; without the old index it does nothing.
    "DROP INDEX skillsync_version IF EXISTS",
    "CREATE CONSTRAINT skillsync_version_key IF NOT EXISTS "
    "FOR (v:SkillVersion) REQUIRE (v.name, v.content_sha) IS UNIQUE",
)

_REPLICA_SEEN = """
MERGE (r:Replica {id: $replica})
SET r.last_seen = $timestamp, r.last_seq = $seq, r.last_event = $kind
"""

_REPLICA_UPSTREAM = """
MERGE (r:Replica {id: $replica})
SET r.upstream_commit = $commit
"""

_DEPLOYMENT = """
MERGE (d:SkillDeployment {id: $id})
SET d.timestamp = $timestamp, d.seq = $seq, d.status = $status, d.commit_sha = $commit,
    d.previous_commit = $previous_commit, d.release = $release,
    d.previous_release = $previous_release, d.trigger = $trigger, d.replica = $replica,
    d.skills_count = $skills_count, d.reason = $reason,
    d.history_rewritten = $history_rewritten, d.findings = $findings
"""

_COMMIT = """
MATCH (d:SkillDeployment {id: $id})
MERGE (c:Commit {sha: $commit})
MERGE (d)-[:FROM_COMMIT]->(c)
"""

_VERSIONS = """
MATCH (d:SkillDeployment {id: $id})
UNWIND $skills AS skill
MERGE (s:Skill {name: skill.name})
MERGE (v:SkillVersion {name: skill.name, content_sha: skill.content_sha})
SET v.version = skill.version
MERGE (s)-[:HAS_VERSION]->(v)
MERGE (d)-[rel:DEPLOYED]->(v)
SET rel.change = skill.change
"""

# The deployment that was live on this replica before, found by its release id
# (release ids are unique per replica, not across a fleet).
_REPLACED = """
MATCH (d:SkillDeployment {id: $id})
MATCH (old:SkillDeployment {release: $replaced_release, replica: $replica, status: 'deployed'})
MERGE (d)-[:REPLACED]->(old)
"""

_RESTORED = """
MATCH (d:SkillDeployment {id: $id})
MATCH (back:SkillDeployment {release: $release, replica: $replica, status: 'deployed'})
MERGE (d)-[:RESTORED]->(back)
"""

# An automatic rollback undoes a release that went live and failed its checks;
# the journal has no `deployed` event for it, so it gets a node of its own.
_ATTEMPT = """
MATCH (d:SkillDeployment {id: $id})
MERGE (a:SkillDeployment {id: $attempt})
SET a.timestamp = $timestamp, a.seq = $seq, a.status = 'failed_check', a.commit_sha = $commit,
    a.release = $rolled_back_release, a.previous_release = $release, a.trigger = $trigger,
    a.replica = $replica, a.reason = $reason
MERGE (d)-[:REPLACED]->(a)
"""

# Point the replica's one RUNS edge at the deployment now live. Nothing changes
# when that deployment is not in the graph (its event predates the journal).
_RUNS = """
MATCH (target:SkillDeployment {release: $release, replica: $replica, status: 'deployed'})
MERGE (r:Replica {id: $replica})
WITH r, target
OPTIONAL MATCH (r)-[old:RUNS]->(other:SkillDeployment)
WHERE other.id <> target.id
DELETE old
WITH DISTINCT r, target
MERGE (r)-[:RUNS]->(target)
"""

# An operator's freeze on this replica, for `skillsyncd fleet` (sync/freeze.py).
_REPLICA_FREEZE = """
MERGE (r:Replica {id: $replica})
SET r.frozen = $frozen, r.freeze_reason = $reason, r.freeze_until = $until
"""

# Events whose `commit` is the head of the ref at that moment.
_HEAD_KINDS = (NoChange, Deployed, RolledBack, Rejected, Frozen)


def statements(event: JournalEvent) -> list[tuple[str, dict[str, Any]]]:
    """The Cypher that records ``event``; every statement is idempotent (MERGE/SET)."""
    params: dict[str, Any] = {"id": event.id, "seq": event.seq, "kind": event.kind,
                              "timestamp": event.timestamp or None,
                              "replica": event.replica or "unknown", "commit": event.commit}
    out: list[tuple[str, dict[str, Any]]] = [(_REPLICA_SEEN, params)]
    if isinstance(event, _HEAD_KINDS) and event.commit:
        out.append((_REPLICA_UPSTREAM, params))
    if isinstance(event, FreezeStarted | FreezeEnded):
        until = event.until if isinstance(event, FreezeStarted) else None
        out.append((_REPLICA_FREEZE, {**params, "frozen": isinstance(event, FreezeStarted),
                                      "reason": event.reason, "until": until}))
    if not is_deployment(event):
        return out
    skills = _versions(event)
    deployment = _deployment(event, params, skills)
    out.append((_DEPLOYMENT, deployment))
    if event.commit:
        out.append((_COMMIT, params))
    link = {"id": event.id, "replica": params["replica"], "release": event.release}
    if isinstance(event, Deployed):
        if skills:
            out.append((_VERSIONS, {"id": event.id, "skills": skills}))
        if event.previous_release:
            out.append((_REPLACED, {**link, "replaced_release": event.previous_release}))
    elif isinstance(event, RolledBack):
        out += _attempt(event, deployment, skills)
        if event.release:
            out.append((_RESTORED, link))
    elif isinstance(event, ManualRollback):
        if event.previous_release:
            out.append((_REPLACED, {**link, "replaced_release": event.previous_release}))
        if event.release:
            out.append((_RESTORED, link))
    if event.release and not isinstance(event, Rejected):
        out.append((_RUNS, link))
    return out


def _versions(event: JournalEvent) -> list[dict[str, Any]]:
    """The skill versions a deployment row links to (removed and held-back skills have none)."""
    return [
        {"name": str(s.get("name")), "version": _scalar(s.get("version")),
         "content_sha": str(s.get("content_sha")), "change": str(s.get("change") or "")}
        for s in event.skills
        if s.get("name") and s.get("change") not in {"removed", "held_back"} and s.get("content_sha")
    ]


def _deployment(event: JournalEvent, params: dict[str, Any],
                skills: list[dict[str, Any]]) -> dict[str, Any]:
    """The properties of a deployment row; its status is the event's kind."""
    count = getattr(event, "skills_count", None)
    return {
        **params,
        "status": event.kind,
        "previous_commit": event.previous_commit,
        "release": event.release,
        "previous_release": event.previous_release,
        "trigger": event.trigger,
        "skills_count": int(count or len(skills)),
        "reason": _scalar(getattr(event, "reason", None)),
        "history_rewritten": bool(getattr(event, "history_rewritten", False)),
        "findings": len(getattr(event, "findings", ())),
    }


def _attempt(event: RolledBack, deployment: dict[str, Any],
             skills: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The node of the release that went live, failed its checks and was rolled back."""
    if not event.rolled_back_release:
        return []
    attempt = {**deployment, "attempt": f"{event.id}/attempt",
               "rolled_back_release": event.rolled_back_release}
    out = [(_ATTEMPT, attempt)]
    if event.commit:
        out.append((_COMMIT, {"id": attempt["attempt"], "commit": event.commit}))
    if skills:
        out.append((_VERSIONS, {"id": attempt["attempt"], "skills": skills}))
    return out


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, default=str)


# --- cursor ----------------------------------------------------------------------


class Cursor:
    """The seq of the last event known to be in Neo4j, saved atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self) -> int:
        try:
            return int(json.loads(self.path.read_bytes())["seq"])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError):
            log.warning("audit_cursor_unreadable", file=str(self.path))
            return 0  # MERGE makes a full replay harmless

    def set(self, seq: int) -> None:
        atomic_write(self.path, json.dumps({"seq": seq}).encode() + b"\n")


class _ShipLock:
    """An exclusive flock on a file beside the cursor, held for one shipping round."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> _ShipLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise SinkError(f"cannot lock {self.path}: {exc.strerror}") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # drops the flock
            self.fd = None


class _Graph:
    """The connection to Neo4j: the driver (made lazily), sessions, the schema, read queries."""

    def __init__(self, cfg: Config, driver_factory: Callable[[], Any] | None) -> None:
        self.cfg = cfg
        self._driver_factory = driver_factory or self._make_driver
        self._driver: Any = None
        self._schema_done = False


    def _make_driver(self) -> Any:
        import neo4j

        try:
            password = self.cfg.neo4j_password.get() or ""
        except ConfigError as exc:
            raise SinkError(str(exc)) from exc
        timeout = self.cfg.network_timeout
        driver = neo4j.GraphDatabase.driver(
            str(self.cfg.neo4j_uri),
            auth=(self.cfg.neo4j_user, password),
            connection_timeout=timeout,
            connection_acquisition_timeout=timeout,
            # The sink retries with its own backoff; the driver's retries only delay that.
            max_transaction_retry_time=timeout,
            user_agent="skillsyncd",
        )
        try:
            driver.verify_connectivity()
        except neo4j.exceptions.ServiceUnavailable:
            driver.close()
            raise
        except neo4j.exceptions.Neo4jError as exc:
            # Refused at HELLO/LOGON: real Neo4j says AuthError, other servers a generic error.
            driver.close()
            raise SinkError(
                f"Neo4j at {_safe_uri(self.cfg.neo4j_uri)} refused the login of user "
                f"{self.cfg.neo4j_user!r} ({_describe(exc)}); check NEO4J_USER and "
                "NEO4J_PASSWORD (or NEO4J_PASSWORD_FILE)"
            ) from exc
        return driver

    def session(self) -> Any:
        if self._driver is None:
            self._driver = self._driver_factory()
        kwargs = {"database": self.cfg.neo4j_database} if self.cfg.neo4j_database else {}
        return self._driver.session(**kwargs)

    def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        """Run a read query (for ``fleet``); raise SinkError when Neo4j cannot answer."""
        try:
            with self.session() as session:
                return [dict(r) for r in session.run(cypher, params)]
        except SinkError:
            raise
        except Exception as exc:
            raise SinkError(f"cannot query {_safe_uri(self.cfg.neo4j_uri)}: {_describe(exc)}") from exc

    def ensure_schema(self) -> None:
        """Constraints and indexes, best effort: some servers (and FalkorDB) refuse them.

        Losing the connection is an outage (try again later); a refusal is final.
        """
        if self._schema_done:
            return
        import neo4j

        for stmt in SCHEMA:
            try:
                with self.session() as session:
                    session.run(stmt).consume()
            except (neo4j.exceptions.ServiceUnavailable, neo4j.exceptions.SessionExpired):
                raise
            except neo4j.exceptions.Neo4jError as exc:
                log.info("audit_schema_skipped", reason=_describe(exc))
                break
        self._schema_done = True

    def close(self) -> None:
        if self._driver is not None:
            try:
                self._driver.close()
            finally:
                self._driver = None

    def drop(self) -> None:
        """Forget the driver after a failure (closing it may fail too)."""
        try:
            self.close()
        except Exception:
            self._driver = None


# --- the sink ----------------------------------------------------------------------


class Neo4jSink:
    """Ship journal events to Neo4j, in order, at least once, recorded exactly once.

    The thread keeps its own view of the lag (journal seq minus cursor) in
    memory, so ``status()`` never touches the disk or the network: the daemon's
    event loop may call it.
    """

    def __init__(
        self,
        cfg: Config,
        journal: Journal,
        driver_factory: Callable[[], Any] | None = None,
        backoff: tuple[float, float] = (BACKOFF_START, BACKOFF_MAX),
    ) -> None:
        if not cfg.neo4j_uri:
            raise ConfigError("no Neo4j configured: set NEO4J_URI (e.g. neo4j+s://xxxx.databases.neo4j.io)")
        self.cfg = cfg
        self.journal = journal
        self.cursor = Cursor(cfg.state_dir / CURSOR_FILE)
        self.graph = _Graph(cfg, driver_factory)
        self.backoff_start, self.backoff_max = backoff
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one ship at a time (thread and `audit push` in-process)
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_shipped_at: float | None = None
        self.shipped_total = 0
        self.journal_seq = 0  # newest seq known to be in the journal
        self.cursor_seq = 0  # newest seq known to be in Neo4j
        # Called between the Neo4j commit and the cursor write (tests crash here).
        self.after_write: Callable[[JournalEvent], None] = lambda _event: None

    def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        """Run a read query (for ``fleet``); raise SinkError when Neo4j cannot answer."""
        return self.graph.query(cypher, **params)

    def close(self) -> None:
        self.graph.close()

    # -- shipping --

    def lag(self) -> int:
        """Events in the journal not yet in Neo4j (reads both files)."""
        self.journal_seq = self.journal.last_seq()
        self.cursor_seq = self.cursor.get()
        return max(0, self.journal_seq - self.cursor_seq)

    def ship(self, limit: int | None = None) -> int:
        """Ship pending events in order; return how many. Raise SinkError on failure.

        One shipper at a time per state dir (the daemon's thread, ``audit push``):
        the cursor only moves forward and the graph sees events in ``seq`` order.
        """
        with self._lock, _ShipLock(self.cfg.state_dir / SHIP_LOCK_FILE):
            return self._ship(limit)

    def _ship(self, limit: int | None) -> int:
        shipped = 0
        try:
            self.lag()
            self.graph.ensure_schema()
            expected = self.cursor_seq + 1
            for event in self.journal.read(after=self.cursor_seq):
                if limit is not None and shipped >= limit:
                    break
                seq = event.seq
                if seq != expected:
                    log.warning("audit_gap", expected=expected, found=seq,
                                note="events before this one are no longer in the journal")
                self._write(event)
                self.after_write(event)
                self.cursor.set(seq)
                self.cursor_seq = expected = seq
                expected += 1
                self.journal_seq = max(self.journal_seq, seq)
                shipped += 1
                self.shipped_total += 1
        except SinkError as exc:
            self._failed(str(exc))
            raise
        except Exception as exc:
            message = f"cannot ship audit events to {_safe_uri(self.cfg.neo4j_uri)}: {_describe(exc)}"
            self._failed(message)
            raise SinkError(message) from exc
        if shipped:
            self.last_shipped_at = time.time()
            try:
                self.journal.prune()  # segments the replica now holds may go
            except OSError as exc:
                log.warning("journal_prune_failed", error=exc.strerror)
        self.last_error = None
        return shipped

    def _write(self, event: JournalEvent) -> None:
        """Write one event in one transaction, again at once if it lost a race to another replica.

        Replicas share Skill, SkillVersion and Commit nodes. When two create the same one
        at the same moment, a server that checks uniqueness at commit (ArcadeDB) refuses
        the later transaction with a ConstraintError; run again, its MERGE finds the node
        the other replica made. That is not an outage, so it costs no backoff.
        """
        import neo4j

        stmts = statements(event)
        for attempt in range(1, MERGE_RACE_TRIES + 1):
            try:
                with self.graph.session() as session:
                    session.execute_write(_write_event, stmts)
                return
            except neo4j.exceptions.ConstraintError as exc:
                if attempt == MERGE_RACE_TRIES:
                    raise
                log.info("audit_merge_race", seq=event.seq, attempt=attempt, error=_describe(exc))

    def _failed(self, message: str) -> None:
        self.last_error = message
        self.last_error_at = time.time()
        self.graph.drop()

    # -- background thread --

    def notify(self, event: JournalEvent | None = None) -> None:
        """Wake the shipper (the journal calls this after each append)."""
        if event is not None:
            self.journal_seq = max(self.journal_seq, event.seq)
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="skillsyncd-audit-sink", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread; False if it is still stuck in a network call after ``timeout``."""
        self._stop.set()
        self._wake.set()
        stopped = True
        if self._thread is not None:
            self._thread.join(timeout)
            stopped = not self._thread.is_alive()
            self._thread = None
        if stopped:
            self.close()
        return stopped

    def _run(self) -> None:
        delay = self.backoff_start
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.ship()
            except SinkError as exc:
                log.warning("audit_ship_failed", error=str(exc), retry_in=delay, lag=self.lag_seen())
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            except Exception as exc:  # a bug here must not end the thread
                self._failed(_describe(exc))
                log.error("audit_sink_crashed", error=self.last_error)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            delay = self.backoff_start
            self._wake.wait(IDLE_WAIT)

    def lag_seen(self) -> int:
        """The lag as this process last saw it (no I/O)."""
        return max(0, self.journal_seq - self.cursor_seq)

    def status(self) -> dict[str, Any]:
        """For /status: no I/O, safe on the event loop."""
        return {
            "neo4j": True,
            "uri": _safe_uri(self.cfg.neo4j_uri),
            "replica": self.cfg.replica_id,
            "lag": self.lag_seen(),
            "journal_seq": self.journal_seq,
            "shipped_seq": self.cursor_seq,
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "last_shipped_at": _iso(self.last_shipped_at),
        }


def _write_event(tx: Any, stmts: list[tuple[str, dict[str, Any]]]) -> None:
    for query, params in stmts:
        tx.run(query, params).consume()


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    text = redact_text(str(exc)).strip().splitlines()
    return f"{name}: {text[0][:300]}" if text else name


def _safe_uri(uri: str | None) -> str:
    return redact_url(uri or "")


def _iso(unix: float | None) -> str | None:
    if unix is None:
        return None
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
