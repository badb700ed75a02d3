"""A thin background sender: one daemon thread, a bounded queue, never waited on by a sync.

Alerts and commit statuses both go through one of these. ``put`` is called from
the sync thread (a journal listener) and returns at once; when the queue is full
the item is dropped and counted, because telling people must never slow a
deploy. A one-shot command waits for the queue at exit, but never longer than
``exit_wait``.
"""

from __future__ import annotations

import atexit
import contextlib
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)

QUEUE_SIZE = 256
EXIT_WAIT = 5.0  # seconds a process waits at exit for messages still queued


class Outbox:
    """Runs ``handle(item)`` for each item put, one at a time, in its own thread."""

    def __init__(self, name: str, handle: Callable[[Any], None], size: int = QUEUE_SIZE,
                 tick: Callable[[], None] | None = None, tick_every: float = 30.0) -> None:
        self.name = name
        self.handle = handle
        self.tick = tick
        self.tick_every = tick_every
        self.counts: Counter[str] = Counter()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._idle = threading.Condition()
        self._busy = 0
        self._dropped_logged = False
        self._thread = threading.Thread(target=self._run, name=f"skillsyncd-{name}", daemon=True)
        self._thread.start()
        atexit.register(self.flush, EXIT_WAIT)

    def put(self, item: Any) -> bool:
        """Queue ``item``; False (and counted as dropped) when the queue is full."""
        with self._idle:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self.counts["dropped"] += 1
                if not self._dropped_logged:  # one line, however long the outage
                    log.warning(f"{self.name}_dropped", queue=self._queue.maxsize,
                                hint="the receiver is slower than the events; later ones are dropped")
                    self._dropped_logged = True
                return False
            self._busy += 1
            return True

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued was handled; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _run(self) -> None:
        next_tick = time.monotonic() + self.tick_every
        while True:
            wait = max(0.0, next_tick - time.monotonic()) if self.tick else None
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            else:
                try:
                    self.handle(item)
                except Exception:  # a bug in one message must not stop the next ones
                    self.counts["failed"] += 1
                    log.exception(f"{self.name}_crashed")
                finally:
                    with self._idle:
                        self._busy -= 1
                        self._dropped_logged = False
                        self._idle.notify_all()
            if self.tick and time.monotonic() >= next_tick:
                with contextlib.suppress(Exception):
                    self.tick()
                next_tick = time.monotonic() + self.tick_every


__all__ = ["EXIT_WAIT", "Outbox"]
