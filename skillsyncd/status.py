"""What is deployed and how the last sync went, read from disk; and what the disk itself says.

Shared by ``skillsyncd status`` and the daemon's ``/status`` (no import of the CLI
from the daemon, nor the other way round). Reading never needs a writable state
dir; :func:`probe_dir` says whether it is writable and how much room is left, so
a full or read-only volume shows up even when state.json could not record it.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skillsyncd.config import Config
from skillsyncd.release.manifest import Manifest
from skillsyncd.release.releases import Releases
from skillsyncd.sync.freeze import active_freeze
from skillsyncd.sync.state import State, load_state
from skillsyncd.sync.windows import window_view


def filesystem_of(path: Path) -> Path:
    """The mount point holding ``path`` (or its nearest existing parent)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(filesystem_of(path)).free
    except OSError:
        return None


def _human(n: int | None) -> str:
    if n is None:
        return "an unknown amount"
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"  # pragma: no cover


def disk_error(exc: OSError, fallback: Path) -> str:
    """An OSError met while syncing, naming the path that failed and what to do about it.

    The path is the one the error carries (the publish dir, a release, the state
    dir), so the message points at the right volume.
    """
    path = Path(exc.filename) if isinstance(exc.filename, str | os.PathLike) else fallback
    if exc.errno == errno.ENOSPC:
        fs = filesystem_of(path)
        hint = (f"filesystem {fs} is full ({_human(free_bytes(fs))} free): "
                "free space on that filesystem")
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = f"make {path.parent if path.suffix else path} writable by uid {os.getuid()}"
    elif exc.errno in (errno.ENOTDIR, errno.ENAMETOOLONG, errno.ENOENT):
        hint = f"check the path {path}"
    else:
        hint = f"check {path}"
    return f"disk error: {exc}; {hint}, and the next sync retries"


@dataclass(frozen=True)
class DirHealth:
    path: str
    writable: bool
    filesystem: str
    free_bytes: int | None
    problem: str | None


def _try_write(path: Path) -> None:
    """Create and remove one small file in ``path`` (raises OSError when it cannot)."""
    probe = path / f".probe-{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)
        os.unlink(probe)


# Below this much room a release of a few thousand skills no longer fits.
LOW_SPACE = 16 * 1024 * 1024


def probe_dir(path: Path) -> DirHealth:
    """Whether ``path`` is writable and how much room its filesystem has."""
    fs = filesystem_of(path)
    free = free_bytes(path)
    problem = None
    writable = True
    if path.is_dir():
        try:
            _try_write(path)
        except OSError as exc:
            writable = False
            problem = f"{path} is not writable: {exc.strerror or exc}"
    if problem is None and free is not None and free < LOW_SPACE:
        problem = f"filesystem {fs} has {_human(free)} free"
    return DirHealth(str(path), writable, str(fs), free, problem)


def state_dir_probes(cfg: Config) -> list[DirHealth]:
    """The state dir itself first, then its store/ and releases/ folders when each is a
    volume of its own."""
    checks = [probe_dir(cfg.state_dir)]
    releases = Releases(cfg.state_dir)
    for folder in (releases.store.root, releases.root):
        if folder.is_dir() and os.stat(folder).st_dev != os.stat(cfg.state_dir).st_dev:
            checks.append(probe_dir(folder))
    return checks


def worst(checks: list[DirHealth]) -> dict[str, Any]:
    """``state_dir_health``: the first probe with a problem, else the state dir's."""
    return asdict(next((c for c in checks if c.problem), checks[0]))


@dataclass(frozen=True)
class Traces:
    """What the state dir shows of syncs that could not record their outcome."""

    state_written: float | None  # state.json's mtime: the last outcome on record
    lock_taken: float | None  # skillsyncd.lock.owner's mtime: the last sync (or repair) to start
    holder_alive: bool  # the pid in skillsyncd.lock.owner is a running process


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def pid_alive(pid_text: str | None) -> bool:
    try:
        pid = int(pid_text or "")
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


def read_traces(cfg: Config) -> Traces:
    owner = cfg.lock_owner_file
    try:
        holder: str | None = owner.read_text(encoding="utf-8").strip()
    except OSError:
        holder = None
    return Traces(_mtime(cfg.state_file), _mtime(owner), pid_alive(holder))


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def failure_view(state: State, health: dict[str, Any], traces: Traces) -> dict[str, Any]:
    """``last_error``, where it comes from, and ``failure_streak`` (pure).

    state.json holds them, but a sync on a full or read-only state volume cannot write
    it. Then the error is derived from the probe (and says so), and a sync that took the
    lock after state.json was last written, or a live lock holder (a daemon that keeps
    polling), counts as one failure not on record: the streak is at least that.
    """
    if health.get("writable", True):
        return {"last_error": state.last_error,
                "last_error_source": "state.json" if state.last_error else None,
                "failure_streak": state.failure_streak}
    unrecorded = traces.lock_taken is not None and (
        traces.state_written is None or traces.lock_taken > traces.state_written)
    parts = [f"derived, not on record: {health['problem']}, so no sync can record its outcome "
             f"in {health['path']}"]
    if unrecorded and traces.lock_taken is not None:
        parts.append(f"a sync took the lock at {_iso(traces.lock_taken)} and left no record")
    elif traces.holder_alive:
        parts.append("the process holding the lock keeps trying")
    if state.last_error:
        parts.append(f"last error on record: {state.last_error}")
    return {"last_error": "; ".join(parts), "last_error_source": "derived",
            "failure_streak": state.failure_streak + (1 if unrecorded or traces.holder_alive else 0)}


def status_dict(cfg: Config) -> dict[str, Any]:
    """``skillsyncd status --json``."""
    releases = Releases(cfg.state_dir)
    state = load_state(cfg.state_file)
    probes = state_dir_probes(cfg)
    current = releases.current()
    manifest: Manifest | None = releases.manifest(current) if current else None
    skills = manifest.live if manifest else ()
    behind = None
    if state.upstream_commit:
        deployed = manifest.commit if manifest else None
        behind = state.upstream_commit != deployed
        if not behind and state.failure_streak:
            behind = None  # the last syncs could not ask the remote: unknown, not "no"
    freeze = active_freeze(cfg)
    waiting = {k: v for k, v in (state.waiting or {}).items() if k != "settings"} or None
    window = window_view(cfg.sync_windows, datetime.now(UTC))
    return {
        "state_dir": str(cfg.state_dir),
        "current_release": current,
        "deployed_commit": manifest.commit if manifest else None,
        "source": (manifest.source if manifest else None) or state.source,
        "ref": cfg.ref,
        "tag": manifest.tag if manifest else None,  # the tag a channel ref deployed
        "skills_live": len(skills),
        "skills_held_back": list(manifest.validation.held_back) if manifest else [],
        # What the gateway will list: its name (the folder's when SKILL.md has none) and description.
        "skills": [{"folder": s.name, "name": s.gateway_name, "description": s.description,
                    "version": s.version} for s in skills],
        # What the repository holds that the release does not (a skills/ set, a root SKILL.md, ...).
        "layout": [{"rule": f.rule, "path": f.path, "message": f.message}
                   for f in (manifest.layout if manifest else ())],
        "upstream_commit": state.upstream_commit,
        "behind_upstream": behind,
        "behind_reason": state.bad_commits.get(state.upstream_commit or "")
        or ("rejected by validation" if state.rejected_commit == state.upstream_commit
            and state.rejected_commit else None)
        or ("waiting: deployments are frozen" if freeze and waiting
            and waiting.get("commit") == state.upstream_commit else None)
        or (f"waiting: {window['reason']}" if window and not window["open"] and waiting
            and waiting.get("commit") == state.upstream_commit else None),
        # the operator's freeze in effect (sync/freeze.py), and the commit it keeps waiting
        "freeze": freeze.to_dict() if freeze else None,
        "waiting": waiting,
        # the sync windows (sync/windows.py): open or closed now, why, and the next change
        "sync_window": window,
        "bad_commits": state.bad_commits,
        "last_attempt": state.last_attempt,
        "last_success": state.last_success,
        # state.json lives in the state dir itself: its probe says whether it could be written
        **failure_view(state, asdict(probes[0]), read_traces(cfg)),
        "releases": len(releases.complete()),
        "state_dir_health": worst(probes),
        "created": manifest.created if manifest else None,
    }


def status_lines(info: Mapping[str, Any]) -> list[str]:
    """``skillsyncd status`` as text, from :func:`status_dict`'s document (pure)."""
    out: list[str] = []
    if info["current_release"] is None:
        out.append(f"nothing deployed yet in {info['state_dir']}")
    else:
        out.append(f"release   {info['current_release']}")
        out.append(f"commit    {info['deployed_commit']}")
        tag = f", tag {info['tag']}" if info.get("tag") else ""
        out.append(f"source    {info['source']} ({info['ref']}{tag})")
        out.append(f"skills    {info['skills_live']} live"
                   + (f", held back: {', '.join(info['skills_held_back'])}"
                      if info["skills_held_back"] else ""))
    for f in info["layout"]:
        if f["rule"] in {"layout.skills-subfolder", "layout.root-skill-md", "layout.gateway-cap",
                         "layout.too-deep"}:
            out.append(f"layout    {f['path']}: {f['message']}")
    usage = [f for f in info["layout"] if f["rule"].startswith("usage.")]
    if usage:
        out.append(f"usage     {len(usage)} warning(s) on how agents get the skills, e.g. "
                   f"[{usage[0]['rule']}] {usage[0]['path']}; all in `skillsyncd status --json`")
    if info["behind_upstream"]:
        out.append(f"upstream  {info['upstream_commit']} (not deployed: "
                   f"{info['behind_reason'] or 'not synced yet'})")
    out.append(f"last sync {info['last_success'] or 'never'} succeeded; failure streak "
               f"{info['failure_streak']}")
    if info["last_error"]:
        out.append(f"error     {info['last_error']}")
    out += _freeze_lines(info)
    disk = info["state_dir_health"]
    if disk["problem"]:
        out.append(f"disk      {disk['problem']}")
    return out


def _freeze_lines(info: Mapping[str, Any]) -> list[str]:
    """The freeze in effect, the sync window and the commit they keep waiting."""
    out: list[str] = []
    freeze, waiting = info.get("freeze"), info.get("waiting")
    if freeze:
        out.append(f"frozen    since {freeze['since']} by {freeze['by']}"
                   + (f": {freeze['reason']}" if freeze["reason"] else "")
                   + f" (until {freeze['until'] or 'unfreeze'})")
    window = info.get("sync_window")
    if window:
        out.append(f"sync window {'open' if window['open'] else 'closed'} ({window['reason']}); "
                   f"next change {window['next_change'] or 'none within a year'}")
    if waiting:
        n = waiting.get("counts") or {}
        out.append(f"waiting   commit {str(waiting.get('commit'))[:12]} since {waiting.get('since')}: "
                   f"+{n.get('added', 0)} ~{n.get('changed', 0)} -{n.get('removed', 0)}"
                   + (f", {n['held_back']} held back" if n.get("held_back") else ""))
    return out
