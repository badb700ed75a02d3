"""The long-running sidecar (``skillsyncd run``): poll, webhook, SIGHUP, HTTP endpoints, hooks.

Its entry is :func:`skillsyncd.daemon.service.run`. This file stays empty on purpose:
every command imports ``daemon.stopping`` and ``--once`` imports ``daemon.hooks``, and
neither may pull in the HTTP server. See docs/daemon.md.
"""
