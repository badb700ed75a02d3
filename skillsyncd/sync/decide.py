"""Pure decisions of a sync: what changed, what to keep. No I/O here."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from skillsyncd.model import Plan, Status
from skillsyncd.release.manifest import Manifest
from skillsyncd.sync.state import State


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


def rollback_skills(left: Manifest, target: Manifest) -> list[dict[str, Any]]:
    """Per-skill changes of going from manifest ``left`` back to manifest ``target`` (pure)."""
    old, new = left.live_by_name(), target.live_by_name()
    plan = make_plan(left.live_shas(), target.live_shas())
    out = [new[n].event(str(plan.change_of(n))) for n in sorted(new)]
    out += [old[n].event("removed") for n in plan.removed]
    return out


def skip_reason(state: State, current: str | None, head: str, force: bool,
                settings: str) -> Status | None:
    """Whether this sync stops after the probe, and as what (pure)."""
    if force:
        return None
    if head == state.commit and current is not None and state.settings == settings:
        return Status.NO_CHANGE
    if head in state.bad_commits:
        return Status.SKIPPED_BAD
    if head == state.rejected_commit and state.settings == settings:
        return Status.REJECTED
    return None


def rollback_target(current: str | None, manifests: Mapping[str, Manifest],
                    bad: Collection[str]) -> str | None:
    """The release a rollback without ``--to`` goes back to (pure).

    The release ``current`` replaced, then the one that one replaced, and so on,
    skipping releases gone from disk and those whose commit is marked bad. A
    0.1.0 release without ``previous_release`` falls back to the newest older
    release on disk that is not bad.
    """
    here = manifests.get(current or "")
    avoid = set(bad) | ({here.commit} if here else set())
    seen: set[str] = set()
    step = here.previous_release if here else None
    while step and step not in seen:
        seen.add(step)
        m = manifests.get(step)
        if m is None:
            break
        if m.commit not in avoid:
            return step
        step = m.previous_release
    older = [r for r in sorted(manifests) if current is None or r < current]
    for rid in reversed(older):
        if manifests[rid].commit not in avoid:
            return rid
    return None
