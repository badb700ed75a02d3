"""Drift repair: notice hand edits and debris in the published folder, and put the live release back.

The gateway reads the published folder (mirror mode). A watcher (watchfiles)
on that folder sees every change; after a batch settles, the skills it touched
are compared with the live release (stat and bytes, as publishing does). A
difference skillsyncd did not make is ``drift_detected`` (logged with the
paths, counted in ``skillsync_drift_total``) and, with ``drift = repair`` (the
default), published again, which restores exactly those skills. Folders
skillsyncd does not own are reported and never touched.

Checks run under the deploy lock, so a sync's own publish has finished (and
left nothing to find) before its events are judged. A release's skill folder may
be a link into ``<state>/store``; it is compared through that link. Drift is
watched in mirror mode only: releases themselves are read-only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog

from skillsyncd.config import Config
from skillsyncd.errors import SkillsyncError
from skillsyncd.release.releases import Releases

log = structlog.get_logger(__name__)

MODES = ("repair", "report", "off")
DEBOUNCE_MS = 100  # a batch of events settles this long before it is judged
LOCK_WAIT = 60.0  # seconds a check waits for a running sync to finish


@dataclass(frozen=True)
class Drift:
    """What a check found: owned skills that differ from the release, and foreign entries."""

    damaged: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.damaged or self.foreign)


def owner_of(path: str, owned: Collection[str]) -> str | None:
    """The owned skill a path (relative to the published folder) belongs to, if any.

    Looks up the path's own prefixes (a skill is at most a few folders deep), so a
    first publish of 10,000 skills (20,000 paths) costs set lookups, not a scan of
    every owned name per path.
    """
    names = owned if isinstance(owned, set | frozenset | dict) else set(owned)
    parts = path.split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        if prefix in names:
            return prefix
    return None


def classify(paths: Iterable[str], owned: Iterable[str], internal: Callable[[str], bool]
             ) -> tuple[set[str], set[str]]:
    """Split changed paths into the owned skills they touch and foreign top-level entries (pure).

    The published folder itself (``.``) is nobody's: an event on it is an attribute
    change (the image's ``chown -R`` at start-up, a no-op), and a real change of its
    entries shows up under their own paths.
    """
    names = set(owned)
    groups = {n.rsplit("/", i)[0] for n in names for i in range(1, n.count("/") + 1)}
    touched: set[str] = set()
    foreign: set[str] = set()
    for p in paths:
        if not p or p == "." or internal(p):
            continue
        name = owner_of(p, names)
        if name is not None:
            touched.add(name)
        elif p not in groups:  # a grouped skill's group folder is nobody's
            foreign.add(p.split("/", 1)[0])
    return touched, foreign


class DriftWatcher:
    """A thread watching the published folder; see the module docstring."""

    def __init__(self, cfg: Config, count: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.count = count or (lambda _kind: None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reported_foreign: set[str] = set()
        self.batches = 0  # change batches seen (ours included): lets a caller tell it is live

    @property
    def root(self) -> Path | None:
        return self.cfg.publish_dir if self.cfg.publish_mode == "mirror" else None

    def start(self) -> None:
        if self.cfg.drift == "off" or self.root is None:
            return
        self._thread = threading.Thread(target=self._run, name="skillsync-drift", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        import watchfiles

        root = self.root
        assert root is not None
        while not self._stop.is_set() and not root.is_dir():
            self._stop.wait(1.0)  # created by the first publish
        log.info("drift_watch_started", dir=str(root), mode=self.cfg.drift)
        try:
            for changes in watchfiles.watch(root, stop_event=self._stop, debounce=DEBOUNCE_MS, step=50,
                                            raise_interrupt=False, recursive=True):
                self.batches += 1
                paths = {self._relative(Path(p)) for _, p in changes}
                self.check(p for p in paths if p is not None)
        except Exception as exc:  # the watcher must never take the daemon down
            log.error("drift_watch_failed", error=str(exc), exc_type=type(exc).__name__)

    def _relative(self, path: Path) -> str | None:
        root = self.root
        try:
            return path.relative_to(root).as_posix() if root is not None else None
        except ValueError:
            return None

    def check(self, paths: Iterable[str]) -> Drift:
        """Judge changed paths against the live release; report and repair. Returns what was found."""
        from skillsyncd.publish.publisher import (
            MARKER_PREFIX,
            OWNERSHIP_FILE,
            TMP_DIR,
            Mirror,
            _intact,
            load_owned,
            skill_source,
        )
        from skillsyncd.sync.lock import DeployLock

        root = self.root
        if root is None:
            return Drift()
        paths = list(paths)
        try:
            with DeployLock(self.cfg, timeout=LOCK_WAIT):
                releases = Releases(self.cfg.state_dir)
                current = releases.current()
                if current is None:
                    return Drift()
                owned = load_owned(self.cfg.state_dir / OWNERSHIP_FILE, root)
                touched, foreign = classify(
                    paths, owned, lambda p: p.startswith((MARKER_PREFIX, TMP_DIR)))
                release_dir = releases.dir(current)
                damaged = tuple(sorted(n for n in touched
                                       if not _intact(skill_source(release_dir, n), root / n)))
                new_foreign = tuple(sorted(f for f in foreign
                                           if f not in self.reported_foreign and (root / f).exists()))
                found = Drift(damaged, new_foreign)
                if not found:
                    return found
                self.reported_foreign |= set(new_foreign)
                log.warning("drift_detected", dir=str(root), skills=list(damaged), foreign=list(new_foreign),
                            paths=sorted(paths)[:20], release=current, mode=self.cfg.drift,
                            hint="foreign folders are never touched" if new_foreign else None)
                for kind, items in (("skill", damaged), ("foreign", new_foreign)):
                    for _ in items:
                        self.count(kind)
                if damaged and self.cfg.drift == "repair":
                    start = time.monotonic()
                    mirror = Mirror(root, self.cfg.state_dir / OWNERSHIP_FILE, self.cfg.publish_marker)
                    result = mirror.sync(release_dir, releases.manifest(current), recheck=True)
                    log.info("drift_repaired", skills=list(damaged), release=current,
                             changed=list(result.changed), added=list(result.added),
                             duration=round(time.monotonic() - start, 3))
                return found
        except (SkillsyncError, OSError) as exc:
            log.error("drift_check_failed", error=str(exc), exc_type=type(exc).__name__)
            return Drift()


__all__ = ["MODES", "Drift", "DriftWatcher", "classify", "owner_of"]
