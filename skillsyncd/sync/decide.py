"""Pure decisions of a sync: what changed, what to refuse, what the release holds, what to keep.

No I/O here: each function takes values and returns values, so the whole of
"which skills go live, which are held back, and why" is tested without a disk.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skillsyncd import __version__
from skillsyncd.model import Change, Finding, Plan, Severity, Skill, Status
from skillsyncd.release.manifest import Manifest, SkillRecord
from skillsyncd.source.discovery import Skipped, gateway_unloaded
from skillsyncd.sync.state import State
from skillsyncd.validation.rules import Policy, has_errors


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
                settings: str, frozen: bool = False) -> Status | None:
    """Whether this sync stops after the probe, and as what (pure).

    ``frozen``: a freeze is in effect; the commit it already holds back (staged under
    the same settings) is not staged again on every poll.
    """
    if force:
        return None
    if head == state.commit and current is not None and state.settings == settings:
        return Status.NO_CHANGE
    if head in state.bad_commits:
        return Status.SKIPPED_BAD
    if head == state.rejected_commit and state.settings == settings:
        return Status.REJECTED
    waiting = state.waiting or {}
    if frozen and waiting.get("commit") == head and waiting.get("settings") == settings:
        return Status.FROZEN
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


# --- judging and refusing ---------------------------------------------------------------


def judgement_basis(settings: str, allowed: frozenset[str]) -> str:
    """What a skill's verdict depends on besides its bytes: the settings, the allow-list
    and the rules themselves (skillsyncd's version)."""
    digest = hashlib.sha256(f"{__version__}\n{settings}".encode())
    for fingerprint in sorted(allowed):
        digest.update(b"\n" + fingerprint.encode())
    return digest.hexdigest()[:16]


def held_verdicts(manifest: Manifest, basis: str) -> dict[str, tuple[Finding, ...]]:
    """Content sha -> findings of the versions ``manifest`` held back under the same basis.

    A held-back skill pushed again unchanged keeps its verdict: it is neither parsed
    nor scanned nor logged as new on every sync.
    """
    if manifest.validation.basis != basis:
        return {}
    return {s.rejected_sha: s.findings for s in manifest.skills
            if s.rejected_sha and s.findings and has_errors(s.findings)}


def layout_findings(skipped: Sequence[Skipped], policy: Policy, skills_path: str) -> tuple[Finding, ...]:
    """What discovery left out, as findings with paths as the author sees them."""
    root = skills_path.strip("/")
    out = (policy.finding(s.rule, _under(root, s.path), s.message) for s in skipped)
    return tuple(f for f in out if f is not None)


def _under(root: str, path: str) -> str:
    if not root:
        return path
    return root if path == "." else f"{root}/{path}"


@dataclass(frozen=True)
class Refusal:
    """Why a whole commit is refused: which policy, the findings, one line for the operator."""

    policy: str  # reject | guard | verify
    findings: tuple[Finding, ...]
    message: str


def validation_refusal(commit: str, on_invalid: str, blocked: bool,
                       findings: Sequence[Finding], release_findings: Sequence[Finding]
                       ) -> Refusal | None:
    """Whether validation refuses the commit as a whole: any error under ``on_invalid=reject``,
    or a release-wide error (over the total size cap), which cannot be skipped per skill."""
    release_errors = tuple(f for f in release_findings if f.severity is Severity.ERROR)
    errors = tuple(f for f in findings if f.severity is Severity.ERROR)
    if (blocked or release_errors) and on_invalid == "reject":
        return Refusal("reject", errors, f"commit {commit[:12]} rejected: "
                       + "; ".join(str(f) for f in errors)[:2000])
    if release_errors:
        return Refusal("reject", release_errors, "; ".join(str(f) for f in release_errors))
    return None


def mass_removal(live_before: int, live_after: int, removed: int) -> str | None:
    """Why a deploy would remove too much (more than half of the live skills, or all), else None."""
    if live_before == 0 or removed == 0:
        return None
    if live_after == 0:
        return f"it would remove all {live_before} live skills"
    if removed * 2 > live_before:
        return f"it would remove {removed} of {live_before} live skills"
    return None


def mass_removal_refusal(commit: str, policy: Policy, skills_path: str, live_before: int,
                         live_after: int, removed: int) -> Refusal | None:
    """The guard against a commit that removes most skills (``--force`` skips this call)."""
    guard = mass_removal(live_before, live_after, removed)
    if guard is None:
        return None
    finding = policy.finding(
        "guard.mass-removal", skills_path or ".",
        f"{guard}; nothing is removed. If this is intended, deploy it once with "
        "`skillsyncd --once --force`, or set SKILLSYNC_ALLOW_MASS_REMOVAL=true")
    if finding is None or finding.severity is not Severity.ERROR:
        return None
    return Refusal("guard", (finding,), f"commit {commit[:12]} refused: {finding}")


def gateway_cap_finding(policy: Policy, skills_path: str, live_names: Sequence[str],
                        max_candidates: int, max_skills: int) -> Finding | None:
    """Skills that go live but that the gateway's per-folder caps will not load."""
    unloaded = gateway_unloaded(live_names, max_candidates, max_skills)
    if not unloaded:
        return None
    return policy.finding(
        "layout.gateway-cap", skills_path or ".",
        f"{len(live_names)} skills go live, but the gateway loads at most "
        f"{max_skills} per folder (skills.limits.maxSkillsLoadedPerSource) and "
        f"lists {max_candidates} folders per folder: it will not load "
        f"{len(unloaded)}: {', '.join(unloaded[:20])}{', ...' if len(unloaded) > 20 else ''}; "
        "raise the gateway's limits and SKILLSYNC_GATEWAY_MAX_SKILLS together")


# --- what the release holds -------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    """The release a commit makes, before any byte is written."""

    build: tuple[Skill, ...]  # skill versions this release writes
    serve: dict[str, str]  # skill -> the content sha this release serves
    records: tuple[SkillRecord, ...]  # the manifest's skills
    held: dict[str, list[str]]  # held-back skill -> the errors that hold it back

    @property
    def live_names(self) -> list[str]:
        return [r.name for r in self.records if r.live]


def draft_release(skills: Mapping[str, Skill], plan: Plan, commit: str,
                  findings: Mapping[str, tuple[Finding, ...]],
                  metadata: Mapping[str, Mapping[str, Any]],
                  old: Mapping[str, SkillRecord], has_live: bool) -> Draft:
    """Skill by skill: build it, keep the live version, or hold it back.

    A skill with an error is held back; its last good version (``old``) keeps
    serving when there is one. Unchanged skills keep their record and bytes.
    """
    build: list[Skill] = []
    serve: dict[str, str] = {}
    records: list[SkillRecord] = []
    held: dict[str, list[str]] = {}
    for name in sorted(skills):
        skill, found = skills[name], findings.get(name, ())
        if has_errors(found):
            held[name] = [str(f) for f in found if f.severity is Severity.ERROR]
            if name in old and has_live:
                serve[name] = old[name].content_sha or ""
                records.append(old[name].held_back(skill.tree_sha, found))
            else:
                records.append(SkillRecord(name=name, live=False, status="held_back",
                                           rejected_sha=skill.tree_sha, findings=found))
            continue
        serve[name] = skill.tree_sha
        if plan.change_of(name) is Change.UNCHANGED and has_live:
            records.append(dataclasses.replace(old[name], status="ok", change="unchanged",
                                               rejected_sha=None, findings=()))
            continue
        build.append(skill)
        records.append(_new_record(skill, plan, commit, metadata.get(name, {}), found))
    return Draft(tuple(build), serve, tuple(records), held)


def _new_record(skill: Skill, plan: Plan, commit: str, meta: Mapping[str, Any],
                warnings: tuple[Finding, ...]) -> SkillRecord:
    return SkillRecord(
        name=skill.name, live=True, status="ok", change=str(plan.change_of(skill.name)),
        content_sha=skill.tree_sha, commit=commit, version=meta.get("version"),
        declared_name=meta.get("name"), effective_name=meta.get("effective_name"),
        description=meta.get("description"), files=len(skill.entries),
        bytes=sum(e.size or 0 for e in skill.entries), warnings=warnings)


def skill_events(records: Sequence[SkillRecord], old: Mapping[str, SkillRecord],
                 removed: Sequence[str]) -> tuple[dict[str, Any], ...]:
    """The per-skill lines of a ``deployed`` (or ``rolled_back``) journal event."""
    lines = [
        r.event(r.change if r.status == "ok" else "held_back") if r.live
        else {"name": r.name, "version": None, "content_sha": None, "change": "held_back"}
        for r in records
    ]
    return (*lines, *(old[n].event("removed") for n in removed))
