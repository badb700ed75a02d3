"""constraints.txt, the image's lock, pins exactly what the tested venv holds.

The image installs from it with `pip install --require-hashes`, so every package it needs
must be there, at the venv's version, with at least one hash; nothing else may be. A
dependency changed in pyproject.toml or upgraded in the venv fails here until `make lock`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skillsyncd.container.lock import LockError, closure, installed_distributions, read_lock

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "constraints.txt"


def test_the_lock_pins_exactly_the_venvs_runtime_packages() -> None:
    want = closure(installed_distributions())
    locked = read_lock(LOCK.read_text())
    stale = "run `make lock` (README, 'Running in the gateway container')"
    assert {n: v for n, (v, _h) in locked.items()} == want, stale
    # What the image cannot run without, by name: a check that the closure is not empty.
    assert {"dulwich", "aiohttp", "neo4j", "supervisor", "dockerfile-parse", "setuptools"} <= set(want)
    assert "pytest" not in want and "ruff" not in want  # test and dev extras stay out


def test_every_pin_carries_hashes() -> None:
    locked = read_lock(LOCK.read_text())
    bare = [n for n, (_v, hashes) in locked.items() if not hashes]
    assert bare == []


def test_read_lock_refuses_what_is_not_a_pin() -> None:
    assert read_lock("a==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via x\n") == {
        "a": ("1.0", ("sha256:" + "0" * 64,))}
    with pytest.raises(LockError, match="is not a `name==version"):
        read_lock("requests>=2\n")
