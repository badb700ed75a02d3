"""The overall deadline of one network operation, on top of each socket's own timeout.

dulwich is fully blocking: callers run fetches in a worker thread, and every network
call is bounded twice, by a per-socket timeout and by an overall deadline checked as
bytes arrive, so a slow or silent server cannot pin the thread for ever. Both are
scoped to the operation (a thread-local deadline); importing this module changes
nothing process-wide (the audit hook is installed at the first operation).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from typing import Any


class Deadline:
    """The overall budget of one network operation, enforced two ways.

    dulwich reports activity as bytes arrive, and each report checks the clock.
    That alone cannot stop a server that trickles one pkt-line a byte at a time
    (each read succeeds inside the socket timeout), so a watchdog also shuts down
    every socket this thread connected during the operation once the budget is
    spent; the blocked read then fails at once. One shared watchdog thread serves
    every deadline: starting a timer thread per operation cost about 5 ms of a
    60 ms no-change poll on a loaded 2-core box.
    """

    def __init__(self, seconds: float, socket_timeout: float | None = None) -> None:
        self.seconds = seconds
        self.socket_timeout = socket_timeout
        self.expires = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def __call__(self, _nbytes: int = 0, _direction: str = "") -> None:
        if self.expired or time.monotonic() > self.expires:
            raise TimeoutError(f"network operation exceeded {self.seconds:.0f}s overall")

    def __enter__(self) -> Deadline:
        _install_audit_hook()
        _active.deadline = self
        _watchdog.arm(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _watchdog.disarm(self)
        _active.deadline = None
        with self._lock:
            self._sockets.clear()

    def watch(self, sock: socket.socket) -> None:
        # dulwich's git:// client sets no timeout of its own: the operation's applies.
        if self.socket_timeout is not None and sock.gettimeout() is None:
            with contextlib.suppress(OSError):
                sock.settimeout(self.socket_timeout)
        with self._lock:
            self._sockets.append(sock)

    def _expire(self) -> None:
        self.expired = True
        with self._lock:
            doomed = list(self._sockets)
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread that expires armed deadlines; started at the first operation."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: set[Deadline] = set()
        self._pid: int | None = None

    def arm(self, deadline: Deadline) -> None:
        with self._cond:
            self._armed.add(deadline)
            if self._pid != os.getpid():  # first use, or a forked child without the thread
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="skillsyncd-deadline", daemon=True).start()
            self._cond.notify()

    def disarm(self, deadline: Deadline) -> None:
        with self._cond:
            self._armed.discard(deadline)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [d for d in self._armed if d.expires <= now]
                self._armed.difference_update(due)
                nxt = min((d.expires for d in self._armed), default=None)
                if not due:
                    self._cond.wait(None if nxt is None else nxt - now)
            for deadline in due:
                deadline._expire()


_watchdog = _Watchdog()


class _Active(threading.local):
    deadline: Deadline | None = None


_active = _Active()


def _on_audit(event: str, args: tuple[Any, ...]) -> None:
    """Hand every socket a network operation connects to that operation's deadline."""
    if event == "socket.connect":
        deadline = _active.deadline
        if deadline is not None and isinstance(args[0], socket.socket):
            deadline.watch(args[0])


_hook_lock = threading.Lock()
_hook_installed = False


def _install_audit_hook() -> None:
    """Install :func:`_on_audit` once, at the first network operation (never on import).

    An audit hook cannot be removed; it does nothing outside an operation's deadline.
    """
    global _hook_installed
    with _hook_lock:
        if not _hook_installed:
            sys.addaudithook(_on_audit)
            _hook_installed = True
