"""Confirm a release with the gateway's own answer: "the gateway sees N of M" (pure, no I/O).

The post-deploy check (``sync.checks.GatewayConfirmCheck``) asks the running gateway
for ``skills.status`` and hands the answer here. A skill of the release is *seen*
when the gateway loaded it from the folder skillsyncd publishes, finds it eligible
and does not filter it out for the agent; every other skill gets one :class:`Gap`
naming why (not loaded, shadowed by a same-named skill of another source,
ineligible with what is missing, disabled, blocked by the bundled allow-list or by
the agent's skill filter) and what to do about it.

Blame is narrow on purpose: only a skill that this commit changed, that the gateway
could use before the flip and cannot use after it, is the commit's fault
(:func:`blamed`). A new skill that needs an absent binary is reported, not blamed;
a gateway that could not be asked is never blamed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from skillsyncd.release.manifest import Manifest

# What the gateway lists under "missing" for an ineligible skill, in its own order.
MISSING_KINDS = ("bins", "anyBins", "env", "config", "os")
CONFIRMED, UNREACHABLE, REFUSED = "confirmed", "unreachable", "refused"
GAPS_KEPT = 200  # per-skill differences kept in a record (the counts stay exact)

_FIX = {
    "bins": "install it in the gateway's image (on the PATH the gateway gets)",
    "anyBins": "install one of them in the gateway's image",
    "env": "set it in the gateway's environment or in skills.entries.<skill>.env",
    "config": "set it truthy in the gateway's openclaw.json",
    "os": "the skill does not run on this platform",
}


@dataclass(frozen=True)
class Expected:
    """A skill the release serves, as the gateway should list it."""

    name: str  # the frontmatter name the gateway uses
    folder: str  # the skill's folder in the release
    description: str | None = None
    changed: bool = False  # this commit added or changed it


@dataclass(frozen=True)
class GatewaySkill:
    """One skill of a ``skills.status`` answer; ``ours`` says it was loaded from the published folder."""

    name: str
    ours: bool
    source: str = ""
    base_dir: str = ""
    description: str | None = None
    eligible: bool = True
    disabled: bool = False
    blocked_by_allowlist: bool = False
    blocked_by_agent_filter: bool = False
    missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Gap:
    """Why one skill of the release is not usable by the gateway's agent, and the fix."""

    skill: str
    # not_loaded | shadowed | ineligible | disabled | blocked_by_allowlist | blocked_by_agent_filter
    reason: str
    detail: str
    missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    source: str | None = None  # for shadowed: the source that won

    def text(self) -> str:
        return f"{self.skill}: {self.detail}"


@dataclass(frozen=True)
class Confirmation:
    """What the gateway said about one release (or why it could not be asked)."""

    release: str
    commit: str | None
    state: str  # confirmed | unreachable | refused
    expected: int = 0
    seen: int = 0
    gaps: tuple[Gap, ...] = ()
    blamed: tuple[str, ...] = ()  # skills this commit made unusable
    settled: bool = True  # the answer held every skill of the release (no reload pending)
    error: str | None = None
    at: str | None = None

    def summary(self) -> str:
        """One line for the log, the alerts and the dashboard."""
        if self.state != CONFIRMED:
            return f"the gateway could not be asked ({self.state}): {self.error or 'no answer'}"
        head = f"the gateway sees {self.seen} of {self.expected} skills"
        if not self.gaps:
            return head
        shown = "; ".join(g.text() for g in self.gaps[:5])
        more = f"; and {len(self.gaps) - 5} more" if len(self.gaps) > 5 else ""
        return f"{head}: {shown}{more}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["gaps"] = [asdict(g) for g in self.gaps[:GAPS_KEPT]]
        data["summary"] = self.summary()
        return data

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), indent=1, sort_keys=True).encode()


def from_json(raw: Mapping[str, Any]) -> Confirmation:
    """A record written by :meth:`Confirmation.encode` (unknown keys ignored)."""
    gaps = tuple(Gap(skill=str(g.get("skill")), reason=str(g.get("reason")),
                     detail=str(g.get("detail")), source=g.get("source"),
                     missing={str(k): tuple(v) for k, v in (g.get("missing") or {}).items()})
                 for g in raw.get("gaps") or () if isinstance(g, Mapping))
    return Confirmation(
        release=str(raw.get("release") or ""), commit=raw.get("commit"),
        state=str(raw.get("state") or UNREACHABLE), expected=int(raw.get("expected") or 0),
        seen=int(raw.get("seen") or 0), gaps=gaps, blamed=tuple(raw.get("blamed") or ()),
        settled=bool(raw.get("settled", True)), error=raw.get("error"), at=raw.get("at"))


def expected_of(manifest: Manifest) -> tuple[Expected, ...]:
    """The skills a release serves, by the name the gateway gives them."""
    return tuple(Expected(name=s.effective_name or s.name.rsplit("/", 1)[-1], folder=s.name,
                          description=s.description,
                          changed=s.status == "ok" and s.change in ("added", "changed"))
                 for s in manifest.live)  # a held-back skill serves its last good version: unchanged


def gateway_skills(answer: Any, ours: Callable[[str], bool]) -> tuple[GatewaySkill, ...]:
    """The skills of a ``skills.status`` payload; ``ours(baseDir)`` tells the published folder's."""
    if not isinstance(answer, Mapping) or not isinstance(answer.get("skills"), list):
        raise ValueError("skills.status answered without a 'skills' list")
    out: list[GatewaySkill] = []
    for raw in answer["skills"]:
        if not isinstance(raw, Mapping) or not raw.get("name"):
            continue
        found = raw.get("missing")
        missing: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        base = str(raw.get("baseDir") or "")
        out.append(GatewaySkill(
            name=str(raw["name"]), ours=ours(base), source=str(raw.get("source") or ""),
            base_dir=base, description=raw.get("description"),
            eligible=raw.get("eligible") is not False, disabled=raw.get("disabled") is True,
            blocked_by_allowlist=raw.get("blockedByAllowlist") is True,
            blocked_by_agent_filter=raw.get("blockedByAgentFilter") is True,
            missing={k: tuple(str(x) for x in missing.get(k) or ()) for k in MISSING_KINDS
                     if missing.get(k)}))
    return tuple(out)


def _missing_text(missing: Mapping[str, Sequence[str]]) -> str:
    parts = [f"{kind} {', '.join(missing[kind])} ({_FIX[kind]})" for kind in MISSING_KINDS
             if missing.get(kind)]
    return "; ".join(parts) or "an unmet requirement the gateway did not name"


def gap_of(skill: Expected, loaded: Mapping[str, GatewaySkill]) -> Gap | None:
    """Why the gateway's agent cannot use ``skill`` (None: it can)."""
    got = loaded.get(skill.name)
    if got is None:
        return Gap(skill.name, "not_loaded", f"not loaded by the gateway (folder {skill.folder}); "
                   "its log says why")
    if not got.ours:
        return Gap(skill.name, "shadowed", f"shadowed by the {got.source or 'other'} skill of the "
                   f"same name at {got.base_dir}: rename one of them", source=got.source)
    if got.disabled:
        return Gap(skill.name, "disabled", "disabled in the gateway's openclaw.json "
                   "(skills.entries.<skill>.enabled: false)")
    if got.blocked_by_allowlist:
        return Gap(skill.name, "blocked_by_allowlist", "not in skills.allowBundled")
    if not got.eligible:
        return Gap(skill.name, "ineligible", f"ineligible: missing {_missing_text(got.missing)}",
                   missing=got.missing)
    if got.blocked_by_agent_filter:
        return Gap(skill.name, "blocked_by_agent_filter", "loaded and eligible, but the agent's "
                   "skills allow-list (agents.*.skills) leaves it out")
    return None


def compare(expected: Iterable[Expected], answer: Iterable[GatewaySkill]) -> tuple[int, tuple[Gap, ...]]:
    """(skills the gateway's agent can use, the gaps of the rest) for a release."""
    loaded = _by_name(answer)
    wanted = list(expected)
    gaps = tuple(g for g in (gap_of(s, loaded) for s in wanted) if g is not None)
    return len(wanted) - len(gaps), gaps


def _by_name(answer: Iterable[GatewaySkill]) -> dict[str, GatewaySkill]:
    """One skill per name; when a name is listed twice the published one counts."""
    loaded: dict[str, GatewaySkill] = {}
    for s in answer:
        if s.name not in loaded or (s.ours and not loaded[s.name].ours):
            loaded[s.name] = s
    return loaded


def _same_text(a: str | None, b: str | None) -> bool:
    return re.sub(r"\s+", " ", (a or "").strip()) == re.sub(r"\s+", " ", (b or "").strip())


def settled(expected: Iterable[Expected], answer: Iterable[GatewaySkill]) -> bool:
    """Whether the answer reflects the release: every skill listed (ours with its description,
    or another source's that shadows it), and no published skill the release no longer has."""
    listed = list(answer)
    loaded = _by_name(listed)
    names = set()
    for s in expected:
        names.add(s.name)
        got = loaded.get(s.name)
        if got is None or (got.ours and s.description is not None
                           and not _same_text(got.description, s.description)):
            return False
    return not any(s.ours and s.name not in names for s in listed)


def blamed(before: Iterable[Expected], before_gaps: Iterable[Gap], after: Iterable[Expected],
           after_gaps: Iterable[Gap]) -> tuple[str, ...]:
    """Skills this commit changed that the gateway could use before the flip and cannot after."""
    was_usable = {s.name for s in before} - {g.skill for g in before_gaps}
    changed = {s.name for s in after if s.changed}
    return tuple(sorted(g.skill for g in after_gaps if g.skill in was_usable and g.skill in changed))
