"""One sync, top to bottom: lock, recover, probe, fetch, plan, validate, stage, flip, publish, verify, record.

:meth:`Syncer.sync` is the list of steps; each step is one call that returns a
value, and a step that ends the sync returns its outcome early. Decisions are
pure (plan.py, validation); state.json and the journal are written only through
the Ledger. The rule after any failure: what serves is what served before
(docs/architecture.md). Blocking; the daemon runs it in a worker thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import hashlib
import json
import os
import stat
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock
import structlog
from dulwich.object_store import tree_lookup_path
from dulwich.objects import ObjectID
from dulwich.repo import Repo

from skillsyncd import __version__, validation
from skillsyncd.config import Config
from skillsyncd.errors import (
    LockBusy,
    ReleaseError,
    SourceError,
    ValidationRejected,
)
from skillsyncd.fsutil import atomic_write
from skillsyncd.model import Change, Event, Finding, Plan, Severity, Skill, Status
from skillsyncd.release.manifest import EMPTY, Manifest, SkillRecord, ValidationSummary, finding_to_json
from skillsyncd.release.releases import Releases, new_release_id, stage_release, verify_release
from skillsyncd.source import discovery
from skillsyncd.source.remote import FetchResult, Source, redact_url
from skillsyncd.source.snapshot import SnapshotError, object_size, survey
from skillsyncd.status import disk_error
from skillsyncd.sync.decide import choose_deletions, make_plan, rollback_skills, rollback_target, skip_reason
from skillsyncd.sync.ledger import Ledger, Recorder, now_iso
from skillsyncd.sync.state import State
from skillsyncd.validation.gate import policy_of

log = structlog.get_logger(__name__)

TRIGGERS = ("poll", "webhook", "signal", "manual", "startup")

# A post-flip check returns problems (empty list: healthy). A check may also have
# ``wait_ready(cfg) -> str | None``: called before the flip, it waits (bounded) for
# what it checks to be healthy and says why not; such a check never blames a commit
# for problems that were there before the flip.
Check = Callable[[Config, str], Sequence[str]]
Publisher = Callable[[Config, str], Any]
Unpublisher = Callable[[Config], Any]


@dataclass(frozen=True)
class SyncOutcome:
    status: Status
    sync_id: str
    commit: str | None = None
    previous_commit: str | None = None
    release: str | None = None
    previous_release: str | None = None
    plan: Plan = field(default_factory=Plan)
    held_back: dict[str, list[str]] = field(default_factory=dict)
    skills_live: int = 0  # skills the release serves (held-back skills keeping an old version count)
    findings: tuple[Finding, ...] = ()
    history_rewritten: bool | None = None
    reason: str | None = None
    duration: float = 0.0


@dataclass(frozen=True)
class Run:
    """Who asked for this sync, and when."""

    sync_id: str
    trigger: str
    force: bool
    started: float
    attempt: str


@dataclass(frozen=True)
class Live:
    """What serves when a step starts: the recorded state and the release behind ``current``."""

    state: State
    current: str | None
    manifest: Manifest = EMPTY

    @property
    def fields(self) -> dict[str, Any]:
        return {"previous_commit": self.state.commit, "previous_release": self.current}


@dataclass(frozen=True)
class Candidate:
    """A staged, complete release that is not live yet."""

    manifest: Manifest
    plan: Plan
    held: dict[str, list[str]]
    findings: tuple[Finding, ...]
    skills: list[dict[str, Any]]  # per-skill lines of its journal event
    built: tuple[str, ...]
    history_rewritten: bool

    @property
    def release(self) -> str:
        return self.manifest.release


@dataclass(frozen=True)
class Verdict:
    """How publishing and the checks went for a release just flipped to."""

    problems: tuple[str, ...] = ()
    blame: bool = False  # the commit is at fault: mark it bad
    notes: tuple[str, ...] = ()  # problems not blamed on the commit (the gateway was not ready)

    @property
    def failed(self) -> bool:
        """Publishing failed, or a check the commit is blamed for."""
        return len(self.problems) > len(self.notes)


# --- lock ------------------------------------------------------------------------


class DeployLock:
    """filelock around a whole sync; records the holder's pid beside the lock."""

    def __init__(self, cfg: Config, timeout: float | None = None) -> None:
        self.cfg = cfg
        self.timeout = cfg.lock_timeout if timeout is None else timeout
        self.owner_file = cfg.lock_file.with_name(cfg.lock_file.name + ".owner")
        self._lock = filelock.FileLock(str(cfg.lock_file), timeout=self.timeout)

    def __enter__(self) -> DeployLock:
        try:
            self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except filelock.Timeout as exc:
            raise LockBusy(
                f"another skillsyncd (pid {self.holder() or 'unknown'}) holds "
                f"{self.cfg.lock_file} after waiting {self.timeout:.0f}s; "
                "retry later or raise SKILLSYNC_LOCK_TIMEOUT"
            ) from exc
        except OSError as exc:
            raise ReleaseError(disk_error(exc, self.cfg.state_dir)) from exc
        try:
            self.owner_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
        except OSError as exc:
            self._lock.release()
            raise ReleaseError(disk_error(exc, self.cfg.state_dir)) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def holder(self) -> str | None:
        try:
            return self.owner_file.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None


# --- the sync ----------------------------------------------------------------------


class Syncer:
    """Runs syncs and rollbacks for one configuration."""

    def __init__(
        self,
        cfg: Config,
        record: Recorder | None = None,
        publish: Publisher | None = None,
        checks: Sequence[Check] = (),
        journalled: Callable[[str], bool] | None = None,
        unpublish: Unpublisher | None = None,
    ) -> None:
        self.cfg = cfg
        self.releases = Releases(cfg.state_dir)
        self.ledger = Ledger(cfg.state_file, record, journalled)
        self.publish = publish
        self.unpublish = unpublish
        self.checks = list(checks)
        self._published_once = False

    # -- public entry points --

    def sync(self, trigger: str = "manual", force: bool = False) -> SyncOutcome:
        run = Run(uuid.uuid4().hex[:12], trigger, force, time.monotonic(), now_iso())
        structlog.contextvars.bind_contextvars(sync_id=run.sync_id)
        try:
            with DeployLock(self.cfg):
                return self._sync_locked(run)
        finally:
            structlog.contextvars.unbind_contextvars("sync_id", "commit", "release")
            release_free_memory()

    def _sync_locked(self, run: Run) -> SyncOutcome:
        source = Source(self.cfg)
        live = self._start(run, source)
        try:
            live = self._recover(run, live)
            head, live = self._probe(source, live)
            if (skip := skip_reason(live.state, live.current, head, run.force,
                                    self.cfg.release_settings())) is not None:
                return self._finish(run, self._skip(run, live, head, skip))
            fetched = self._fetch(source, live, head)
            candidate = self._stage(run, live, source, fetched)
            verdict = self._go_live(candidate)
            if verdict.failed:
                return self._finish(run, self._roll_back(run, live, candidate, verdict))
            return self._finish(run, self._record(run, live, candidate, source, verdict))
        except Exception as exc:
            error = self._failed(run, live, exc)
            if error is exc:
                raise
            raise error from exc

    def rollback(self, to: str | None = None, trigger: str = "manual") -> SyncOutcome:
        """Flip back to ``to``, by default the release ``current`` replaced that is not bad."""
        sync_id = uuid.uuid4().hex[:12]
        with DeployLock(self.cfg):
            self.releases.recover()
            state = self.ledger.load()
            current = self.releases.current()
            manifests = {r: self.releases.manifest(r) for r in self.releases.complete()}
            target = to or rollback_target(current, manifests, state.bad_commits)
            if target is None:
                raise ReleaseError("no earlier release to roll back to that is not marked bad "
                                   "(see `skillsyncd releases`; `--to` names one)")
            if target not in manifests:
                raise ReleaseError(f"release {target} does not exist or is incomplete")
            manifest = manifests[target]
            left = manifests.get(current or "", EMPTY)
            left_commit = state.commit
            self.releases.flip(target)
            self._publish(target)
            bad = {k: v for k, v in state.bad_commits.items() if k != manifest.commit}
            if left_commit and left_commit != manifest.commit:
                bad[left_commit] = f"manual rollback to {target}"
            reason = "manual rollback"
            self.ledger.write(
                Event.MANUAL_ROLLBACK,
                dataclasses.replace(state, commit=manifest.commit, release=target,
                                    last_good_release=target, bad_commits=bad),
                sync_id=sync_id, trigger=trigger, commit=manifest.commit,
                previous_commit=left_commit, release=target, previous_release=current,
                reason=reason, skills=rollback_skills(left, manifest),
                skills_count=len(manifest.live))
            log.info(str(Event.MANUAL_ROLLBACK), release=target, previous_release=current)
            return SyncOutcome(status=Status.MANUAL_ROLLBACK, sync_id=sync_id,
                               commit=manifest.commit, previous_commit=left_commit, release=target,
                               previous_release=current, reason=reason)

    # -- steps --

    def _start(self, run: Run, source: Source) -> Live:
        self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
        state = self.ledger.load()
        log.info(str(Event.SYNC_STARTED), trigger=run.trigger, ref=self.cfg.ref,
                 source=source.safe_url)
        self.ledger.write(Event.SYNC_STARTED, sync_id=run.sync_id, trigger=run.trigger,
                          commit=state.commit)
        return Live(dataclasses.replace(state, last_attempt=run.attempt), self.releases.current())

    def _recover(self, run: Run, live: Live) -> Live:
        """Clear a crash's leftovers and trust the disk over state.json: `current` is the commit point.

        A crash between the flip and the state write leaves the disk ahead of
        state.json. Publishing is finished (idempotent) and the checks run before
        the release is accepted and its `deployed` event recorded; if they fail,
        what served before serves again.
        """
        leftovers = self.releases.recover() + clear_mirror_leftovers(self.cfg.mirror_dir)
        if leftovers:
            log.warning("recovered_leftovers", removed=leftovers)
        state, current = live.state, live.current
        if current is None:
            want = self._repair_target(state)
            if want is not None:
                log.warning("current_repaired", release=want)
                self.releases.flip(want)
                self._publish(want)
                current = want
        if current is None:
            return Live(dataclasses.replace(state, commit=None, release=None), None)
        manifest = self.releases.manifest(current)
        if state.release == current:
            if not self._published_once:
                self._publish(current)  # a restart may follow a crash mid-publish
            return Live(state, current, manifest)
        log.warning("state_recovered", release=current, state_release=state.release)
        before = self.releases.manifest(state.release) \
            if state.release in self.releases.complete() else EMPTY
        previous = Live(state, before.release or None, before)
        verdict = self._verify_live(current, {})
        if verdict.problems:
            failed = Candidate(manifest, Plan(), {}, (), [], (), bool(manifest.history_rewritten))
            self._roll_back(run, previous, failed, dataclasses.replace(verdict, blame=True),
                            recovered=True)
            after = self.ledger.load()
            return Live(dataclasses.replace(after, last_attempt=run.attempt),
                        previous.current, before)
        if not self.ledger.journalled(current):
            self.ledger.write(
                Event.DEPLOYED, None, sync_id=run.sync_id, trigger=run.trigger, recovered=True,
                commit=manifest.commit, previous_commit=state.commit, release=current,
                previous_release=state.release, skills_count=len(manifest.live),
                skills=[s.event() for s in manifest.live])
        state = dataclasses.replace(state, commit=manifest.commit, release=current,
                                    last_good_release=current,
                                    settings=state.settings or manifest.settings)
        self.ledger.write(None, state)
        return Live(state, current, manifest)

    def _probe(self, source: Source, live: Live) -> tuple[str, Live]:
        head = source.probe()
        structlog.contextvars.bind_contextvars(commit=head[:12])
        state = dataclasses.replace(live.state, upstream_commit=head)
        settings = self.cfg.release_settings()
        if state.settings != settings and state.commit is not None:
            log.info("settings_changed", hint="the settings that shape a release changed: re-deploying")
        return head, dataclasses.replace(live, state=state)

    def _skip(self, run: Run, live: Live, head: str, status: Status) -> SyncOutcome:
        state = dataclasses.replace(live.state, failure_streak=0, last_success=now_iso(),
                                    last_error=None)
        common = dict(sync_id=run.sync_id, commit=head, release=live.current, **live.fields)
        reason = None
        if status is Status.NO_CHANGE:
            log.info(str(Event.NO_CHANGE), release=live.current)
            self.ledger.write(Event.NO_CHANGE, state, trigger=run.trigger, **common)
        elif status is Status.SKIPPED_BAD:
            reason = live.state.bad_commits[head]
            log.warning("skipped_bad_commit", reason=reason)
            self.ledger.write(None, state)
        else:
            reason = "commit was rejected by validation"
            log.info("skipped_rejected_commit")
            self.ledger.write(None, state)
        return SyncOutcome(status=status, reason=reason, **common)

    def _fetch(self, source: Source, live: Live, head: str) -> FetchResult:
        if live.state.source and live.state.source != source.safe_url:
            log.warning("source_changed", old=live.state.source, new=source.safe_url)
            source.reset_mirror()
        fetched = source.fetch(head, previous=live.state.commit)
        log.info("fetched", tree=fetched.tree, fetched=fetched.fetched, objects=fetched.objects,
                 bytes=fetched.bytes,
                 duration=round(fetched.duration, 3), history_rewritten=fetched.history_rewritten)
        if fetched.history_rewritten:
            log.warning("history_rewritten", previous_commit=live.state.commit)
        return fetched

    def _stage(self, run: Run, live: Live, source: Source, fetched: FetchResult) -> Candidate:
        """Plan, validate and stage: a complete release on disk, not live yet."""
        repo = Repo(str(self.cfg.mirror_dir))
        try:
            return self._stage_from(run, live, source, fetched, repo)
        finally:
            repo.close()

    def _go_live(self, candidate: Candidate) -> Verdict:
        """Flip, publish, verify. Problems come back as a verdict, never as an exception."""
        not_ready = self._baseline()
        self.releases.flip(candidate.release)
        log.info("flipped", release=candidate.release,
                 previous_release=candidate.manifest.previous_release)
        return self._verify_live(candidate.release, not_ready, built=candidate.built)

    def _record(self, run: Run, live: Live, c: Candidate, source: Source,
                verdict: Verdict) -> SyncOutcome:
        commit = c.manifest.commit
        new_state = dataclasses.replace(
            live.state, commit=commit, release=c.release, last_good_release=c.release,
            source=source.safe_url, ref=self.cfg.ref, rejected_commit=None,
            settings=c.manifest.settings, failure_streak=0, last_success=now_iso(), last_error=None)
        try:
            self.ledger.write(
                Event.DEPLOYED, new_state, sync_id=run.sync_id, trigger=run.trigger, commit=commit,
                release=c.release, skills=c.skills, skills_count=len(c.manifest.live),
                held_back=c.held, history_rewritten=c.history_rewritten,
                findings=[finding_to_json(f) for f in c.findings], **live.fields)
        except Exception:
            self._restore(live)  # not on record: what served before serves again
            raise
        for name, reasons in c.held.items():
            log.warning("skill_held_back", skill=name, reasons=reasons)
        self._prune(new_state)
        reason = "; ".join(verdict.notes)[:2000] or None
        return SyncOutcome(status=Status.DEPLOYED, sync_id=run.sync_id, commit=commit,
                           release=c.release, plan=c.plan, held_back=c.held,
                           skills_live=len(c.manifest.live), findings=c.findings,
                           history_rewritten=c.history_rewritten, reason=reason, **live.fields)

    def _roll_back(self, run: Run, live: Live, c: Candidate, verdict: Verdict,
                   recovered: bool = False) -> SyncOutcome:
        """A failure after the flip: what served before serves again, and the record says why."""
        reason = "; ".join(verdict.problems)[:2000]
        commit = c.manifest.commit
        restored = self._restore(live)
        if restored:
            reason = f"{reason}; restoring {live.current or 'nothing live'} also failed: {restored}"
        if live.current is None:
            with contextlib.suppress(OSError, ReleaseError):
                self.releases.delete(c.release)  # never served: nothing may repair to it
        bad = dict(live.state.bad_commits)
        if verdict.blame:
            bad[commit] = f"health check failed: {reason}"
        state = dataclasses.replace(live.state, bad_commits=bad,
                                    failure_streak=live.state.failure_streak + 1, last_error=reason)
        self.ledger.write(Event.ROLLED_BACK, state, sync_id=run.sync_id, trigger=run.trigger,
                          commit=commit, release=live.current, rolled_back_release=c.release,
                          reason=reason, marked_bad=verdict.blame, skills=c.skills,
                          **({"recovered": True} if recovered else {}), **live.fields)
        log.error(str(Event.ROLLED_BACK), release=live.current, rolled_back_release=c.release,
                  reason=reason, marked_bad=verdict.blame)
        return SyncOutcome(status=Status.ROLLED_BACK, sync_id=run.sync_id, commit=commit,
                           release=live.current, reason=reason, plan=c.plan, **live.fields)

    def _finish(self, run: Run, outcome: SyncOutcome) -> SyncOutcome:
        duration = round(time.monotonic() - run.started, 3)
        outcome = dataclasses.replace(outcome, duration=duration)
        log.info(str(Event.SYNC_FINISHED), status=str(outcome.status), commit=outcome.commit,
                 release=outcome.release, duration=duration)
        self.ledger.write(Event.SYNC_FINISHED, sync_id=run.sync_id, trigger=run.trigger,
                          status=str(outcome.status), commit=outcome.commit,
                          release=outcome.release, duration=duration)
        return outcome

    def _failed(self, run: Run, live: Live, exc: Exception) -> Exception:
        """Nothing changed on disk (or it was put back): say so plainly, and keep the record."""
        error: Exception = ReleaseError(disk_error(exc, self.cfg.state_dir)) \
            if isinstance(exc, OSError) else exc
        reason = str(error)
        duration = round(time.monotonic() - run.started, 3)
        if isinstance(exc, ValidationRejected):
            log.warning(str(Event.REJECTED), error=reason)
            self.ledger.note(Event.SYNC_FINISHED, sync_id=run.sync_id, trigger=run.trigger,
                             status=str(Status.REJECTED), duration=duration)
            return error
        kind = Event.FETCH_FAILED if isinstance(exc, SourceError) else Event.SYNC_FAILED
        log.error(str(kind), error=reason, exc_type=type(exc).__name__)
        self.ledger.failure(kind, reason, run.attempt, sync_id=run.sync_id, trigger=run.trigger,
                            commit=live.state.commit)
        self.ledger.note(Event.SYNC_FINISHED, sync_id=run.sync_id, trigger=run.trigger,
                         status=str(Status.FAILED), duration=duration)
        return error

    # -- helpers of the steps --

    def _stage_from(self, run: Run, live: Live, source: Source, fetched: FetchResult,
                    repo: Repo) -> Candidate:
        cfg = self.cfg
        settings = cfg.release_settings()

        def reject(policy: str, refused: Sequence[Finding], message: str) -> ValidationRejected:
            self.ledger.write(
                Event.REJECTED,
                dataclasses.replace(live.state, rejected_commit=fetched.commit, settings=settings),
                sync_id=run.sync_id, trigger=run.trigger, commit=fetched.commit, policy=policy,
                findings=[finding_to_json(f) for f in refused], **live.fields)
            return ValidationRejected(message)

        unsigned = self._signature_refusal(repo, fetched.commit)
        if unsigned is not None:
            raise reject("verify", [unsigned], f"commit {fetched.commit[:12]} refused: {unsigned}")
        read_blob = source.blob_reader(repo)
        try:
            surveyed = survey(repo.object_store, fetched.tree, cfg.skills_path, cfg.skill_depth,
                              cfg.ignore)
        except SnapshotError as exc:
            hint = "" if "missing" in str(exc) else "; check SKILLSYNC_SKILLS_PATH"
            raise SourceError(f"{exc}{hint}") from exc
        skills = dict(surveyed.skills)
        layout = layout_findings(surveyed.skipped, cfg)
        old = live.manifest.live_by_name()
        plan = make_plan(live.manifest.live_shas(), {n: s.tree_sha for n, s in skills.items()})
        log.info("planned", added=len(plan.added), changed=len(plan.changed),
                 removed=len(plan.removed), unchanged=len(plan.unchanged))

        findings: dict[str, tuple[Finding, ...]] = {}
        metadata: dict[str, dict[str, Any]] = {}
        allowed = read_allowlist(repo.object_store, fetched.tree, cfg.skills_path)
        basis = judgement_basis(settings, allowed)
        judged = held_verdicts(live.manifest, basis)
        again: list[str] = []  # held back before, same bytes, same rules: not judged twice
        for name in plan.to_build:
            if skills[name].tree_sha in judged:
                findings[name], metadata[name] = judged[skills[name].tree_sha], {}
                again.append(name)
                continue
            findings[name], metadata[name] = self._validate(skills[name], read_blob, allowed)
        release_findings = validation.check_release(
            list(skills.values()), cfg,
            names={n: (metadata[n].get("effective_name") if n in metadata else
                       (old[n].effective_name if n in old else None)) for n in skills},
        )
        blocked = {n: f for n, f in findings.items() if validation.has_errors(f)}
        release_errors = [f for f in release_findings if f.severity is Severity.ERROR]
        all_findings = tuple(f for fs in findings.values() for f in fs) + release_findings + layout
        repeated = {id(f) for n in again for f in findings[n]}
        for f in all_findings:
            if id(f) not in repeated:
                (log.warning if f.severity is Severity.ERROR else log.info)(
                    "validation_finding", rule=f.rule, severity=str(f.severity),
                    path=f.location(), message=f.message)
        if again:
            log.info("still_held_back", skills=again[:50], count=len(again),
                     hint="same content and rules as when it was held back; its findings are in "
                          "the manifest and `skillsyncd status`")

        errors = [f for f in all_findings if f.severity is Severity.ERROR]
        if (blocked or release_errors) and cfg.on_invalid == "reject":
            raise reject("reject", errors, f"commit {fetched.commit[:12]} rejected: "
                         + "; ".join(str(f) for f in errors)[:2000])
        if release_errors:
            # Release-wide problems (e.g. over the total size cap) cannot be skipped per skill.
            raise reject("reject", release_errors, "; ".join(str(f) for f in release_errors))

        build: list[Skill] = []
        serve: dict[str, str] = {}  # skill -> the content sha this release serves
        records: list[SkillRecord] = []
        held: dict[str, list[str]] = {}
        for name in sorted(skills):
            skill = skills[name]
            if name in blocked:
                held[name] = [str(f) for f in blocked[name] if f.severity is Severity.ERROR]
                if name in old and live.current:
                    serve[name] = old[name].content_sha or ""
                    records.append(old[name].held_back(skill.tree_sha, blocked[name]))
                else:
                    records.append(SkillRecord(name=name, live=False, status="held_back",
                                               rejected_sha=skill.tree_sha,
                                               findings=blocked[name]))
                continue
            serve[name] = skill.tree_sha
            if plan.change_of(name) is Change.UNCHANGED and live.current:
                records.append(dataclasses.replace(old[name], status="ok", change="unchanged",
                                                   rejected_sha=None, findings=()))
                continue
            build.append(skill)
            meta = metadata.get(name, {})
            records.append(SkillRecord(
                name=name, live=True, status="ok", change=str(plan.change_of(name)),
                content_sha=skill.tree_sha, commit=fetched.commit, version=meta.get("version"),
                declared_name=meta.get("name"), effective_name=meta.get("effective_name"),
                description=meta.get("description"), files=len(skill.entries),
                bytes=sum(e.size or 0 for e in skill.entries), warnings=findings.get(name, ()),
            ))
        live_names = [r.name for r in records if r.live]
        guard = mass_removal(len(old), len(live_names), len(plan.removed))
        if guard is not None and not (run.force or cfg.allow_mass_removal):
            finding = policy_of(cfg).finding(
                "guard.mass-removal", cfg.skills_path or ".",
                f"{guard}; nothing is removed. If this is intended, deploy it once with "
                "`skillsyncd --once --force`, or set SKILLSYNC_ALLOW_MASS_REMOVAL=true")
            if finding is not None and finding.severity is Severity.ERROR:
                raise reject("guard", [finding], f"commit {fetched.commit[:12]} refused: {finding}")
        unloaded = discovery.gateway_unloaded(live_names, cfg.gateway_max_candidates,
                                              cfg.gateway_max_skills)
        if unloaded:
            cap = policy_of(cfg).finding(
                "layout.gateway-cap", cfg.skills_path or ".",
                f"{len(live_names)} skills go live, but the gateway loads at most "
                f"{cfg.gateway_max_skills} per folder (skills.limits.maxSkillsLoadedPerSource) and "
                f"lists {cfg.gateway_max_candidates} folders per folder: it will not load "
                f"{len(unloaded)}: {', '.join(unloaded[:20])}{', ...' if len(unloaded) > 20 else ''}; "
                "raise the gateway's limits and SKILLSYNC_GATEWAY_MAX_SKILLS together")
            if cap is not None:
                layout += (cap,)
                all_findings += (cap,)
                log.warning("validation_finding", rule=cap.rule, severity=str(cap.severity),
                            path=cap.location(), message=cap.message)
        for name in plan.removed:
            log.info("skill_removed", skill=name)

        release_id = self._free_release_id(fetched.commit)
        structlog.contextvars.bind_contextvars(release=release_id)
        manifest = Manifest(
            release=release_id, commit=fetched.commit, tree=fetched.tree, ref=cfg.ref,
            source=source.safe_url, skills_path=cfg.skills_path, created=now_iso(),
            previous_release=live.current, history_rewritten=fetched.history_rewritten,
            settings=settings, layout=layout,
            validation=ValidationSummary(
                policy=cfg.on_invalid, held_back=tuple(sorted(held)), basis=basis,
                errors=sum(1 for f in all_findings if f.severity is Severity.ERROR),
                warnings=sum(1 for f in all_findings if f.severity is Severity.WARNING)),
            skills=tuple(records),
        )
        build, copies = self._missing_versions(live, skills, serve, build)
        stats = stage_release(self.releases, release_id, serve, build, read_blob, manifest,
                              copies=copies, folders=cfg.publish_mode == "link",
                              previous=live.current)
        log.info("staged", files_written=stats.files_written,
                 versions_written=stats.versions_written, versions_reused=stats.versions_reused,
                 bytes_written=stats.bytes_written)
        skill_events = [
            r.event(r.change if r.status == "ok" else "held_back") if r.live
            else {"name": r.name, "version": None, "content_sha": None, "change": "held_back"}
            for r in records
        ] + [old[n].event("removed") for n in plan.removed]
        return Candidate(manifest, plan, held, all_findings, skill_events,
                         tuple(s.name for s in build), bool(fetched.history_rewritten))

    def _missing_versions(self, live: Live, skills: Mapping[str, Skill], serve: Mapping[str, str],
                          build: list[Skill]) -> tuple[list[Skill], dict[str, Path]]:
        """What to write beyond the changed skills: versions this release serves that the
        store lacks (the first deploy after an upgrade from 0.1.0, whose releases hold real
        folders). Copied from the live release's folder where it has one, else from git."""
        store = self.releases.store
        have = store.shas()
        building = {s.tree_sha for s in build}
        extra: list[Skill] = []
        copies: dict[str, Path] = {}
        live_dir = self.releases.dir(live.current) if live.current else None
        for name, sha in serve.items():
            if sha in have or sha in building or sha in copies:
                continue
            folder = live_dir / name if live_dir is not None else None
            if (folder is not None and not folder.is_symlink() and folder.is_dir()
                    and live.manifest.live_shas().get(name) == sha):
                copies[sha] = folder
            elif name in skills and skills[name].tree_sha == sha:
                extra.append(skills[name])
                building.add(sha)
        if copies or extra:
            log.info("store_filled", copied=len(copies), built=len(extra),
                     hint="skill versions missing from the store (first deploy after an upgrade)")
        return build + extra, copies

    def _signature_refusal(self, repo: Repo, commit: str) -> Finding | None:
        """The finding that refuses the commit when SKILLSYNC_VERIFY wants a trusted signature
        it lacks (skillsyncd.source.signatures); None when it may deploy."""
        cfg = self.cfg
        if cfg.verify == "none":
            return None
        from skillsyncd.source.signatures import verify_commit

        raw = repo.object_store[ObjectID(commit.encode())].as_raw_string()
        verdict = verify_commit(raw, cfg.verify, cfg.allowed_signers.get() or "", cfg.gpg_keys.get() or "",
                                commit)
        if verdict.ok:
            log.info("signature_verified", signer=verdict.signer)
            return None
        finding = policy_of(cfg).finding(verdict.rule or "commit.bad-signature", commit[:12], verdict.message)
        if finding is None or finding.severity is not Severity.ERROR:
            log.warning("signature_not_enforced", rule=verdict.rule, message=verdict.message)
            return None
        return finding

    def _validate(self, skill: Skill, read_blob: Callable[[str], bytes],
                  allowed: frozenset[str] = frozenset()
                  ) -> tuple[tuple[Finding, ...], dict[str, Any]]:
        prefix = f"{self.cfg.skills_path}/{skill.name}" if self.cfg.skills_path else skill.name
        entry_findings = validation.check_entries(skill, self.cfg, prefix=prefix)
        if validation.has_errors(entry_findings):
            # Unsafe paths or oversize blobs: not one byte of this skill is read.
            return entry_findings, {}
        # One pass: SKILL.md is parsed once for the rules and the metadata, and the
        # path rules above are not run a second time.
        checked = validation.check_skill(skill, read_blob, self.cfg, prefix=prefix,
                                         allowed_fingerprints=allowed,
                                         entry_findings=entry_findings)
        return checked.findings, dict(checked.metadata)

    def _free_release_id(self, commit: str) -> str:
        """A new id that sorts after every release on disk (ids sort by time).

        Two syncs within one second would otherwise be ordered by commit hash.
        """
        now = time.time()
        newest = max((p.name for p in self.releases.root.iterdir()), default="") \
            if self.releases.root.is_dir() else ""
        release_id = new_release_id(commit, now)
        while release_id[:16] <= newest[:16]:
            now += 1
            release_id = new_release_id(commit, now)
        return release_id


    def _repair_target(self, state: State) -> str | None:
        """Where a missing `current` points again: the recorded release, else the newest good one."""
        complete = self.releases.complete()
        if state.release in complete:
            return state.release
        for rid in reversed(complete):
            with contextlib.suppress(ReleaseError):
                if self.releases.manifest(rid).commit not in state.bad_commits:
                    return rid
        return None

    def _baseline(self) -> dict[int, str]:
        """Before the flip: wait (bounded) for what the checks watch; index -> why it is not ready."""
        not_ready: dict[int, str] = {}
        for i, check in enumerate(self.checks):
            wait = getattr(check, "wait_ready", None)
            if wait is None:
                continue
            why = wait(self.cfg)
            if why:
                not_ready[i] = why
                log.warning("gateway_not_ready", reason=why,
                            hint="a check that fails now is reported, not blamed on the commit")
        return not_ready

    def _verify_live(self, release_id: str, not_ready: Mapping[int, str],
                     built: Sequence[str] = ()) -> Verdict:
        try:
            self._publish(release_id)
        except Exception as exc:
            why = disk_error(exc, self.cfg.state_dir) if isinstance(exc, OSError) else str(exc)
            log.error("publish_failed", release=release_id, error=why)
            return Verdict(problems=(f"publish failed: {why}",), blame=False)
        blamed, notes = self._check(release_id, not_ready)
        return Verdict(problems=tuple(blamed + notes), blame=bool(blamed), notes=tuple(notes))

    def _restore(self, live: Live) -> str | None:
        """Make what served before serve again; the error text if that failed too."""
        try:
            if live.current is not None:
                self.releases.flip(live.current)
                self._publish(live.current)
            else:
                if self.unpublish is not None:
                    self.unpublish(self.cfg)
                self.releases.unflip()
        except Exception as exc:
            log.error("restore_failed", release=live.current, error=str(exc))
            return str(exc)
        return None

    def _publish(self, release_id: str) -> None:
        self._published_once = True
        if self.publish is not None:
            result = self.publish(self.cfg, release_id)
            log.info("published", release=release_id, result=_jsonable(result))

    def _check(self, release_id: str, not_ready: Mapping[int, str] | None = None
               ) -> tuple[list[str], list[str]]:
        """Run the checks: (problems blamed on the release, problems of a gateway not ready before)."""
        not_ready = not_ready or {}
        blamed: list[str] = []
        notes: list[str] = []
        for i, check in enumerate(self.checks):
            try:
                found = list(check(self.cfg, release_id))
            except Exception as exc:  # a broken check is a failed check
                found = [f"{getattr(check, '__name__', 'check')}: {exc}"]
            if found and i in not_ready:
                notes += [f"gateway not ready before the flip ({not_ready[i]}): {p}" for p in found]
            else:
                blamed += found
        if blamed:
            log.error("health_check_failed", problems=blamed[:20])
        if notes:
            log.warning("health_check_not_blamed", problems=notes[:20])
        return blamed, notes

    def _prune(self, state: State) -> None:
        """Retention: old releases first, then the skill versions no kept release uses."""
        complete = self.releases.complete()
        doomed = choose_deletions(
            complete, self.cfg.keep_releases, protect=(state.release, state.last_good_release)
        )
        for release_id in doomed:
            self.releases.delete(release_id)
            log.info("release_pruned", release=release_id)
        try:
            removed = self.releases.collect()
        except ReleaseError as exc:  # an unreadable manifest: keep every version, say why
            log.warning("store_not_collected", error=str(exc))
            return
        if removed:
            log.info("skill_versions_pruned", count=len(removed), content_shas=removed[:20])


ALLOWLIST_MAX_BYTES = 64 * 1024


def release_free_memory() -> None:
    """Give the heap pages a sync freed back to the OS (glibc ``malloc_trim``).

    A first sync of 10,000 skills peaks far above what an idle daemon holds; without
    this the freed pages stay in the process and count as its resident memory.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        fn: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return fn


def judgement_basis(settings: str, allowed: frozenset[str]) -> str:
    """What a skill's verdict depends on besides its bytes: the settings, the allow-list
    and the rules themselves (skillsyncd's version)."""
    digest = hashlib.sha256(f"{__version__}\n{settings}".encode())
    for fingerprint in sorted(allowed):
        digest.update(b"\n" + fingerprint.encode())
    return digest.hexdigest()[:16]


def held_verdicts(manifest: Manifest, basis: str) -> dict[str, tuple[Finding, ...]]:
    """Content sha -> findings of the versions ``manifest`` held back under the same basis (pure).

    A held-back skill pushed again unchanged keeps its verdict: it is neither parsed
    nor scanned nor logged as new on every sync.
    """
    if manifest.validation.basis != basis:
        return {}
    return {s.rejected_sha: s.findings for s in manifest.skills
            if s.rejected_sha and s.findings and validation.has_errors(s.findings)}


def layout_findings(skipped: Sequence[discovery.Skipped], cfg: Config) -> tuple[Finding, ...]:
    """What discovery left out, as findings with paths as the author sees them."""
    policy = policy_of(cfg)
    root = cfg.skills_path.strip("/")
    out = (policy.finding(s.rule, _under(root, s.path), s.message) for s in skipped)
    return tuple(f for f in out if f is not None)


def _under(root: str, path: str) -> str:
    if not root:
        return path
    return root if path == "." else f"{root}/{path}"


def mass_removal(live_before: int, live_after: int, removed: int) -> str | None:
    """Why a deploy would remove too much (more than half of the live skills, or all), else None."""
    if live_before == 0 or removed == 0:
        return None
    if live_after == 0:
        return f"it would remove all {live_before} live skills"
    if removed * 2 > live_before:
        return f"it would remove {removed} of {live_before} live skills"
    return None


def read_allowlist(store: Any, tree_sha: str, skills_path: str) -> frozenset[str]:
    """Secret fingerprints allowed by ``.skillsync-allow`` at the repository or skills root."""
    allowed: set[str] = set()
    for folder in {"", skills_path}:
        path = f"{folder}/{validation.ALLOWLIST_FILE}" if folder else validation.ALLOWLIST_FILE
        try:
            mode, sha = tree_lookup_path(store.__getitem__, ObjectID(tree_sha.encode()), path.encode())
        except KeyError:
            continue
        size = object_size(store, sha.decode())
        if not stat.S_ISREG(mode) or size is None or size > ALLOWLIST_MAX_BYTES:
            log.warning("allowlist_ignored", path=path, reason="not a regular file under 64 KB")
            continue
        allowed |= validation.parse_allowlist(store[sha].as_raw_string())
    return frozenset(allowed)


def clear_mirror_leftovers(mirror: Path) -> list[str]:
    """Remove what a killed fetch leaves in the mirror: git lock files and half-written packs.

    Called under the deploy lock, so no other fetch can own them. A stale
    ``refs/.../X.lock`` would otherwise fail every later fetch (dulwich FileLocked).
    """
    removed: list[str] = []
    if not mirror.is_dir():
        return removed
    doomed: list[Path] = [p for p in mirror.glob("*.lock") if p.is_file()]
    refs = mirror / "refs"
    if refs.is_dir():
        doomed += [p for p in refs.rglob("*.lock") if p.is_file()]
    objects = mirror / "objects"
    if objects.is_dir():
        doomed += [p for p in objects.glob("tmp_pack_*") if p.is_file()]
    packs = objects / "pack"
    if packs.is_dir():
        for p in packs.iterdir():
            if not p.is_file():
                continue
            if p.suffix == ".lock" or (p.suffix == ".pack" and not p.with_suffix(".idx").exists()):
                doomed.append(p)
    for p in doomed:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(str(p.relative_to(mirror.parent)))
    return removed


def readback_check(cfg: Config, release_id: str) -> list[str]:
    """Post-flip check: the skills this release wrote hash to the manifest's content sha.

    Skills it reused are hard links to (or, for SKILL.md, copies from) a release that
    passed this check when it went live; they are checked for presence only, so one
    changed skill in 10,000 does not re-hash the other 9,999.
    """
    releases = Releases(cfg.state_dir)
    try:
        manifest = releases.manifest(release_id)
    except ReleaseError as exc:
        return [str(exc)]
    written = {s.name for s in manifest.live if s.change != "unchanged"}
    return verify_release(releases, release_id, only=written)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json.loads(json.dumps(dataclasses.asdict(value), default=str))
    return value


__all__ = ["TRIGGERS", "DeployLock", "Status", "SyncOutcome", "Syncer", "atomic_write", "now_iso",
           "readback_check", "redact_url"]
