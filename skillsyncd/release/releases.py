"""Releases on disk: paths, the manifest of each, the flip of ``current``, recovery, retention.

Layout (README "On-disk contract"):
    store/<sha>/...                     skill versions, read-only, each stored once
    releases/<id>/<skill> -> ../../store/<sha>   one relative link per live skill
    releases/<id>.json                  the manifest; a release without one is incomplete
    current -> releases/<id>            relative symlink, replaced only by rename(2)

Staging is release/staging.py, verification release/verify.py. Releases written
by 0.1.0 hold real skill folders instead of links; they stay valid (readable,
verifiable, a rollback target) until retention removes them.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from skillsyncd.errors import ReleaseError
from skillsyncd.fsutil import fsync_dir, replace_symlink
from skillsyncd.release.manifest import Manifest, live_shas_in, read_manifest
from skillsyncd.release.store import Store, _force_remove

log = structlog.get_logger(__name__)

RELEASE_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{12}$")
# fsutil.atomic_write's temp names for the files written under the deploy lock:
# "." + target name + "." + mkstemp's 8 chars + ".tmp". Others (the Neo4j cursor)
# are written outside the lock, so their temp files are not ours to remove.
_ATOMIC_TMP = re.compile(r"^\.(state|published)\.json\.[a-z0-9_]{8}\.tmp$")
_CURRENT_TMP = re.compile(r"^\.current\.tmp-\d+$")


# The last parsed manifest by (path, size, mtime, inode): the live one, read on every poll.
_MANIFESTS: dict[tuple[str, int, int, int], Manifest] = {}
_MANIFESTS_KEPT = 1
_MANIFESTS_LOCK = threading.Lock()


def new_release_id(commit: str, now: float | None = None) -> str:
    stamp = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    return f"{stamp:%Y%m%dT%H%M%SZ}-{commit[:12]}"


def commit_of(release_id: str) -> str:
    """The (abbreviated) commit a release id names."""
    return release_id.rsplit("-", 1)[-1]


@dataclass(frozen=True)
class Releases:
    """Paths of one state dir's releases."""

    state_dir: Path

    @property
    def root(self) -> Path:
        return self.state_dir / "releases"

    @property
    def current_link(self) -> Path:
        return self.state_dir / "current"

    @property
    def store(self) -> Store:
        return Store(self.state_dir)

    def dir(self, release_id: str) -> Path:
        return self.root / release_id

    def manifest_path(self, release_id: str) -> Path:
        return self.root / f"{release_id}.json"

    # --- reading ----------------------------------------------------------------

    def complete(self) -> list[str]:
        """Ids of complete releases (folder and manifest), oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if RELEASE_ID_RE.match(p.name) and p.is_dir() and self.manifest_path(p.name).is_file()
        )

    def current(self) -> str | None:
        """The release ``current`` points at, if it is a complete release."""
        try:
            target = os.readlink(self.current_link)
        except OSError:
            return None
        name = Path(target).name
        if (
            Path(target).parent.name == "releases"
            and RELEASE_ID_RE.match(name)
            and self.dir(name).is_dir()
            and self.manifest_path(name).is_file()
        ):
            return name
        return None

    def manifest(self, release_id: str) -> Manifest:
        """The release's manifest (the one reader of ``releases/<id>.json``).

        Manifests are immutable, so the last few parsed are kept, keyed by path,
        size and mtime: a daemon's poll does not re-parse 10,000 skills each time.
        """
        path = self.manifest_path(release_id)
        try:
            st = os.stat(path)
            key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
            with _MANIFESTS_LOCK:
                cached = _MANIFESTS.get(key)
            if cached is not None:
                return cached
            manifest = read_manifest(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReleaseError(f"release {release_id} has no readable manifest: {exc}") from exc
        with _MANIFESTS_LOCK:  # the daemon's HTTP thread reads manifests too
            _MANIFESTS[key] = manifest
            while len(_MANIFESTS) > _MANIFESTS_KEPT:
                del _MANIFESTS[next(iter(_MANIFESTS))]
        return manifest

    # --- writing ----------------------------------------------------------------

    def flip(self, release_id: str) -> None:
        """Point ``current`` at a complete release, atomically."""
        if not self.manifest_path(release_id).is_file() or not self.dir(release_id).is_dir():
            raise ReleaseError(f"refusing to flip to incomplete release {release_id}")
        replace_symlink(self.current_link, f"releases/{release_id}")

    def unflip(self) -> None:
        """Remove ``current``: nothing is live (a first deploy that failed after its flip)."""
        with contextlib.suppress(FileNotFoundError):
            self.current_link.unlink()
        fsync_dir(self.state_dir)

    def recover(self) -> list[str]:
        """Remove what a crash can leave: incomplete releases and temp files/links."""
        removed: list[str] = []
        # A flip's temp link, and atomic_write's temp files (state.json, published.json)
        # orphaned by a kill between mkstemp and rename: without this they pile up.
        if self.state_dir.is_dir():
            for tmp in self.state_dir.iterdir():
                if _CURRENT_TMP.match(tmp.name) or (_ATOMIC_TMP.match(tmp.name) and tmp.is_file()):
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
                        removed.append(tmp.name)
        removed += self.store.recover()
        if not self.root.is_dir():
            return removed
        for path in self.root.iterdir():
            name = path.name
            temp = name.startswith(".")  # a temp manifest from atomic_write
            if temp or (path.is_dir() and not self.manifest_path(name).is_file()):
                _force_remove(path)
                removed.append(name)
            elif name.endswith(".json") and not self.dir(name[:-5]).is_dir():
                path.unlink()
                removed.append(name)
        if removed:
            fsync_dir(self.root)
        return removed

    def delete(self, release_id: str) -> None:
        """Delete a release: manifest first, so a crash leaves only an incomplete leftover.

        Its skill versions stay in the store until ``collect`` finds no release using them.
        """
        with contextlib.suppress(FileNotFoundError):
            self.manifest_path(release_id).unlink()
        fsync_dir(self.root)
        _force_remove(self.dir(release_id))

    def referenced(self) -> set[str]:
        """Content shas of every skill a complete release (or ``current``) serves."""
        wanted = set(self.complete())
        if (live := self.current()) is not None:
            wanted.add(live)
        shas: set[str] = set()
        for rid in wanted:
            try:
                shas.update(live_shas_in(self.manifest_path(rid)))
            except (OSError, ValueError) as exc:
                raise ReleaseError(f"release {rid} has no readable manifest: {exc}") from exc
        return shas

    def collect(self) -> list[str]:
        """Remove skill versions no complete release uses (retention's second half)."""
        store = self.store
        unused = store.shas() - self.referenced()
        return store.remove(sorted(unused))


def store_target(name: str, sha: str) -> str:
    """Where a release's link for skill ``name`` points: relative, so the state dir can move."""
    return "../" * (name.count("/") + 2) + f"store/{sha}"
