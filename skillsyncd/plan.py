"""Pure decisions of a sync: what changed, what to keep. No I/O here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from skillsyncd.model import Plan


def make_plan(deployed: Mapping[str, str], incoming: Mapping[str, str]) -> Plan:
    """Classify skills by comparing content hashes (git tree ids) of two commits.

    ``deployed`` and ``incoming`` map skill name -> content sha. A skill whose
    sha is the same on both sides is unchanged and costs no work.
    """
    added = sorted(n for n in incoming if n not in deployed)
    removed = sorted(n for n in deployed if n not in incoming)
    both = sorted(n for n in incoming if n in deployed)
    changed = [n for n in both if incoming[n] != deployed[n]]
    unchanged = [n for n in both if incoming[n] == deployed[n]]
    return Plan(
        added=tuple(added),
        changed=tuple(changed),
        removed=tuple(removed),
        unchanged=tuple(unchanged),
    )


def choose_deletions(
    releases: Sequence[str], keep: int, protect: Iterable[str | None] = ()
) -> list[str]:
    """Which releases retention deletes: all but the newest ``keep`` and the protected ones.

    Release ids sort by time, so the newest are the last after sorting.
    """
    protected = {p for p in protect if p}
    ordered = sorted(releases)
    newest = set(ordered[-keep:]) if keep > 0 else set()
    return [r for r in ordered if r not in newest and r not in protected]


def rollback_skills(left: dict[str, Any], target: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-skill changes of going from manifest ``left`` back to manifest ``target`` (pure)."""
    old = {s["name"]: s for s in left.get("skills", []) if s.get("live")}
    new = {s["name"]: s for s in target.get("skills", []) if s.get("live")}
    plan = make_plan({n: str(s.get("content_sha")) for n, s in old.items()},
                     {n: str(s.get("content_sha")) for n, s in new.items()})
    out = [{"name": n, "version": new[n].get("version"), "content_sha": new[n].get("content_sha"),
            "change": str(plan.change_of(n))} for n in sorted(new)]
    out += [{"name": n, "version": old[n].get("version"), "content_sha": old[n].get("content_sha"),
             "change": "removed"} for n in plan.removed]
    return out
