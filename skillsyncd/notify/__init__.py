"""notify: see docs/architecture.md."""
