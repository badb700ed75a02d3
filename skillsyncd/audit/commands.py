"""CLI commands over the audit trail: ``audit``, ``audit push`` and ``fleet``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

import structlog

from skillsyncd.audit.history import SinceError, parse_since, render, select
from skillsyncd.audit.journal import Journal
from skillsyncd.audit.neo4j import CURSOR_FILE, Cursor, Neo4jSink, SinkError
from skillsyncd.config import Config
from skillsyncd.errors import ConfigError

log = structlog.get_logger(__name__)

FLEET_QUERY = """
MATCH (r:Replica)
OPTIONAL MATCH (r)-[:RUNS]->(d:SkillDeployment)
RETURN r.id AS replica, d.commit_sha AS commit, d.release AS release,
       d.timestamp AS deployed_at, r.last_seen AS last_seen, r.upstream_commit AS upstream,
       coalesce(r.frozen, false) AS frozen, r.freeze_reason AS freeze_reason,
       r.freeze_until AS freeze_until
ORDER BY replica
"""


def open_journal(cfg: Config) -> Journal:
    """The journal, told how far the Neo4j replica has got (so rotation keeps the rest)."""
    shipped = None
    if cfg.neo4j_uri:
        cursor = Cursor(cfg.state_dir / CURSOR_FILE)
        shipped = cursor.get
    return Journal(cfg.journal_file, replica=cfg.replica_id, shipped=shipped)


def cmd_audit(cfg: Config, args: argparse.Namespace) -> int:
    journal = open_journal(cfg)
    since = getattr(args, "since", None)
    try:
        since = parse_since(since, datetime.now(UTC)) if since else None
    except SinceError as exc:
        raise ConfigError(str(exc)) from None
    events = select(journal.read(), since=since,
                    skill=getattr(args, "skill", None), everything=getattr(args, "all", False))
    count = 0
    for line in render(events, as_json=bool(getattr(args, "json", False))):
        print(line)
        count += 1
    if count == 0 and not getattr(args, "json", False):
        print(f"no matching events in {journal.path}", file=sys.stderr)
    return 0


def cmd_audit_push(cfg: Config) -> int:
    """Ship the backlog now; exit 1 if Neo4j cannot take it (the events stay queued)."""
    if not cfg.neo4j_uri:
        raise ConfigError("audit push needs Neo4j: set NEO4J_URI, NEO4J_USER and NEO4J_PASSWORD")
    sink = Neo4jSink(cfg, open_journal(cfg))
    try:
        shipped = sink.ship()
    except SinkError as exc:
        print(f"audit push failed: {exc}; {sink.lag()} event(s) wait in the journal",
              file=sys.stderr)
        log.error("audit_push_failed", error=str(exc), lag=sink.lag_seen())
        return 1
    finally:
        sink.close()
    print(f"shipped {shipped} event(s); {sink.lag()} left", file=sys.stderr)
    return 0


def fleet_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark who is behind: a replica whose live commit is not the newest one deployed anywhere."""
    newest = max((r for r in records if r.get("commit")), key=lambda r: str(r.get("deployed_at") or ""),
                 default=None)
    rows = []
    for r in records:
        behind = newest is not None and r.get("commit") != newest.get("commit")
        stale_upstream = bool(r.get("upstream")) and r.get("upstream") != r.get("commit")
        rows.append({**r, "behind": behind or stale_upstream})
    return rows


def cmd_fleet(cfg: Config, as_json: bool = False) -> int:
    """Which replica runs which commit, and who is behind (from Neo4j: every replica ships there)."""
    if not cfg.neo4j_uri:
        raise ConfigError("fleet reads Neo4j: set NEO4J_URI, NEO4J_USER and NEO4J_PASSWORD")
    sink = Neo4jSink(cfg, open_journal(cfg))
    try:
        records = sink.query(FLEET_QUERY)
    except SinkError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    finally:
        sink.close()
    rows = fleet_rows(records)
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print("no replicas recorded yet")
        return 0
    print(f"{'REPLICA':<24} {'COMMIT':<12} {'RELEASE':<32} {'LAST SEEN':<25} STATE")
    for row in rows:
        flag = ("BEHIND" if row["behind"] else "ok") + (
            f" FROZEN until {row.get('freeze_until') or 'unfreeze'}" if row.get("frozen") else "")
        print(f"{row['replica']:<24} {str(row.get('commit') or '-')[:12]:<12} "
              f"{row.get('release') or '-':<32} {row.get('last_seen') or '-':<25} {flag}")
    return 0
