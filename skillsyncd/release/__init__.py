"""release: see docs/architecture.md."""
