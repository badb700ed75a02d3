"""The fetch filter's ``blob:limit``: which blobs a fetch may leave out, and the mirror's record of it.

A blob the filter left out stays out of the mirror for good (incremental fetches
only send what is new), so the limit a mirror was fetched with is recorded beside
it, and a mirror whose limit would now keep more is fetched afresh.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import structlog

from skillsyncd.config import Config
from skillsyncd.model import Severity
from skillsyncd.validation.rules import Policy

log = structlog.get_logger(__name__)

# The blob:limit the mirror was fetched with, one decimal line. Every blob the mirror
# lacks is at least this large (see Source.fetch); no file: the mirror lacks none.
BLOB_LIMIT_FILE = "skillsyncd-blob-limit"


def blob_limit(cfg: Config) -> int | None:
    """The ``blob:limit`` for fetches: only blobs that ``size.file`` refuses anyway.

    git's filter leaves out blobs of at least ``limit`` bytes, so ``max_file_bytes + 1``
    keeps every file the rules can accept. None (no filter) when ``size.file`` is not
    an error under the configured policy: a skill that then goes live with an oversized
    file needs its bytes.
    """
    policy = Policy.from_config(cfg.severity, cfg.strict)
    if policy.severity("size.file") is not Severity.ERROR:
        return None
    return cfg.max_file_bytes + 1


def mirror_blob_limit(mirror_dir: Path) -> int | None:
    """The limit recorded for a mirror; None when it holds every blob it has a tree for."""
    try:
        return int((mirror_dir / BLOB_LIMIT_FILE).read_text().strip())
    except FileNotFoundError:
        return None
    except ValueError:
        return 0  # unreadable: assume the worst, any blob may be missing


def limit_grew(recorded: int | None, wanted: int | None) -> bool:
    """Whether the mirror may lack a blob that a fetch with ``wanted`` would keep."""
    if recorded is None:
        return False
    return wanted is None or wanted > recorded


def drop_mirror_if_limit_grew(mirror_dir: Path, wanted: int | None) -> None:
    """When ``max_file_bytes`` grows, or ``size.file`` stops being an error, the mirror
    is fetched afresh (one shallow fetch; history_rewritten is then unknown for that sync)."""
    recorded = mirror_blob_limit(mirror_dir)
    if limit_grew(recorded, wanted):
        log.warning("mirror_reset", reason="the blob size limit grew since the mirror was "
                    "fetched", previous_limit=recorded, limit=wanted)
        shutil.rmtree(mirror_dir, ignore_errors=True)


def record_limit(mirror_dir: Path, wanted: int | None) -> None:
    """Written before the fetch, so a fetch killed half-way never leaves a missing
    blob the record does not explain. Lowering the limit keeps the record true:
    whatever is missing is larger than the old limit, hence than the new one."""
    if wanted is not None and mirror_blob_limit(mirror_dir) != wanted:
        path = mirror_dir / BLOB_LIMIT_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{wanted}\n")
        tmp.replace(path)
