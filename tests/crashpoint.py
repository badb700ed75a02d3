"""Run `skillsyncd --once` and SIGKILL the process at a named point of the sync.

Used by the crash-consistency tests: the patch is applied from outside the
package (no test hooks in production code), then the real CLI runs.

    python tests/crashpoint.py POINT [skillsyncd args...]
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import skillsyncd.release.releases as release
import skillsyncd.release.staging as staging
import skillsyncd.release.store as store
import skillsyncd.sync.golive as golive
import skillsyncd.sync.ledger as ledger
import skillsyncd.sync.retention as retention
import skillsyncd.sync.stage as stage
import skillsyncd.sync.veto as veto
from skillsyncd.cli import main


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def before(owner: Any, name: str, after_calls: int = 0) -> None:
    """Die on entry to owner.name, once it has been called `after_calls` times."""
    real: Callable[..., Any] = getattr(owner, name)
    seen = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if seen["n"] >= after_calls:
            die()
        seen["n"] += 1
        return real(*args, **kwargs)

    setattr(owner, name, wrapper)


POINTS: dict[str, Callable[[], None]] = {
    "before-stage": lambda: before(stage, "stage_release"),
    "mid-stage": lambda: before(store, "write_new", after_calls=1),
    "mid-place": lambda: before(store.Store, "_place_one", after_calls=1),
    "mid-link": lambda: before(staging, "_link_skill", after_calls=1),
    "manifest-write": lambda: before(staging, "write_manifest"),
    "mid-veto": lambda: before(veto, "_wait"),  # the pre-flip command runs; skillsyncd dies
    "before-discard": lambda: before(release.Releases, "delete"),  # a held release, not yet deleted
    "before-flip": lambda: before(release.Releases, "flip"),
    "after-flip": lambda: before(golive.GoLive, "publish"),
    "before-state": lambda: before(ledger, "save_state"),
    "before-prune": lambda: before(retention, "prune"),
}

if __name__ == "__main__":
    POINTS[sys.argv[1]]()
    sys.exit(main(sys.argv[2:]))
