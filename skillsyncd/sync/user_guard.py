"""Refuse to write as the wrong user: a root ``skillsyncd --once`` must not leave root-owned files.

In the container the daemon runs as ``moltbot`` and owns the state dir. Anything a
root shell's ``--once``, ``rollback``, ``freeze`` or ``unfreeze`` wrote there (or into the publish dir) would
be root's, and the daemon's next publish would fail with "Permission denied" until
someone chowns it. So a root process that finds the state dir owned by another user
stops before writing anything, with a one-line error saying how to run it instead.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from skillsyncd.errors import ConfigError


def owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def wrong_user(state_dir: Path, euid: int | None = None) -> str | None:
    """Why this process must not write to ``state_dir``, or None.

    Only root is refused (any other user simply cannot write where it must not), and
    only when the directory already belongs to someone else.
    """
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        return None
    try:
        owner = state_dir.stat().st_uid
    except OSError:
        return None
    if owner == 0:
        return None
    user = owner_name(owner)
    return (f"{state_dir} belongs to {user}, and files written as root would lock the daemon out: "
            f"run it as {user}, e.g. runuser -u {user} -- skillsyncd … "
            f"(or su {user} -s /bin/sh -c 'skillsyncd …')")


def require_owner(state_dir: Path) -> None:
    why = wrong_user(state_dir)
    if why is not None:
        raise ConfigError(why)


__all__ = ["require_owner", "wrong_user"]
