"""The deployment lock: one sync, rollback or drift repair per state dir at a time."""

from __future__ import annotations

import os

import filelock

from skillsyncd.config import Config
from skillsyncd.errors import LockBusy, ReleaseError
from skillsyncd.status import disk_error


class DeployLock:
    """filelock around a whole sync; records the holder's pid beside the lock."""

    def __init__(self, cfg: Config, timeout: float | None = None) -> None:
        self.cfg = cfg
        self.timeout = cfg.lock_timeout if timeout is None else timeout
        self.owner_file = cfg.lock_owner_file
        self._lock = filelock.FileLock(str(cfg.lock_file), timeout=self.timeout)

    def __enter__(self) -> DeployLock:
        try:
            self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except filelock.Timeout as exc:
            raise LockBusy(
                f"another skillsyncd (pid {self.holder() or 'unknown'}) holds "
                f"{self.cfg.lock_file} after waiting {self.timeout:.0f}s; "
                "retry later or raise SKILLSYNC_LOCK_TIMEOUT"
            ) from exc
        except OSError as exc:
            raise ReleaseError(disk_error(exc, self.cfg.state_dir)) from exc
        try:
            self.owner_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
        except OSError as exc:
            self._lock.release()
            raise ReleaseError(disk_error(exc, self.cfg.state_dir)) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def holder(self) -> str | None:
        try:
            return self.owner_file.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None
