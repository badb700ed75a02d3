"""Audit trail: the local journal (always) and its Neo4j replica (when configured)."""

from __future__ import annotations

from skillsyncd.audit.commands import cmd_audit, cmd_audit_push, cmd_fleet, open_journal
from skillsyncd.audit.journal import Journal, JournalError
from skillsyncd.audit.neo4j import Neo4jSink, SinkError

__all__ = [
    "Journal",
    "JournalError",
    "Neo4jSink",
    "SinkError",
    "cmd_audit",
    "cmd_audit_push",
    "cmd_fleet",
    "open_journal",
]
