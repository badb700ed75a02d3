"""The audit journal: append-only JSON lines under the state dir, fsynced per event.

The journal is the record of truth; Neo4j is a replica of it. Every event gets a
unique ``id`` and a ``seq`` that grows by one across rotations, so a shipper can
keep a single integer cursor. Appends take an exclusive ``flock`` so the daemon
and a concurrent CLI command never interleave or reuse a sequence number.

A crash mid-append can leave a torn last line (no newline). That event was never
acknowledged (its ``append`` did not return), so the next append cuts it off
before writing; readers skip it too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import json
import os
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import structlog

from skillsyncd.audit.events import Deployed, JournalEvent, decode, to_line
from skillsyncd.errors import SkillsyncError
from skillsyncd.fsutil import fsync_dir, write_all

log = structlog.get_logger(__name__)

ROTATE_BYTES = 16 * 1024 * 1024
KEEP_SEGMENTS = 20
_TAIL_CHUNK = 64 * 1024
_SEGMENT = re.compile(r"^journal-(\d{12})\.jsonl$")


class JournalError(SkillsyncError):
    """The journal cannot be written: the sync must not report success."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Journal:
    """Append and read audit events; rotate without dropping what is not yet shipped.

    ``shipped`` tells rotation how far a replica (the Neo4j sink) has got: a
    rotated segment is deleted only when every event in it is shipped and more
    than ``keep_segments`` segments exist. Without a replica, ``shipped`` is None
    and the newest ``keep_segments`` segments are kept.
    """

    def __init__(
        self,
        path: Path,
        replica: str | None = None,
        rotate_bytes: int = ROTATE_BYTES,
        keep_segments: int = KEEP_SEGMENTS,
        shipped: Callable[[], int | None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.replica = replica or socket.gethostname()
        self.rotate_bytes = rotate_bytes
        self.keep_segments = keep_segments
        self.shipped = shipped
        self._listeners: list[Callable[[JournalEvent], None]] = []

    # -- writing --------------------------------------------------------------

    def subscribe(self, listener: Callable[[JournalEvent], None]) -> None:
        """Call ``listener(event)`` after each durable append (e.g. to wake a shipper)."""
        self._listeners.append(listener)

    def append(self, event: JournalEvent) -> JournalEvent:
        """Write one event durably and return it with its id, seq, time and replica;
        raise JournalError if that is impossible."""
        created = not self.path.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = _open_locked(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
        except OSError as exc:
            raise JournalError(f"cannot open audit journal {self.path}: {exc.strerror}; "
                               "check that the state dir is writable") from exc
        try:
            last = _repair_tail(fd)
            if last is None:
                last = self._last_rotated_seq()
            event = dataclasses.replace(event, id=uuid.uuid4().hex, seq=(last or 0) + 1,
                                        timestamp=now_iso(), replica=self.replica)
            line = (to_line(event) + "\n").encode("utf-8")
            write_all(fd, line)
            os.fsync(fd)
            if created:
                fsync_dir(self.path.parent)
            size = os.fstat(fd).st_size
        except OSError as exc:
            raise JournalError(f"cannot write audit journal {self.path}: {exc.strerror}; "
                               "the sync is not reported as successful") from exc
        finally:
            os.close(fd)  # also drops the flock
        if size >= self.rotate_bytes:
            try:
                self._rotate()
            except OSError as exc:  # the event is durable; rotation retries on the next append
                log.warning("journal_rotate_failed", error=exc.strerror)
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                listener(event)
        return event

    def _rotate(self) -> None:
        """Rename the active file to a segment named by its first seq; prune shipped segments."""
        try:
            fd = _open_locked(self.path, os.O_RDWR)
        except FileNotFoundError:
            return
        try:
            if os.fstat(fd).st_size < self.rotate_bytes:
                return  # another process rotated it first
            first = next(_events_in(self.path), None)
            if first is None:
                return
            target = self.path.with_name(f"journal-{int(first['seq']):012d}.jsonl")
            os.rename(self.path, target)
            fsync_dir(self.path.parent)
            log.info("journal_rotated", segment=target.name)
        finally:
            os.close(fd)
        self.prune()

    def prune(self) -> None:
        """Delete the oldest segments beyond ``keep_segments``, but never an unshipped one."""
        segments = self.segments()
        if len(segments) <= self.keep_segments:
            return
        shipped = self.shipped() if self.shipped is not None else None
        prunable = len(segments) - self.keep_segments
        for old, newer in list(itertools.pairwise(segments))[:prunable]:
            last_in_old = _segment_first_seq(newer) - 1
            if shipped is not None and shipped < last_in_old:
                break  # not yet replicated: keep it (and everything after it)
            try:
                old.unlink()
            except FileNotFoundError:
                continue  # another process pruned it
            log.info("journal_segment_pruned", segment=old.name)

    # -- reading --------------------------------------------------------------

    def segments(self) -> list[Path]:
        """Rotated segments, oldest first."""
        if not self.path.parent.is_dir():
            return []
        found = [p for p in self.path.parent.iterdir() if _SEGMENT.match(p.name)]
        return sorted(found, key=_segment_first_seq)

    def read(self, after: int = 0) -> Iterator[JournalEvent]:
        """Every complete event with ``seq > after``, oldest first, across segments.

        All files are opened before any is read, and the listing is retried if a
        rotation moved a file meanwhile: a reader never skips a just-rotated segment.
        """
        files = self._open_snapshot()
        try:
            for i, (path, fh) in enumerate(files):
                if i + 1 < len(files) - 1 and _segment_first_seq(files[i + 1][0]) - 1 <= after:
                    continue  # the whole segment is at or before the cursor
                for raw in _events_from(fh, path):
                    event = decode(raw)
                    if event.seq > after:
                        yield event
        finally:
            for _path, fh in files:
                fh.close()

    def _open_snapshot(self) -> list[tuple[Path, BinaryIO]]:
        """Open the segments and the active file as one consistent set (segments first)."""
        while True:
            before = self.segments()
            handles: list[tuple[Path, BinaryIO]] = []
            try:
                for path in before:
                    handles.append((path, path.open("rb")))
                with contextlib.suppress(FileNotFoundError):
                    handles.append((self.path, self.path.open("rb")))
            except FileNotFoundError:  # pruned under us: list again
                for _path, fh in handles:
                    fh.close()
                continue
            if self.segments() == before:
                return handles
            for _path, fh in handles:  # rotated under us: list again
                fh.close()

    def last_seq(self) -> int:
        """The seq of the newest durable event (0 for an empty journal)."""
        last = _last_event(self.path)
        if last is not None:
            return int(last["seq"])
        return self._last_rotated_seq() or 0

    def journalled(self, release: str) -> bool:
        """Whether a ``deployed`` event for ``release`` exists (crash recovery asks this)."""
        for path in [self.path, *reversed(self.segments())]:
            for raw in _events_in(path):
                event = decode(raw)
                if isinstance(event, Deployed) and event.release == release:
                    return True
        return False

    def _last_rotated_seq(self) -> int | None:
        segments = self.segments()
        if not segments:
            return None
        last = _last_event(segments[-1])
        return int(last["seq"]) if last else None


# --- helpers -------------------------------------------------------------------


def _repair_tail(fd: int) -> int | None:
    """Cut a torn last line; return the seq of the last complete event (None if empty)."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        keep = _line_start(fd, size)
        os.ftruncate(fd, keep)
        os.fsync(fd)
        log.warning("journal_torn_tail_repaired", dropped_bytes=size - keep)
    last = _last_event_fd(fd)
    return int(last["seq"]) if last is not None else None


def _line_start(fd: int, end: int) -> int:
    """Offset just after the last newline before ``end`` (0 if there is none)."""
    pos = end
    while pos > 0:
        lo = max(0, pos - _TAIL_CHUNK)
        chunk = os.pread(fd, pos - lo, lo)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            return lo + cut + 1
        pos = lo
    return 0


def _last_event_fd(fd: int) -> dict[str, Any] | None:
    """The newest complete, parseable event in an open journal file."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        size = _line_start(fd, size)  # ignore a torn tail
    while size > 0:
        begin = _line_start(fd, size - 1)
        with contextlib.suppress(ValueError):
            event = json.loads(os.pread(fd, size - begin, begin))
            if isinstance(event, dict) and "seq" in event:
                return event
        size = begin
    return None


def _events_in(path: Path) -> Iterator[dict[str, Any]]:
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        yield from _events_from(fh, path)


def _events_from(fh: BinaryIO, path: Path) -> Iterator[dict[str, Any]]:
    for raw in fh:
        if not raw.endswith(b"\n"):
            return  # torn tail: never acknowledged
        try:
            event = json.loads(raw)
        except ValueError:
            log.warning("journal_bad_line", file=path.name)
            continue
        if isinstance(event, dict) and isinstance(event.get("seq"), int):
            yield event
        else:
            log.warning("journal_bad_line", file=path.name)


def _open_locked(path: Path, flags: int) -> int:
    """Open ``path`` and take its exclusive flock, making sure it was not rotated meanwhile.

    Another process may rename the file to a segment between our open and our
    lock; appending to that inode would put an event in a closed segment and
    could reuse a seq, so reopen until the locked inode is the one at ``path``.
    """
    while True:
        fd = os.open(path, flags, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev):
            return fd
        os.close(fd)


def _last_event(path: Path) -> dict[str, Any] | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return _last_event_fd(fd)
    finally:
        os.close(fd)


def _segment_first_seq(path: Path) -> int:
    match = _SEGMENT.match(path.name)
    return int(match.group(1)) if match else 0
