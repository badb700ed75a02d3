"""Exception types, each carrying the CLI exit code it maps to.

Exit codes are a documented contract (README, "Exit codes"):
0 deployed or nothing to do, 1 sync failed, 2 usage or config error,
3 lock busy, 4 validation rejected (or refused by the pre-flip command),
5 frozen (``--once`` staged a commit that a freeze keeps from going live).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_SYNC_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCK_BUSY = 3
EXIT_REJECTED = 4
EXIT_FROZEN = 5


class SkillsyncError(Exception):
    """Base class: every error skillsyncd raises on purpose."""

    exit_code = EXIT_SYNC_FAILED


class ConfigError(SkillsyncError):
    """The configuration is missing something or holds a bad value."""

    exit_code = EXIT_USAGE


class LockBusy(SkillsyncError):
    """Another syncer holds the deployment lock."""

    exit_code = EXIT_LOCK_BUSY


class SourceError(SkillsyncError):
    """The remote could not be reached, refused us, or sent something unusable."""


class RefNotFound(SourceError):
    """The configured ref does not exist on the remote."""


class ReleaseError(SkillsyncError):
    """A release could not be staged, flipped or found."""


class ValidationRejected(SkillsyncError):
    """The commit was refused as a whole (policy on_invalid=reject)."""

    exit_code = EXIT_REJECTED
