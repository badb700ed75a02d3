"""Audit trail: the local journal (always) and its Neo4j replica (when configured)."""
