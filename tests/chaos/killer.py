"""Run the real ``skillsyncd`` CLI with a SIGKILL armed at a chosen instant.

The patch is installed from outside the package (production code has no test
hooks), then ``skillsyncd.cli.main`` runs with the remaining arguments:

    python tests/chaos/killer.py SPEC [skillsyncd args...]

SPEC is one of
    ``none``             no kill (a plain run, used for restarts and calibration)
    ``point:NAME:K``     die on the K-th (0-based) arrival at a named point (see POINTS)
    ``syscall:N``        die just before the N-th (1-based) file-system mutation of the
                         process (fsync, write, rename, replace, link, symlink, unlink,
                         mkdir, rmdir, ftruncate), wherever it happens
If CHAOS_COUNT_FILE is set, the number of mutations seen is written there at exit,
so the harness can aim ``syscall:N`` inside a real sync.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dulwich.object_store as object_store

import skillsyncd.audit.journal as journal
import skillsyncd.publish.publisher as publish
import skillsyncd.release.releases as release
import skillsyncd.release.staging as staging
import skillsyncd.release.store as store
import skillsyncd.source.remote as source
import skillsyncd.sync.golive as golive
import skillsyncd.sync.ledger as ledger
import skillsyncd.sync.retention as retention
import skillsyncd.sync.stage as stage
import skillsyncd.sync.veto as veto
from skillsyncd.cli import main


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Countdown:
    """Fires ``die`` on the K-th arrival (0-based)."""

    def __init__(self, k: int) -> None:
        self.left = k

    def tick(self) -> None:
        if self.left <= 0:
            die()
        self.left -= 1


def before(owner: Any, name: str, k: int) -> None:
    """Die on entry to owner.name, on its K-th call."""
    real: Callable[..., Any] = getattr(owner, name)
    countdown = Countdown(k)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        countdown.tick()
        return real(*args, **kwargs)

    setattr(owner, name, wrapper)


def after(owner: Any, name: str, k: int, when: Callable[..., bool] = lambda *a, **kw: True) -> None:
    """Die right after owner.name returns, on its K-th matching call."""
    real: Callable[..., Any] = getattr(owner, name)
    countdown = Countdown(k)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        if when(*args, **kwargs):
            countdown.tick()
        return out

    setattr(owner, name, wrapper)


def mid_fetch(k: int) -> None:
    """Die halfway through writing the fetched pack into the mirror, whatever the transport."""
    store = object_store.DiskObjectStore
    real_thin: Callable[..., Any] = store.add_thin_pack
    real_data: Callable[..., Any] = store.add_pack_data
    countdown = Countdown(k)

    def add_thin_pack(self: Any, read_all: Callable[[int], bytes], read_some: Any,
                      *args: Any, **kwargs: Any) -> Any:
        got = {"n": 0}

        def reader(n: int) -> bytes:
            data = read_all(n)
            got["n"] += len(data)
            if got["n"] > 64:  # past the pack header: objects are being written
                countdown.tick()
            return data

        return real_thin(self, reader, None, *args, **kwargs)

    def add_pack_data(self: Any, count: int, unpacked: Iterator[Any], *args: Any,
                      **kwargs: Any) -> Any:
        def objects() -> Iterator[Any]:
            for i, obj in enumerate(unpacked):
                if i >= count // 2:
                    countdown.tick()
                yield obj

        return real_data(self, count, objects(), *args, **kwargs)

    store.add_thin_pack = add_thin_pack  # type: ignore[method-assign]
    store.add_pack_data = add_pack_data  # type: ignore[method-assign]


def torn_journal(k: int) -> None:
    """The K-th journal append writes half its line, then the process dies."""
    real: Callable[[int, bytes], None] = journal.write_all
    countdown = Countdown(k)

    def write_half(fd: int, data: bytes) -> None:
        if countdown.left <= 0:
            os.write(fd, data[: max(1, len(data) // 2)])
            os.fsync(fd)
        countdown.tick()
        real(fd, data)

    journal.write_all = write_half


def _deployed(self: Any, event: Any, *args: Any, **kwargs: Any) -> bool:
    return bool(event.kind == "deployed")  # Journal.append takes a typed event


POINTS: dict[str, Callable[[int], None]] = {
    "mid-fetch": mid_fetch,
    "after-fetch": lambda k: before(source.Source, "_bound_packs", k),
    "before-stage": lambda k: before(stage, "stage_release", k),
    "mid-stage": lambda k: before(store, "write_new", k),
    "mid-place": lambda k: before(store.Store, "_place_one", k),
    "mid-link": lambda k: before(staging, "_link_skill", k),
    "manifest-write": lambda k: before(staging, "write_manifest", k),
    "before-flip": lambda k: before(release.Releases, "flip", k),
    "after-flip": lambda k: before(golive.GoLive, "publish", k),
    "mid-publish": lambda k: before(publish, "_place", k),
    "publish-claim": lambda k: before(publish.Mirror, "_save", k),
    "publish-remove": lambda k: before(publish.Mirror, "_remove_skill", k),
    "before-check": lambda k: before(golive.GoLive, "check", k),
    # inside the pre-flip command (SKILLSYNC_PRE_FLIP_COMMAND, sync/veto.py): before it starts,
    # while it runs (skillsyncd dies, the command goes on), and once it said yes, before the flip
    "before-veto": lambda k: before(veto, "_spawn", k),
    "mid-veto": lambda k: before(veto, "_wait", k),
    "after-veto": lambda k: after(veto, "_tail", k),
    "journal-then-state": lambda k: after(journal.Journal, "append", k, when=_deployed),
    "before-state": lambda k: before(ledger, "save_state", k),
    "mid-journal": torn_journal,
    "before-prune": lambda k: before(retention, "prune", k),
    "mid-prune": lambda k: before(release, "_force_remove", k),
    "mid-collect": lambda k: before(store, "_force_remove", k),
}

_MUTATIONS = ("fsync", "write", "rename", "replace", "link", "symlink", "unlink", "mkdir",
              "rmdir", "ftruncate")


def syscall(n: int) -> None:
    """Die before the N-th file-system mutation made through the ``os`` module."""
    seen = {"n": 0}
    count_file = os.environ.get("CHAOS_COUNT_FILE")
    if count_file:
        def report() -> None:
            Path(count_file).write_text(str(seen["n"]))
        atexit.register(report)

    def wrap(name: str) -> None:
        real: Callable[..., Any] = getattr(os, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen["n"] += 1
            if seen["n"] == n:
                die()
            return real(*args, **kwargs)

        setattr(os, name, wrapper)

    for name in _MUTATIONS:
        wrap(name)


def arm(spec: str) -> None:
    kind, _, rest = spec.partition(":")
    if kind == "none":
        syscall(0)  # counts only: 0 never matches
    elif kind == "syscall":
        syscall(int(rest))
    elif kind == "point":
        name, _, k = rest.partition(":")
        POINTS[name](int(k or 0))
    else:
        raise SystemExit(f"unknown kill spec {spec!r}")


if __name__ == "__main__":
    arm(sys.argv[1])
    sys.exit(main(sys.argv[2:]))
