"""Replicate the journal to Neo4j: in order, from a persisted cursor, idempotently.

Each event is written in its own transaction keyed by the event id (MERGE), and
the cursor (the last shipped ``seq``) is saved only after the transaction
commits. A crash between the two re-sends one event, which MERGE turns into a
no-op, so the graph never holds a duplicate. The sink runs in its own thread
and never raises into a sync: while Neo4j is away, events wait in the journal.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from skillsyncd.audit.journal import Journal
from skillsyncd.config import Config
from skillsyncd.errors import ConfigError, SkillsyncError
from skillsyncd.fsutil import atomic_write
from skillsyncd.log import redact_text

log = structlog.get_logger("skillsyncd.audit")

CURSOR_FILE = "audit-cursor.json"
BACKOFF_START = 1.0
BACKOFF_MAX = 60.0
DEPLOYMENT_KINDS = frozenset({"deployed", "rolled_back", "manual_rollback", "validation_failed"})
_STATUS = {
    "deployed": "deployed",
    "rolled_back": "rolled_back",
    "manual_rollback": "manual_rollback",
    "validation_failed": "rejected",
}


class SinkError(SkillsyncError):
    """Neo4j refused or could not be reached; the events stay in the journal."""


# --- the graph (pure: an event in, Cypher statements and parameters out) --------

SCHEMA = (
    "CREATE CONSTRAINT skillsync_deployment_id IF NOT EXISTS "
    "FOR (d:SkillDeployment) REQUIRE d.id IS UNIQUE",
    "CREATE CONSTRAINT skillsync_skill_name IF NOT EXISTS FOR (s:Skill) REQUIRE s.name IS UNIQUE",
    "CREATE CONSTRAINT skillsync_commit_sha IF NOT EXISTS FOR (c:Commit) REQUIRE c.sha IS UNIQUE",
    "CREATE CONSTRAINT skillsync_replica_id IF NOT EXISTS FOR (r:Replica) REQUIRE r.id IS UNIQUE",
    "CREATE INDEX skillsync_version IF NOT EXISTS FOR (v:SkillVersion) ON (v.name, v.content_sha)",
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

_REPLACED = """
MATCH (d:SkillDeployment {id: $id})
MATCH (old:SkillDeployment {release: $replaced_release, status: 'deployed'})
MERGE (d)-[:REPLACED]->(old)
"""

_RESTORED = """
MATCH (d:SkillDeployment {id: $id})
MATCH (back:SkillDeployment {release: $release, status: 'deployed'})
MERGE (d)-[:RESTORED]->(back)
"""

_RUNS_DROP = """
MATCH (r:Replica {id: $replica})-[old:RUNS]->()
DELETE old
"""

_RUNS_DEPLOYED = """
MATCH (d:SkillDeployment {id: $id})
MERGE (r:Replica {id: $replica})
MERGE (r)-[:RUNS]->(d)
"""

_RUNS_RESTORED = """
MATCH (back:SkillDeployment {release: $release, status: 'deployed'})
MERGE (r:Replica {id: $replica})
MERGE (r)-[:RUNS]->(back)
"""


def statements(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The Cypher that records ``event``; every statement is idempotent (MERGE/SET)."""
    kind = str(event.get("kind"))
    params: dict[str, Any] = {
        "id": event["id"],
        "seq": int(event["seq"]),
        "kind": kind,
        "timestamp": event.get("timestamp"),
        "replica": event.get("replica"),
        "commit": event.get("commit"),
    }
    out: list[tuple[str, dict[str, Any]]] = [(_REPLICA_SEEN, params)]
    if kind in {"no_change", "deployed"} and event.get("commit"):
        out.append((_REPLICA_UPSTREAM, params))
    if kind not in DEPLOYMENT_KINDS:
        return out
    skills = [
        {"name": str(s.get("name")), "version": _scalar(s.get("version")),
         "content_sha": str(s.get("content_sha") or ""), "change": str(s.get("change") or "")}
        for s in event.get("skills") or []
        if s.get("change") not in {"removed", "held_back"} and s.get("content_sha")
    ]
    deployment = {
        **params,
        "status": _STATUS[kind],
        "previous_commit": event.get("previous_commit"),
        "release": event.get("release"),
        "previous_release": event.get("previous_release"),
        "trigger": event.get("trigger"),
        "skills_count": int(event.get("skills_count") or len(skills)),
        "reason": _scalar(event.get("reason")),
        "history_rewritten": bool(event.get("history_rewritten")),
        "findings": len(event.get("findings") or []),
    }
    out.append((_DEPLOYMENT, deployment))
    if event.get("commit"):
        out.append((_COMMIT, params))
    if kind == "deployed":
        if skills:
            out.append((_VERSIONS, {"id": event["id"], "skills": skills}))
        out.append((_RUNS_DROP, params))
        out.append((_RUNS_DEPLOYED, params))
    elif kind in {"rolled_back", "manual_rollback"}:
        replaced = event.get("rolled_back_release") or event.get("previous_release")
        if replaced:
            out.append((_REPLACED, {"id": event["id"], "replaced_release": replaced}))
        if event.get("release"):
            restored = {"id": event["id"], "release": event["release"], "replica": event.get("replica")}
            out.append((_RESTORED, restored))
            out.append((_RUNS_DROP, params))
            out.append((_RUNS_RESTORED, restored))
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


# --- the sink ----------------------------------------------------------------------


class Neo4jSink:
    """Ship journal events to Neo4j, in order, at least once, recorded exactly once."""

    def __init__(
        self,
        cfg: Config,
        journal: Journal,
        driver_factory: Callable[[], Any] | None = None,
    ) -> None:
        if not cfg.neo4j_uri:
            raise ConfigError("no Neo4j configured: set NEO4J_URI (e.g. neo4j+s://xxxx.databases.neo4j.io)")
        self.cfg = cfg
        self.journal = journal
        self.cursor = Cursor(cfg.state_dir / CURSOR_FILE)
        self._driver_factory = driver_factory or self._make_driver
        self._driver: Any = None
        self._schema_done = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.last_shipped_at: float | None = None
        self.shipped_total = 0
        # Called between the Neo4j commit and the cursor write (tests crash here).
        self.after_write: Callable[[dict[str, Any]], None] = lambda _event: None

    # -- connection --

    def _make_driver(self) -> Any:
        import neo4j

        password = self.cfg.neo4j_password.get() or ""
        return neo4j.GraphDatabase.driver(
            str(self.cfg.neo4j_uri),
            auth=(self.cfg.neo4j_user, password),
            connection_timeout=self.cfg.network_timeout,
            max_transaction_retry_time=self.cfg.network_timeout,
            connection_acquisition_timeout=self.cfg.network_timeout,
        )

    def _session(self) -> Any:
        if self._driver is None:
            self._driver = self._driver_factory()
        kwargs = {"database": self.cfg.neo4j_database} if self.cfg.neo4j_database else {}
        return self._driver.session(**kwargs)

    def _ensure_schema(self) -> None:
        """Constraints and indexes, best effort: some servers (and FalkorDB) refuse them."""
        if self._schema_done:
            return
        self._schema_done = True
        for stmt in SCHEMA:
            try:
                with self._session() as session:
                    session.run(stmt).consume()
            except Exception as exc:
                log.info("audit_schema_skipped", reason=_describe(exc))
                return

    def close(self) -> None:
        if self._driver is not None:
            try:
                self._driver.close()
            finally:
                self._driver = None

    # -- shipping --

    def lag(self) -> int:
        """Events in the journal not yet in Neo4j."""
        return max(0, self.journal.last_seq() - self.cursor.get())

    def ship(self, limit: int | None = None) -> int:
        """Ship pending events in order; return how many. Raise SinkError on failure."""
        shipped = 0
        try:
            self._ensure_schema()
            after = self.cursor.get()
            for event in self.journal.read(after=after):
                if limit is not None and shipped >= limit:
                    break
                with self._session() as session:
                    session.execute_write(_write_event, statements(event))
                self.after_write(event)
                self.cursor.set(int(event["seq"]))
                shipped += 1
                self.shipped_total += 1
        except SkillsyncError:
            raise
        except Exception as exc:
            self.last_error = _describe(exc)
            self._drop_driver()
            raise SinkError(f"cannot ship audit events to {self.cfg.neo4j_uri}: {self.last_error}") from exc
        if shipped:
            self.last_shipped_at = time.time()
        self.last_error = None
        return shipped

    def _drop_driver(self) -> None:
        try:
            self.close()
        except Exception:
            self._driver = None

    # -- background thread --

    def notify(self, _event: dict[str, Any] | None = None) -> None:
        """Wake the shipper (the journal calls this after each append)."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="skillsyncd-audit-sink", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.close()

    def _run(self) -> None:
        delay = BACKOFF_START
        while not self._stop.is_set():
            try:
                self.ship()
                delay = BACKOFF_START
                self._wake.wait(30.0)
            except SinkError as exc:
                log.warning("audit_ship_failed", error=str(exc), retry_in=delay, lag=self._safe_lag())
                self._stop.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX)
            except Exception as exc:
                self.last_error = _describe(exc)
                log.error("audit_sink_crashed", error=self.last_error)
                self._stop.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX)
            self._wake.clear()

    def _safe_lag(self) -> int | None:
        try:
            return self.lag()
        except Exception:
            return None

    def status(self) -> dict[str, Any]:
        return {
            "configured": True,
            "uri": self.cfg.neo4j_uri,
            "lag": self._safe_lag(),
            "cursor": self.cursor.get(),
            "last_error": self.last_error,
            "last_shipped_at": self.last_shipped_at,
        }


def _write_event(tx: Any, stmts: list[tuple[str, dict[str, Any]]]) -> None:
    for query, params in stmts:
        tx.run(query, **params).consume()


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    text = redact_text(str(exc)).strip().splitlines()
    return f"{name}: {text[0][:300]}" if text else name
