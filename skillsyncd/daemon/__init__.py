"""The long-running sidecar (``skillsyncd run``): poll, webhook, SIGHUP, HTTP endpoints, hooks.

Kept light on purpose: ``wiring`` imports :mod:`skillsyncd.sync.checks` for
``--once`` too, and that must not pull in the HTTP server. See docs/daemon.md.
"""

from __future__ import annotations

from skillsyncd.config import Config


def run_daemon(cfg: Config) -> int:
    """The ``run`` command; returns the exit code."""
    from skillsyncd.daemon.service import run
    from skillsyncd.daemon.stopping import PENDING

    PENDING.check("imported")
    return run(cfg)


__all__ = ["run_daemon"]
