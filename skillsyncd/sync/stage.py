"""The stage step: plan, validate and stage a fetched commit as a complete release, not live yet.

The decisions are :mod:`skillsyncd.sync.decide`'s; this module reads the
commit, runs the gate on what changed, and has the release written
(:mod:`skillsyncd.release.staging`). A refusal of the whole commit is raised
as :class:`Refused`; nothing is recorded here (the ledger records the outcome).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from dulwich.objects import ObjectID
from dulwich.repo import Repo

from skillsyncd.audit.journal import now_iso
from skillsyncd.config import Config
from skillsyncd.errors import SourceError, ValidationRejected
from skillsyncd.model import Finding, Plan, Severity, Skill
from skillsyncd.release.manifest import Manifest, ValidationSummary
from skillsyncd.release.releases import Releases, new_release_id
from skillsyncd.release.staging import stage_release
from skillsyncd.source.remote import FetchResult, Source
from skillsyncd.source.snapshot import SnapshotError, read_allowlist, survey
from skillsyncd.sync import decide
from skillsyncd.sync.decide import Draft, Refusal
from skillsyncd.sync.values import Candidate, Live, Run
from skillsyncd.validation import gate
from skillsyncd.validation.gate import policy_of
from skillsyncd.validation.rules import has_errors
from skillsyncd.validation.usage import release as usage

log = structlog.get_logger(__name__)


class Refused(ValidationRejected):
    """The whole commit is refused (validation under ``reject``, the guard, a signature)."""

    def __init__(self, commit: str, settings: str, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.commit = commit
        self.settings = settings
        self.refusal = refusal


@dataclass(frozen=True)
class Judged:
    """The gate's verdicts on one commit's skills."""

    findings: dict[str, tuple[Finding, ...]]  # skill -> its findings
    metadata: dict[str, dict[str, Any]]  # skill -> what SKILL.md declares
    again: tuple[str, ...]  # held back before with the same bytes and rules: not judged twice
    basis: str


def stage(cfg: Config, releases: Releases, run: Run, live: Live, source: Source,
          fetched: FetchResult) -> Candidate:
    repo = Repo(str(cfg.mirror_dir))
    try:
        return _stage(cfg, releases, run, live, source, fetched, repo)
    finally:
        repo.close()


@dataclass(frozen=True)
class Evaluation:
    """A fetched commit planned and judged, nothing written: what :func:`stage` writes and
    what ``skillsyncd plan`` previews (:mod:`skillsyncd.sync.preview`).

    ``refusal`` set: the whole commit is refused; ``draft`` is then None (the
    mass-removal guard aside, which judges a draft), and ``plan`` is empty when the
    refusal came before the survey (a signature).
    """

    settings: str
    skills: dict[str, Skill]
    plan: Plan
    judged: Judged | None
    findings: tuple[Finding, ...]
    layout: tuple[Finding, ...]
    draft: Draft | None
    refusal: Refusal | None = None

    def accepted(self) -> tuple[Draft, Judged]:
        """The draft and the verdicts of a commit that is not refused."""
        if self.refusal is not None or self.draft is None or self.judged is None:
            raise ValueError("a refused commit has no release to write")
        return self.draft, self.judged


def _stage(cfg: Config, releases: Releases, run: Run, live: Live, source: Source,
           fetched: FetchResult, repo: Repo) -> Candidate:
    ev = evaluate(cfg, live, source, fetched, repo, releases.store.path, force=run.force)
    if ev.refusal is not None:
        raise Refused(fetched.commit, ev.settings, ev.refusal)
    (draft, judged), plan, old = ev.accepted(), ev.plan, live.manifest.live_by_name()
    for name in plan.removed:
        log.info("skill_removed", skill=name)
    manifest = _manifest(cfg, releases, live, source, fetched, draft, ev.layout, ev.findings,
                         judged.basis)
    _write(cfg, releases, live, ev.skills, draft, manifest, source.blob_reader(repo))
    return Candidate(manifest, plan, draft.held, ev.findings,
                     decide.skill_events(draft.records, old, plan.removed),
                     tuple(s.name for s in draft.build), bool(fetched.history_rewritten),
                     judged.again)


def evaluate(cfg: Config, live: Live, source: Source, fetched: FetchResult, repo: Repo,
             stored: Callable[[str], Path], force: bool = False, ci: bool = False) -> Evaluation:
    """Plan and validate one fetched commit against what serves, writing nothing.

    ``stored``: the store's folder of a skill version (``Store.path``), where the usage
    rules read the SKILL.md of a held-back skill's live version; ``ci``: not in the gateway's
    container, so its PATH, variables and config count only when SKILLSYNC_GATEWAY_* name them."""
    settings = cfg.release_settings()
    refused = signature_refusal(cfg, repo, fetched.commit)
    if refused is not None:
        return Evaluation(settings, {}, Plan(), None, refused.findings, (), None, refused)
    skills, layout = _survey(cfg, repo, fetched.tree)
    plan = decide.make_plan(live.manifest.live_shas(), {n: s.tree_sha for n, s in skills.items()})
    log.info("planned", added=len(plan.added), changed=len(plan.changed),
             removed=len(plan.removed), unchanged=len(plan.unchanged))
    judged = judge(cfg, live, skills, plan, source.blob_reader(repo),
                   read_allowlist(repo.object_store, fetched.tree, cfg.skills_path))
    old = live.manifest.live_by_name()
    names = {n: (judged.metadata[n].get("effective_name") if n in judged.metadata else
                 (old[n].effective_name if n in old else None)) for n in skills}
    release_findings = gate.check_release(list(skills.values()), cfg, names=names)
    findings = (*(f for fs in judged.findings.values() for f in fs), *release_findings, *layout)
    _log_findings(findings, judged)
    blocked = any(has_errors(f) for f in judged.findings.values())
    refusal = decide.validation_refusal(fetched.commit, cfg.on_invalid, blocked, findings,
                                        release_findings)
    if refusal is not None:
        return Evaluation(settings, skills, plan, judged, findings, layout, None, refusal)
    draft = decide.draft_release(skills, plan, fetched.commit, judged.findings, judged.metadata,
                                 old, live.current is not None)
    ev = Evaluation(settings, skills, plan, judged, findings, layout, draft)
    return _judge_draft(cfg, ev, live, fetched.commit, source.blob_reader(repo), stored, force, ci)


def _judge_draft(cfg: Config, ev: Evaluation, live: Live, commit: str,
                 read_blob: Callable[[str], bytes], stored: Callable[[str], Path],
                 force: bool, ci: bool) -> Evaluation:
    """What is judged on the release as drafted: the mass-removal guard, the gateway's
    caps, and the usage.* rules over the skills it serves (the prompt budget among them)."""
    draft, plan, policy = ev.accepted()[0], ev.plan, policy_of(cfg)
    old = live.manifest.live_by_name()
    if not (force or cfg.allow_mass_removal):
        guard = decide.mass_removal_refusal(commit, policy, cfg.skills_path, len(old),
                                            len(draft.live_names), len(plan.removed))
        if guard is not None:
            return dataclasses.replace(ev, refusal=guard)
    layout, findings = ev.layout, ev.findings
    cap = decide.gateway_cap_finding(policy, cfg.skills_path, draft.live_names,
                                     cfg.gateway_max_candidates, cfg.gateway_max_skills)
    if cap is not None:
        layout, findings = (*layout, cap), (*findings, cap)
        _log_findings((cap,))
    used = usage.release_usage(cfg, policy, usage.served_skills(
        ev.skills, draft.serve, read_blob, stored, cfg.skills_path.strip("/")),
        {n: r.gateway_name for n, r in old.items()}, ci=ci)
    refusal = None
    if used:
        layout, findings = (*layout, *used), (*findings, *used)
        _log_findings(used)
        # a usage.* rule set to error refuses the commit, like size.release
        refusal = decide.validation_refusal(commit, cfg.on_invalid, False, used, used)
    return dataclasses.replace(ev, layout=layout, findings=findings, refusal=refusal)


def _survey(cfg: Config, repo: Repo, tree: str) -> tuple[dict[str, Skill], tuple[Finding, ...]]:
    """The commit's skills, and what discovery left out as findings."""
    try:
        surveyed = survey(repo.object_store, tree, cfg.skills_path, cfg.skill_depth, cfg.ignore)
    except SnapshotError as exc:
        hint = "" if "missing" in str(exc) else "; check SKILLSYNC_SKILLS_PATH"
        raise SourceError(f"{exc}{hint}") from exc
    layout = decide.layout_findings(surveyed.skipped, policy_of(cfg), cfg.skills_path)
    return dict(surveyed.skills), layout


def judge(cfg: Config, live: Live, skills: Mapping[str, Skill], plan: Plan,
          read_blob: Callable[[str], bytes], allowed: frozenset[str]) -> Judged:
    """Run the gate on every skill the commit adds or changes, once per version and rules."""
    basis = decide.judgement_basis(cfg.release_settings(), allowed)
    known = decide.held_verdicts(live.manifest, basis)
    findings: dict[str, tuple[Finding, ...]] = {}
    metadata: dict[str, dict[str, Any]] = {}
    again: list[str] = []
    for name in plan.to_build:
        if skills[name].tree_sha in known:
            findings[name], metadata[name] = known[skills[name].tree_sha], {}
            again.append(name)
            continue
        findings[name], metadata[name] = validate_one(cfg, skills[name], read_blob, allowed)
    if again:
        log.info("still_held_back", skills=again[:50], count=len(again),
                 hint="same content and rules as when it was held back; its findings are in "
                      "the manifest and `skillsyncd status`")
    return Judged(findings, metadata, tuple(again), basis)


def validate_one(cfg: Config, skill: Skill, read_blob: Callable[[str], bytes],
                 allowed: frozenset[str] = frozenset()
                 ) -> tuple[tuple[Finding, ...], dict[str, Any]]:
    """One skill through the gate: its paths first, then (only if they are safe) its bytes."""
    prefix = f"{cfg.skills_path}/{skill.name}" if cfg.skills_path else skill.name
    entry_findings = gate.check_entries(skill, cfg, prefix=prefix)
    if has_errors(entry_findings):
        # Unsafe paths or oversize blobs: not one byte of this skill is read.
        return entry_findings, {}
    # One pass: SKILL.md is parsed once for the rules and the metadata, and the
    # path rules above are not run a second time.
    checked = gate.check_skill(skill, read_blob, cfg, prefix=prefix,
                                     allowed_fingerprints=allowed, entry_findings=entry_findings)
    return checked.findings, dict(checked.metadata)


def _log_findings(findings: Sequence[Finding], judged: Judged | None = None) -> None:
    """One line per new finding; those of a skill held back again are not repeated."""
    repeated = {id(f) for n in judged.again for f in judged.findings[n]} if judged else set()
    for f in findings:
        if id(f) not in repeated:
            (log.warning if f.severity is Severity.ERROR else log.info)(
                "validation_finding", rule=f.rule, severity=str(f.severity),
                path=f.location(), message=f.message)


def signature_refusal(cfg: Config, repo: Repo, commit: str) -> Refusal | None:
    """The refusal when SKILLSYNC_VERIFY wants a trusted signature the commit lacks
    (:mod:`skillsyncd.source.signatures`); None when it may deploy."""
    if cfg.verify == "none":
        return None
    from skillsyncd.source.signatures import verify_commit

    raw = repo.object_store[ObjectID(commit.encode())].as_raw_string()
    verdict = verify_commit(raw, cfg.verify, cfg.allowed_signers.get() or "",
                            cfg.gpg_keys.get() or "", commit)
    if verdict.ok:
        log.info("signature_verified", signer=verdict.signer)
        return None
    finding = policy_of(cfg).finding(verdict.rule or "commit.bad-signature", commit[:12],
                                     verdict.message)
    if finding is None or finding.severity is not Severity.ERROR:
        log.warning("signature_not_enforced", rule=verdict.rule, message=verdict.message)
        return None
    return Refusal("verify", (finding,), f"commit {commit[:12]} refused: {finding}")


def _manifest(cfg: Config, releases: Releases, live: Live, source: Source, fetched: FetchResult,
              draft: Draft, layout: tuple[Finding, ...], findings: Sequence[Finding],
              basis: str) -> Manifest:
    release_id = free_release_id(releases, fetched.commit)
    structlog.contextvars.bind_contextvars(release=release_id)
    return Manifest(
        release=release_id, commit=fetched.commit, tree=fetched.tree, ref=cfg.ref, tag=source.tag,
        source=source.safe_url, skills_path=cfg.skills_path, created=now_iso(),
        previous_release=live.current, history_rewritten=fetched.history_rewritten,
        settings=cfg.release_settings(), layout=layout,
        validation=ValidationSummary(
            policy=cfg.on_invalid, held_back=tuple(sorted(draft.held)), basis=basis,
            errors=sum(1 for f in findings if f.severity is Severity.ERROR),
            warnings=sum(1 for f in findings if f.severity is Severity.WARNING)),
        skills=draft.records,
    )


def _write(cfg: Config, releases: Releases, live: Live, skills: Mapping[str, Skill], draft: Draft,
           manifest: Manifest, read_blob: Callable[[str], bytes]) -> None:
    build, copies = missing_versions(releases, live, skills, draft.serve, list(draft.build))
    stats = stage_release(releases, manifest.release, draft.serve, build, read_blob, manifest,
                          copies=copies, folders=cfg.publish_mode == "link", previous=live.current)
    log.info("staged", files_written=stats.files_written, versions_written=stats.versions_written,
             versions_reused=stats.versions_reused, bytes_written=stats.bytes_written)


def missing_versions(releases: Releases, live: Live, skills: Mapping[str, Skill],
                     serve: Mapping[str, str], build: list[Skill]
                     ) -> tuple[list[Skill], dict[str, Path]]:
    """What to write beyond the changed skills: versions this release serves that the
    store lacks (the first deploy after an upgrade from 0.1.0, whose releases hold real
    folders). Copied from the live release's folder where it has one, else from git."""
    have = releases.store.shas()
    building = {s.tree_sha for s in build}
    extra: list[Skill] = []
    copies: dict[str, Path] = {}
    live_dir = releases.dir(live.current) if live.current else None
    live_shas = live.manifest.live_shas()
    for name, sha in serve.items():
        if sha in have or sha in building or sha in copies:
            continue
        folder = live_dir / name if live_dir is not None else None
        if (folder is not None and not folder.is_symlink() and folder.is_dir()
                and live_shas.get(name) == sha):
            copies[sha] = folder
        elif name in skills and skills[name].tree_sha == sha:
            extra.append(skills[name])
            building.add(sha)
    if copies or extra:
        log.info("store_filled", copied=len(copies), built=len(extra),
                 hint="skill versions missing from the store (first deploy after an upgrade)")
    return build + extra, copies


def free_release_id(releases: Releases, commit: str) -> str:
    """A new id that sorts after every release on disk (ids sort by time).

    Two syncs within one second would otherwise be ordered by commit hash.
    """
    now = time.time()
    newest = max((p.name for p in releases.root.iterdir()), default="") \
        if releases.root.is_dir() else ""
    release_id = new_release_id(commit, now)
    while release_id[:16] <= newest[:16]:
        now += 1
        release_id = new_release_id(commit, now)
    return release_id
