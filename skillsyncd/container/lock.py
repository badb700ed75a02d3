"""The lock: every package the image installs, at the version the tested venv holds.

`make lock` prints these pins (`python -m skillsyncd.container.lock`) and hands them to
pip-compile, which adds each file's hashes from PyPI and writes constraints.txt; the image
block installs from it with `pip install --require-hashes`. A test compares the lock with
the venv, so a changed dependency without `make lock` fails the suite. A maintainer's tool:
it needs `packaging`, which the image has too (tag channels read versions with it).
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
from collections.abc import Iterable, Mapping

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from skillsyncd.errors import ConfigError

# What the image installs: skillsyncd's own dependencies plus the extra that holds
# supervisord and the build backend the image builds skillsyncd with.
ROOT = "skillsyncd"
IMAGE_EXTRAS = ("container",)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
_HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


class LockError(ConfigError):
    """The venv does not hold a package the image needs, or the lock cannot be read."""


def _wanted(req: Requirement, extras: Iterable[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in ("", *extras))


def closure(installed: Mapping[str, md.Distribution], root: str = ROOT,
            extras: Iterable[str] = IMAGE_EXTRAS) -> dict[str, str]:
    """Name -> installed version for every package ``root[extras]`` needs here, root excluded."""
    pins: dict[str, str] = {}
    todo = [Requirement(r) for r in (installed[root].requires or []) if _wanted(Requirement(r), extras)]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in pins:
            continue
        dist = installed.get(name)
        if dist is None:
            raise LockError(f"{req} is needed but not installed in this venv: run `make install` first")
        pins[name] = dist.version
        todo += [Requirement(r) for r in (dist.requires or []) if _wanted(Requirement(r), req.extras)]
    return dict(sorted(pins.items()))


def installed_distributions() -> dict[str, md.Distribution]:
    return {canonicalize_name(d.metadata["Name"]): d for d in md.distributions()}


def read_lock(text: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """constraints.txt's pins: name -> (version, hashes), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        m = _PIN.match(line)
        if m is None:
            raise LockError(f"constraints.txt: {line[:80]!r} is not a `name==version --hash=...` pin")
        out[canonicalize_name(m.group(1))] = (m.group(2), tuple(_HASH.findall(line)))
    return out


def main() -> int:
    """Print the venv's pins, one `name==version` a line (pip-compile's input)."""
    for name, version in closure(installed_distributions()).items():
        print(f"{name}=={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
