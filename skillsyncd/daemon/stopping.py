"""Stop requests that arrive while the daemon is still starting.

``skillsyncd run`` needs about a second of imports and set-up before its event
loop can handle SIGTERM. Python's default action for SIGTERM is to die (status
143, which supervisord reports as a crash), so :func:`install` runs first, before
any heavy import, and only *records* the signal. Each start-up step then calls
:meth:`PendingStop.check`, which raises :class:`StopRequested` once a stop is
pending; the CLI turns that into exit 0. Nothing before the first sync touches
``current``, so a stop at any of these points leaves it as it was.

Only the standard library is imported here: this module must be cheap.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequested(Exception):
    """SIGTERM or SIGINT arrived during start-up; the run ends cleanly with exit 0."""

    def __init__(self, signum: int, step: str) -> None:
        super().__init__(f"{signal.Signals(signum).name} during start-up ({step})")
        self.signum = signum
        self.step = step


class PendingStop:
    """Signals seen before the event loop took over: a stop, and whether SIGHUP came."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.hangups = 0
        self._previous: dict[int, object] = {}

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum

    def _on_hangup(self, _signum: int, _frame: FrameType | None) -> None:
        self.hangups += 1

    def install(self) -> bool:
        """Record SIGTERM/SIGINT/SIGHUP from now on; False off the main thread (cannot)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for sig in STOP_SIGNALS:
            self._previous.setdefault(sig, signal.signal(sig, self._on_stop))
        self._previous.setdefault(signal.SIGHUP, signal.signal(signal.SIGHUP, self._on_hangup))
        return True

    def uninstall(self) -> None:
        """Put back the handlers :meth:`install` replaced (for commands other than ``run``)."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def check(self, step: str) -> None:
        """Raise :class:`StopRequested` if a stop came in; called between start-up steps."""
        if self.signum is not None:
            raise StopRequested(self.signum, step)


PENDING = PendingStop()

__all__ = ["PENDING", "STOP_SIGNALS", "PendingStop", "StopRequested"]
