"""Every file the state dir holds is in README's on-disk contract (issue 29 item 16).

The documented list is read from README.md itself, so a new file in the state dir
(like ``fingerprint.key`` and ``skillsyncd.lock.owner``, which it once omitted)
fails here until the contract names it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from skillsyncd.config import load_config
from skillsyncd.sync.assembly import build_syncer

README = Path(__file__).resolve().parent.parent / "README.md"


def documented_entries() -> list[re.Pattern[str]]:
    """The state dir's entries as README's contract block lists them, as patterns.

    ``<id>``, ``<seq>``, ``<content-sha>``... stand for one path component; a trailing
    ``/...`` or ``/<skill>`` is what the entry holds, compared here only by its top.
    """
    text = README.read_text(encoding="utf-8")
    block = text.split("## On-disk contract", 1)[1].split("```", 2)[1]
    patterns = []
    for line in block.splitlines()[1:]:
        if not line.startswith("  ") or not line.strip():
            continue
        for name in line.split("  ")[1].strip().split(", "):
            name = name.split(" -> ")[0].rstrip("/")
            parts = name.split("/")
            # releases/<id>/<skill> and store/<sha>/...: the entry is the first two parts
            for head in {parts[0], "/".join(parts[:2])}:  # the folder, and what it holds
                regex = re.sub(r"<[^>]+>", "[^/]+", re.escape(head))
                patterns.append(re.compile(regex.replace(r"\.\.\.", "") + "$"))
    return patterns


def state_entries(state: Path) -> set[str]:
    """What the state dir holds: its top-level entries, and those of releases/ and store/."""
    out = {p.name for p in state.iterdir()}
    for folder in ("releases", "store"):
        if (state / folder).is_dir():
            out |= {f"{folder}/{p.name}" for p in (state / folder).iterdir()}
    return out


def _two_syncs(repo: Any, flags: dict[str, str]) -> None:
    """The demo's two syncs: every skill new, then one changed and one held back."""
    repo.add_skill("alpha", description="One.")
    repo.add_skill("beta", description="Two.")
    repo.commit("two skills")
    syncer = build_syncer(load_config(flags=flags, env={}))
    assert syncer.sync().status == "deployed"
    repo.add_skill("alpha", description="One, changed.")
    repo.write("broken/SKILL.md", "---\nname: broken\n---\nno description\n")
    repo.commit("one changed, one held back")
    assert syncer.sync().held_back.keys() == {"broken"}


@pytest.mark.parametrize("mode", ["link", "mirror"])
def test_every_entry_of_the_state_dir_is_documented(repo: Any, tmp_path: Path, mode: str) -> None:
    state = tmp_path / "state"
    flags = {"repo": str(repo.path), "state_dir": str(state)}
    if mode == "mirror":
        flags |= {"publish_mode": "mirror", "publish_dir": str(tmp_path / "skills")}
    _two_syncs(repo, flags)
    patterns = documented_entries()
    found = state_entries(state)
    assert {"fingerprint.key", "skillsyncd.lock.owner", "current", "state.json"} <= found
    undocumented = sorted(e for e in found if not any(p.match(e) for p in patterns))
    assert not undocumented, f"in {state} but not in README's on-disk contract: {undocumented}"


def test_the_contract_parser_sees_the_block() -> None:
    """A parser that found nothing would make the test above pass vacuously."""
    patterns = documented_entries()
    assert len(patterns) >= 15
    assert any(p.match("releases/20261208T001607Z-aa9a2ec889f0.json") for p in patterns)
    assert not any(p.match("stray.tmp") for p in patterns)
