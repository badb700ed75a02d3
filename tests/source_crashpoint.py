"""Run `skillsyncd --once` and SIGKILL it at a named instant of the mirror prune.

Like tests/crashpoint.py (sync points), the patch is applied from outside the
package, then the real CLI runs.

    python tests/source_crashpoint.py POINT [skillsyncd args...]
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dulwich.object_store as object_store

import skillsyncd.source.mirror as mirror
from skillsyncd.cli import main


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def half_written_pack() -> None:
    """Die after writing part of the new pack's objects (a tmp pack with no index)."""
    real = mirror.generate_unpacked_objects

    def gen(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for n, obj in enumerate(real(*args, **kwargs)):
            if n == 3:
                die()
            yield obj

    mirror.generate_unpacked_objects = gen  # type: ignore[assignment]


def pack_without_index() -> None:
    """Die once the new pack is renamed into place, before its index is written."""
    object_store.write_pack_index = lambda *a, **k: die()  # type: ignore[assignment]


def between_index_and_pack_removal() -> None:
    """Die after the first old pack lost its index but not its data."""
    def remove(data_path: Path) -> None:
        data_path.with_suffix(".idx").unlink()
        die()

    mirror._remove_pack = remove  # type: ignore[assignment]


def before(name: str) -> Callable[[], None]:
    def patch() -> None:
        setattr(mirror, name, lambda *a, **k: die())
    return patch


POINTS: dict[str, Callable[[], None]] = {
    "mid-pack": half_written_pack,
    "before-index": pack_without_index,
    "before-remove": before("_remove_pack"),
    "mid-remove": between_index_and_pack_removal,
    "before-loose": before("_remove_loose"),
    "before-baseline": before("record_baseline"),
}

if __name__ == "__main__":
    POINTS[sys.argv[1]]()
    sys.exit(main(sys.argv[2:]))
