"""What deploying a commit would do to the live release (``skillsyncd plan``): pure.

The shell (:mod:`skillsyncd.sync.preview_run`) fetches the commit into a scratch
mirror and runs the stage step's own planning and judging
(:func:`skillsyncd.sync.stage.evaluate`) without writing a release; this module
turns that :class:`~skillsyncd.sync.stage.Evaluation` and the live manifest into a
:class:`Preview`: each skill added, changed (its frontmatter and size before and
after) or removed, what would be held back and by which finding first, what the
gateway's caps would not load, what the usage rules
(:mod:`skillsyncd.validation.usage`: the prompt budget, eligibility, shadowing) say of
the release, and whether a freeze or a bad mark would keep the
commit from going live. The renderers are :mod:`skillsyncd.sync.preview_render`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skillsyncd.errors import EXIT_OK, EXIT_REJECTED
from skillsyncd.model import Finding, Severity, Skill, Status
from skillsyncd.release.manifest import Manifest, SkillRecord
from skillsyncd.source.discovery import gateway_unloaded
from skillsyncd.sync.freeze import Freeze
from skillsyncd.sync.stage import Evaluation

# The frontmatter fields a preview compares, as the manifest records them.
FIELDS = ("name", "version", "description")


@dataclass(frozen=True)
class Facts:
    """One version of a skill as the manifest records it (None: not known)."""

    name: str | None = None  # as SKILL.md declares it
    version: str | None = None
    description: str | None = None
    files: int | None = None
    bytes: int | None = None
    read: bool = True  # False: its SKILL.md was not read (held back again, or unsafe paths)

    def field(self, key: str) -> str | None:
        value: str | None = getattr(self, key)
        return value


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class SkillPreview:
    """One skill the commit adds, changes or removes."""

    name: str
    change: str  # added | changed | removed
    before: Facts | None  # None: not live now
    after: Facts | None  # None: removed
    fields: tuple[FieldChange, ...] = ()  # frontmatter that differs
    held: Finding | None = None  # the first error that would hold it back
    errors: int = 0  # errors holding it back in all
    again: bool = False  # held back before for these bytes and rules
    not_loaded: bool = False  # goes live, but over the gateway's caps

    @property
    def keeps_serving(self) -> bool:
        """Held back while its live version keeps serving."""
        return self.held is not None and self.before is not None

    @property
    def size_delta(self) -> int | None:
        if self.before is None or self.after is None or None in (self.before.bytes, self.after.bytes):
            return None
        return (self.after.bytes or 0) - (self.before.bytes or 0)


@dataclass(frozen=True)
class Target:
    """The commit previewed and where it came from."""

    commit: str
    ref: str
    source: str


@dataclass(frozen=True)
class LiveView:
    """What the preview compares against: the live manifest and what else is known of the state."""

    manifest: Manifest
    against: str  # "state dir PATH" or "manifest PATH"
    freeze: Freeze | None = None
    freeze_known: bool = True  # False: an exported manifest that says nothing of a freeze
    bad_commits: Mapping[str, str] | None = None  # None: not known
    exported: str | None = None  # when an exported manifest was exported


@dataclass(frozen=True)
class Preview:
    """What deploying ``target`` would do to ``live``; ``outcome`` is how the sync would end."""

    target: Target
    live: LiveView
    outcome: Status  # deployed | no_change | rejected | frozen | skipped_bad
    skills: tuple[SkillPreview, ...]
    unchanged: int
    live_after: int  # skills the release would serve (held-back ones keeping a version count;
    # a commit refused before its release was drafted: the skills live now, which stay)
    refusal: str | None = None  # why the whole commit would be refused
    refusal_findings: tuple[Finding, ...] = ()
    marked_bad: str | None = None  # the reason the commit is marked bad
    cap: Finding | None = None  # layout.gateway-cap
    warnings: int = 0
    settings_differ: bool = False  # judged under other settings than the live release was
    usage: tuple[Finding, ...] = ()  # usage.* findings: the prompt budget, eligibility, shadowing

    def count(self, change: str) -> int:
        return sum(1 for s in self.skills if s.change == change)

    @property
    def held(self) -> tuple[SkillPreview, ...]:
        return tuple(s for s in self.skills if s.held is not None)

    @property
    def not_loaded(self) -> tuple[SkillPreview, ...]:
        return tuple(s for s in self.skills if s.not_loaded)

    @property
    def exit_code(self) -> int:
        """0 when nothing would be held back; 4 when a skill would be, or the whole commit
        (refused, or skipped as marked bad), or the gateway's caps are an error by policy
        (``layout.gateway-cap`` warns by default: then it is shown, exit 0)."""
        over = self.cap is not None and self.cap.severity is Severity.ERROR
        blocked = self.refusal or self.marked_bad or self.held or over
        return EXIT_REJECTED if blocked else EXIT_OK


def preview(target: Target, live: LiveView, ev: Evaluation, caps: tuple[int, int],
            skip: Status | None = None) -> Preview:
    """The preview of deploying ``target`` (judged as ``ev``) over ``live``; ``caps`` is the
    gateway's (folders listed, skills loaded) per folder; ``skip`` what
    :func:`skillsyncd.sync.decide.skip_reason` says of the commit before any fetch."""
    old = live.manifest.live_by_name()
    findings = ev.judged.findings if ev.judged else {}
    metadata = ev.judged.metadata if ev.judged else {}
    again = set(ev.judged.again) if ev.judged else set()
    live_names = ev.draft.live_names if ev.draft else []
    unloaded = set(gateway_unloaded(live_names, *caps))
    out: list[SkillPreview] = []
    for name in sorted((*ev.plan.added, *ev.plan.changed)):
        errors = [f for f in findings.get(name, ()) if f.severity is Severity.ERROR]
        before = _facts_of(old[name]) if name in old else None
        after = _facts_new(ev.skills[name], metadata.get(name) or {})
        out.append(SkillPreview(
            name=name, change="changed" if name in old else "added", before=before, after=after,
            fields=_diff(before, after), held=errors[0] if errors else None, errors=len(errors),
            again=name in again, not_loaded=name in unloaded and not errors))
    out += [SkillPreview(name=n, change="removed", before=_facts_of(old[n]), after=None)
            for n in ev.plan.removed if n in old]
    out.sort(key=lambda s: s.name)
    bad = (live.bad_commits or {}).get(target.commit) if skip is Status.SKIPPED_BAD else None
    return Preview(
        target=target, live=live, outcome=_outcome(ev, skip, live.freeze), skills=tuple(out),
        unchanged=len(ev.plan.unchanged), live_after=len(ev.draft.serve) if ev.draft else len(old),
        refusal=ev.refusal.message if ev.refusal else None,
        refusal_findings=ev.refusal.findings if ev.refusal else (), marked_bad=bad,
        cap=next((f for f in ev.layout if f.rule == "layout.gateway-cap"), None),
        warnings=sum(1 for f in ev.findings if f.severity is Severity.WARNING),
        settings_differ=bool(live.manifest.settings) and live.manifest.settings != ev.settings,
        usage=tuple(f for f in ev.layout if f.rule.startswith("usage.")))


def _outcome(ev: Evaluation, skip: Status | None, freeze: Freeze | None) -> Status:
    """How a sync of this commit would end, in a sync's own order: what the probe's skip
    decides (already live, marked bad), then a refusal, then a freeze before the flip."""
    if skip in (Status.NO_CHANGE, Status.SKIPPED_BAD):
        return skip
    if ev.refusal is not None:
        return Status.REJECTED
    if freeze is not None:
        return Status.FROZEN
    if ev.plan.is_empty:
        return Status.NO_CHANGE
    return Status.DEPLOYED


def _facts_of(record: SkillRecord) -> Facts:
    return Facts(name=record.declared_name, version=record.version,
                 description=record.description, files=record.files, bytes=record.bytes)


def _facts_new(skill: Skill, meta: Mapping[str, Any]) -> Facts:
    """The incoming version: sizes from its tree, frontmatter from the gate's one read of it."""
    def text(key: str) -> str | None:
        value = meta.get(key)
        return None if value is None else str(value)

    return Facts(name=text("name"), version=text("version"), description=text("description"),
                 files=len(skill.entries), bytes=sum(e.size or 0 for e in skill.entries),
                 read=bool(meta))


def _diff(before: Facts | None, after: Facts) -> tuple[FieldChange, ...]:
    """The frontmatter fields that differ; none when the new SKILL.md was not read."""
    if not after.read:
        return ()
    base = before or Facts()
    return tuple(FieldChange(k, base.field(k), after.field(k)) for k in FIELDS
                 if base.field(k) != after.field(k))
