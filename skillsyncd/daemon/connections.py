"""A cap on the HTTP side's open connections: past it, the oldest one is closed.

aiohttp bounds how long a connection may take to send its headers (its keep-alive
timer runs until a complete request arrives) but not how many connections may sit
there meanwhile. Closing the *oldest* rather than refusing the newest keeps
/healthz and real webhook deliveries answering while a slowloris client holds
more half-sent requests than the cap: theirs are always the older ones.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import structlog

log = structlog.get_logger(__name__)

REPORT_EVERY = 10.0  # seconds between two "connections dropped" warnings


class ConnectionCap:
    """Wraps an aiohttp ``web.Server``'s connection callbacks to enforce ``limit``."""

    def __init__(self, server: Any, limit: int) -> None:
        self.limit = limit
        self.dropped = 0
        self._open: OrderedDict[Any, None] = OrderedDict()
        self._reported_at = float("-inf")
        self._reported = 0
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: Any) -> None:
            made(handler, transport)
            self._open[handler] = None
            self._enforce()

        def connection_lost(handler: Any, exc: BaseException | None) -> None:
            self._open.pop(handler, None)
            lost(handler, exc)

        server.connection_made = connection_made
        server.connection_lost = connection_lost

    @property
    def open(self) -> int:
        return len(self._open)

    def _enforce(self) -> None:
        while len(self._open) > self.limit:
            oldest, _ = self._open.popitem(last=False)
            oldest.force_close()
            self.dropped += 1
        now = time.monotonic()
        if self.dropped > self._reported and now - self._reported_at >= REPORT_EVERY:
            log.warning("http_connections_dropped", dropped=self.dropped - self._reported,
                        limit=self.limit,
                        note="over http_max_connections: the oldest connections were closed")
            self._reported, self._reported_at = self.dropped, now


__all__ = ["ConnectionCap"]
