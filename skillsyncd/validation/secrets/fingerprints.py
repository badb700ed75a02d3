"""A hit, and the keyed fingerprint that names it without holding it.

A hit is reported by a keyed fingerprint (HMAC-SHA256 with a per-state-dir random key),
never by its value, so a log reader cannot confirm a guessed password offline.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

KEY_FILE = "fingerprint.key"


@dataclass(frozen=True)
class Hit:
    rule: str
    line: int
    secret: str = field(repr=False)  # never printed, logged or stored
    label: str
    shown: str = ""  # a public prefix that names the format ('ghp_'), never secret material

    def fingerprint(self, key: bytes) -> str:
        return fingerprint(self.secret, key, self.shown)


def fingerprint(secret: str, key: bytes, shown: str = "") -> str:
    """``shown…`` + 12 hex of HMAC-SHA256(key, secret): stable per key, useless without it."""
    digest = hmac.new(key, secret.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return f"{shown}…{digest[:12]}"


def legacy_digest(secret: str) -> str:
    """The unkeyed digest older .skillsync-allow files list (first 12 hex of SHA-256)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:12]


_PROCESS_KEY = os.urandom(32)
_KEYS: dict[Path, bytes] = {}
_KEYS_LOCK = threading.Lock()


def fingerprint_key(state_dir: Path | str | None) -> bytes:
    """The state dir's fingerprint key (``<state_dir>/fingerprint.key``, 0600), created
    atomically on first use; a random per-process key when there is no usable state dir
    (``skillsyncd validate PATH`` in CI). The key is never logged."""
    if state_dir is None:
        return _PROCESS_KEY
    folder = Path(state_dir)
    with _KEYS_LOCK:
        if folder in _KEYS:
            return _KEYS[folder]
        key = _load_or_create_key(folder)
        if key is None:
            return _PROCESS_KEY  # not cached: the state dir may appear later
        _KEYS[folder] = key
        return key


def _load_or_create_key(folder: Path) -> bytes | None:
    path = folder / KEY_FILE
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data[:32]
    except FileNotFoundError:
        pass
    except OSError:
        return None
    if not folder.is_dir():
        return None
    tmp = folder / f".{KEY_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, os.urandom(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(tmp, path)  # atomic: readers never see a half-written key
        data = path.read_bytes()
        return data[:32] if len(data) >= 32 else None
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
