"""One sync, start to finish: lock, probe, fetch, plan, validate, stage, flip, publish, verify, record.

This is the imperative shell around the pure parts (plan, validation). It is
blocking; the daemon runs it in a worker thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import stat
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import filelock
import structlog
from dulwich.object_store import tree_lookup_path
from dulwich.objects import ObjectID
from dulwich.repo import Repo

from skillsyncd import discovery, validation
from skillsyncd.config import Config
from skillsyncd.errors import (
    LockBusy,
    ReleaseError,
    SkillsyncError,
    SourceError,
    ValidationRejected,
)
from skillsyncd.fsutil import atomic_write
from skillsyncd.model import Change, Finding, Plan, Severity, Skill
from skillsyncd.plan import choose_deletions, make_plan, rollback_skills
from skillsyncd.release import Releases, new_release_id, stage_release, verify_release
from skillsyncd.snapshot import SnapshotError, object_size, survey
from skillsyncd.source import FetchResult, Source, redact_url
from skillsyncd.state import State, load_state, save_state
from skillsyncd.validation.gate import policy_of

log = structlog.get_logger(__name__)

TRIGGERS = ("poll", "webhook", "signal", "manual", "startup")


class Recorder(Protocol):
    """Where audit events go (the journal); called with an event kind and fields."""

    def __call__(self, kind: str, **fields: Any) -> Any: ...


# A post-flip check returns problems (empty list: healthy).
Check = Callable[[Config, str], Sequence[str]]
Publisher = Callable[[Config, str], Any]


def _no_record(kind: str, **fields: Any) -> None:
    return None


@dataclass(frozen=True)
class SyncOutcome:
    status: str  # deployed | no_change | rejected | rolled_back | skipped_bad | failed
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


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
            raise ReleaseError(_state_dir_hint(self.cfg, exc)) from exc
        try:
            self.owner_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
        except OSError as exc:
            self._lock.release()
            raise ReleaseError(_state_dir_hint(self.cfg, exc)) from exc
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
    ) -> None:
        self.cfg = cfg
        self.releases = Releases(cfg.state_dir)
        self.record: Recorder = record or _no_record
        self.publish = publish
        self.checks = list(checks)
        self._published_once = False
        # Whether a `deployed` event for a release id is already in the journal.
        self.journalled: Callable[[str], bool] = journalled or (lambda _release: False)

    # -- public entry points --

    def sync(self, trigger: str = "manual", force: bool = False) -> SyncOutcome:
        sync_id = uuid.uuid4().hex[:12]
        structlog.contextvars.bind_contextvars(sync_id=sync_id)
        start = time.monotonic()
        try:
            with DeployLock(self.cfg):
                return self._sync_locked(sync_id, trigger, force, start)
        finally:
            structlog.contextvars.unbind_contextvars("sync_id", "commit", "release")

    def rollback(self, to: str | None = None, trigger: str = "manual") -> SyncOutcome:
        """Flip back to ``to`` (default: the release before the current one)."""
        sync_id = uuid.uuid4().hex[:12]
        with DeployLock(self.cfg):
            self.releases.recover()
            state = load_state(self.cfg.state_file)
            current = self.releases.current()
            complete = self.releases.complete()
            target = to or _previous(complete, current)
            if target is None:
                raise ReleaseError("no earlier release to roll back to (see `skillsyncd releases`)")
            if target not in complete:
                raise ReleaseError(f"release {target} does not exist or is incomplete")
            manifest = self.releases.manifest(target)
            left_manifest = self.releases.manifest(current) \
                if current in complete else {"skills": []}
            left = state.commit
            self.releases.flip(target)
            self._publish(target)
            bad = dict(state.bad_commits)
            if left and left != manifest["commit"]:
                bad[left] = f"manual rollback to {target}"
            save_state(
                self.cfg.state_file,
                dataclasses.replace(
                    state,
                    commit=manifest["commit"],
                    release=target,
                    last_good_release=target,
                    bad_commits=bad,
                ),
            )
            self.record(
                "manual_rollback",
                sync_id=sync_id,
                trigger=trigger,
                commit=manifest["commit"],
                previous_commit=left,
                release=target,
                previous_release=current,
                reason="manual rollback",
                skills=rollback_skills(left_manifest, manifest),
                skills_count=sum(1 for s in manifest.get("skills", []) if s.get("live")),
            )
            log.info("rollback_done", release=target, previous_release=current)
            return SyncOutcome(
                status="rolled_back",
                sync_id=sync_id,
                commit=manifest["commit"],
                previous_commit=left,
                release=target,
                previous_release=current,
                reason="manual rollback",
            )

    # -- steps --

    def _sync_locked(self, sync_id: str, trigger: str, force: bool, start: float) -> SyncOutcome:
        cfg = self.cfg
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        leftovers = self.releases.recover() + clear_mirror_leftovers(cfg.mirror_dir)
        if leftovers:
            log.warning("recovered_leftovers", removed=leftovers)
        state = load_state(cfg.state_file)
        state, current = self._reconcile(sync_id, trigger, state)
        source = Source(cfg)
        log.info("sync_started", trigger=trigger, ref=cfg.ref, source=source.safe_url)
        self.record("sync_started", sync_id=sync_id, trigger=trigger, commit=state.commit)
        state = dataclasses.replace(state, last_attempt=now_iso())
        try:
            outcome = self._run(sync_id, trigger, force, state, current, source)
        except Exception as exc:
            # A full or read-only disk is an operational fault, not a bug: say so plainly
            # (exit 1, no traceback). Before the flip the live release is untouched.
            error: Exception = ReleaseError(_state_dir_hint(cfg, exc)) \
                if isinstance(exc, OSError) else exc
            reason = str(error)
            kind = "fetch_failed" if isinstance(exc, SourceError) else "sync_failed"
            if isinstance(exc, ValidationRejected):
                kind = "validation_rejected"
            level = log.warning if isinstance(exc, ValidationRejected) else log.error
            level(kind, error=reason, exc_type=type(exc).__name__)
            try:
                if not isinstance(exc, ValidationRejected):
                    fresh = load_state(cfg.state_file)
                    save_state(
                        cfg.state_file,
                        dataclasses.replace(
                            fresh,
                            failure_streak=fresh.failure_streak + 1,
                            last_attempt=state.last_attempt,
                            last_error=reason,
                        ),
                    )
                    self.record(kind, sync_id=sync_id, trigger=trigger, commit=state.commit,
                                error=reason)
                self.record("sync_finished", sync_id=sync_id, trigger=trigger, status="failed",
                            duration=round(time.monotonic() - start, 3))
            except (OSError, SkillsyncError) as book:
                # The same full or read-only disk: the original error is the one to report.
                log.error("failure_not_recorded", error=str(book))
            if error is exc:
                raise
            raise error from exc
        duration = round(time.monotonic() - start, 3)
        outcome = dataclasses.replace(outcome, duration=duration)
        log.info("sync_finished", status=outcome.status, commit=outcome.commit,
                 release=outcome.release, duration=duration)
        self.record("sync_finished", sync_id=sync_id, trigger=trigger, status=outcome.status,
                    commit=outcome.commit, release=outcome.release, duration=duration)
        return outcome

    def _reconcile(self, sync_id: str, trigger: str, state: State) -> tuple[State, str | None]:
        """Trust the disk over state.json: `current` is the commit point.

        A crash between the flip and the state write leaves the disk ahead of
        state.json; the deployment happened, so its event is recorded now.
        """
        current = self.releases.current()
        if current is None:
            complete = self.releases.complete()
            want = state.release if state.release in complete else None
            if want is None and complete:
                want = complete[-1]
            if want is not None:
                log.warning("current_repaired", release=want)
                self.releases.flip(want)
                self._publish(want)
                current = want
        if current is None:
            return dataclasses.replace(state, commit=None, release=None), None
        if state.release != current:
            manifest = self.releases.manifest(current)
            log.warning("state_recovered", release=current, state_release=state.release)
            # The crash may have cut publishing and the post-flip checks short: finish
            # publishing (idempotent), then check before accepting the release, and go
            # back to the last recorded one if the checks fail. Checking first would
            # judge a half-published view and mark a good commit bad.
            self._publish(current)
            problems = self._check(current, built=())
            if problems and state.release in self.releases.complete():
                reason = "; ".join(problems)[:2000]
                self.releases.flip(state.release)
                self._publish(state.release)
                bad = {**state.bad_commits, manifest["commit"]: f"health check failed: {reason}"}
                save_state(self.cfg.state_file, dataclasses.replace(state, bad_commits=bad))
                self.record("rolled_back", sync_id=sync_id, trigger=trigger, recovered=True,
                            commit=manifest["commit"], previous_commit=state.commit,
                            release=state.release, rolled_back_release=current, reason=reason)
                log.error("rolled_back", release=state.release, rolled_back_release=current,
                          reason=reason)
                return dataclasses.replace(state, bad_commits=bad), state.release
            live = [s for s in manifest.get("skills", []) if s.get("live")]
            if not self.journalled(current):
                self.record(
                    "deployed", sync_id=sync_id, trigger=trigger, recovered=True,
                    commit=manifest["commit"], previous_commit=state.commit, release=current,
                    previous_release=state.release, skills_count=len(live),
                    skills=[{"name": s["name"], "version": s.get("version"),
                             "content_sha": s.get("content_sha"), "change": s.get("change")}
                            for s in live],
                )
            state = dataclasses.replace(
                state, commit=manifest["commit"], release=current, last_good_release=current,
                settings=manifest.get("settings"),
            )
            save_state(self.cfg.state_file, state)
        elif not self._published_once:
            # A restart may follow a crash mid-publish: publishing is idempotent.
            self._publish(current)
        return state, current

    def _run(
        self,
        sync_id: str,
        trigger: str,
        force: bool,
        state: State,
        current: str | None,
        source: Source,
    ) -> SyncOutcome:
        head = source.probe()
        structlog.contextvars.bind_contextvars(commit=head[:12])
        state = dataclasses.replace(state, upstream_commit=head)
        base: dict[str, Any] = dict(sync_id=sync_id, commit=head, previous_commit=state.commit,
                                    previous_release=current)

        settings = self.cfg.release_settings()
        if state.settings != settings and state.commit is not None:
            log.info("settings_changed", hint="the settings that shape a release changed: re-deploying")
        if not force and head == state.commit and current is not None and state.settings == settings:
            self._save_success(state)
            log.info("no_change", release=current)
            self.record("no_change", trigger=trigger, release=current, **base)
            return SyncOutcome(status="no_change", release=current, **base)
        if not force and head in state.bad_commits:
            reason = state.bad_commits[head]
            self._save_success(state)
            log.warning("skipped_bad_commit", reason=reason)
            return SyncOutcome(status="skipped_bad", release=current, reason=reason, **base)
        if not force and head == state.rejected_commit and state.settings == settings:
            self._save_success(state)
            log.info("skipped_rejected_commit")
            return SyncOutcome(status="rejected", release=current,
                               reason="commit was rejected by validation", **base)

        if state.source and state.source != source.safe_url:
            log.warning("source_changed", old=state.source, new=source.safe_url)
            source.reset_mirror()
        fetched = source.fetch(head, previous=state.commit)
        log.info("fetched", tree=fetched.tree, fetched_objects=fetched.fetched,
                 duration=round(fetched.duration, 3), history_rewritten=fetched.history_rewritten)
        if fetched.history_rewritten:
            log.warning("history_rewritten", previous_commit=state.commit)
        return self._deploy(trigger, state, current, source, fetched, base, force)

    def _deploy(
        self,
        trigger: str,
        state: State,
        current: str | None,
        source: Source,
        fetched: FetchResult,
        base: dict[str, Any],
        force: bool = False,
    ) -> SyncOutcome:
        cfg = self.cfg
        settings = cfg.release_settings()
        repo = Repo(str(cfg.mirror_dir))
        try:
            self._verify_signature(repo, fetched.commit, trigger, state, base, settings)
            read_blob = source.blob_reader(repo)
            try:
                surveyed = survey(repo.object_store, fetched.tree, cfg.skills_path, cfg.skill_depth,
                                  cfg.ignore)
            except SnapshotError as exc:
                hint = "" if "missing" in str(exc) else "; check SKILLSYNC_SKILLS_PATH"
                raise SourceError(f"{exc}{hint}") from exc
            skills = dict(surveyed.skills)
            layout = layout_findings(surveyed.skipped, cfg)
            old_manifest = self.releases.manifest(current) if current else {"skills": []}
            deployed = {s["name"]: s["content_sha"] for s in old_manifest["skills"] if s.get("live")}
            old_records = {s["name"]: s for s in old_manifest["skills"] if s.get("live")}
            plan = make_plan(deployed, {n: s.tree_sha for n, s in skills.items()})
            log.info("planned", added=len(plan.added), changed=len(plan.changed),
                     removed=len(plan.removed), unchanged=len(plan.unchanged))

            findings: dict[str, tuple[Finding, ...]] = {}
            metadata: dict[str, dict[str, Any]] = {}
            allowed = read_allowlist(repo.object_store, fetched.tree, cfg.skills_path)
            for name in plan.to_build:
                found, meta = self._validate(skills[name], read_blob, allowed)
                findings[name] = found
                metadata[name] = meta
            release_findings = validation.check_release(
                list(skills.values()), cfg,
                names={n: (metadata[n].get("effective_name") if n in metadata else
                           old_records.get(n, {}).get("effective_name")) for n in skills},
            )
            blocked = {n: f for n, f in findings.items() if validation.has_errors(f)}
            release_errors = [f for f in release_findings if f.severity is Severity.ERROR]
            all_findings = tuple(f for fs in findings.values() for f in fs) + release_findings + layout
            for f in all_findings:
                (log.warning if f.severity is Severity.ERROR else log.info)(
                    "validation_finding", rule=f.rule, severity=str(f.severity),
                    path=f.location(), message=f.message)

            if (blocked or release_errors) and cfg.on_invalid == "reject":
                save_state(cfg.state_file, dataclasses.replace(state, rejected_commit=fetched.commit,
                                                               settings=settings))
                self.record("validation_failed", trigger=trigger, policy="reject",
                            findings=[_finding_json(f) for f in all_findings
                                      if f.severity is Severity.ERROR], **base)
                raise ValidationRejected(
                    f"commit {fetched.commit[:12]} rejected: "
                    + "; ".join(str(f) for f in all_findings if f.severity is Severity.ERROR)[:2000]
                )
            if release_errors:
                # Release-wide problems (e.g. over the total size cap) cannot be skipped per skill.
                save_state(cfg.state_file, dataclasses.replace(state, rejected_commit=fetched.commit,
                                                               settings=settings))
                self.record("validation_failed", trigger=trigger, policy="reject",
                            findings=[_finding_json(f) for f in release_errors], **base)
                raise ValidationRejected("; ".join(str(f) for f in release_errors))

            build: list[Skill] = []
            reuse: dict[str, str] = {}
            records: list[dict[str, Any]] = []
            held: dict[str, list[str]] = {}
            for name in sorted(skills):
                skill = skills[name]
                if name in blocked:
                    held[name] = [str(f) for f in blocked[name] if f.severity is Severity.ERROR]
                    if name in old_records:
                        reuse[name] = current  # type: ignore[assignment]
                        records.append({**old_records[name], "status": "held_back",
                                        "rejected_sha": skill.tree_sha,
                                        "findings": [_finding_json(f) for f in blocked[name]]})
                    else:
                        records.append({"name": name, "live": False, "status": "held_back",
                                        "rejected_sha": skill.tree_sha, "version": None,
                                        "findings": [_finding_json(f) for f in blocked[name]]})
                    continue
                if plan.change_of(name) is Change.UNCHANGED:
                    reuse[name] = current  # type: ignore[assignment]
                    records.append({**old_records[name], "status": "ok", "change": "unchanged"})
                    continue
                build.append(skill)
                meta = metadata.get(name, {})
                records.append({
                    "name": name,
                    "live": True,
                    "status": "ok",
                    "change": str(plan.change_of(name)),
                    "content_sha": skill.tree_sha,
                    "commit": fetched.commit,
                    "version": meta.get("version"),
                    "declared_name": meta.get("name"),
                    "effective_name": meta.get("effective_name"),
                    "description": meta.get("description"),
                    "files": len(skill.entries),
                    "bytes": sum(e.size or 0 for e in skill.entries),
                    "warnings": [_finding_json(f) for f in findings.get(name, ())],
                })
            live_names = [r["name"] for r in records if r.get("live")]
            guard = mass_removal(len(old_records), len(live_names), len(plan.removed))
            if guard is not None and not (force or cfg.allow_mass_removal):
                finding = policy_of(cfg).finding(
                    "guard.mass-removal", cfg.skills_path or ".",
                    f"{guard}; nothing is removed. If this is intended, deploy it once with "
                    "`skillsyncd --once --force`, or set SKILLSYNC_ALLOW_MASS_REMOVAL=true")
                if finding is not None and finding.severity is Severity.ERROR:
                    save_state(cfg.state_file, dataclasses.replace(
                        state, rejected_commit=fetched.commit, settings=settings))
                    self.record("validation_failed", trigger=trigger, policy="guard",
                                findings=[_finding_json(finding)], **base)
                    raise ValidationRejected(f"commit {fetched.commit[:12]} refused: {finding}")
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
            manifest = {
                "release": release_id,
                "commit": fetched.commit,
                "tree": fetched.tree,
                "ref": cfg.ref,
                "source": source.safe_url,
                "skills_path": cfg.skills_path,
                "created": now_iso(),
                "previous_release": current,
                "history_rewritten": fetched.history_rewritten,
                "settings": settings,
                "layout": [_finding_json(f) for f in layout],
                "validation": {
                    "policy": cfg.on_invalid,
                    "held_back": sorted(held),
                    "errors": sum(1 for f in all_findings if f.severity is Severity.ERROR),
                    "warnings": sum(1 for f in all_findings if f.severity is Severity.WARNING),
                },
                "skills": records,
            }
            # A gateway reading through `current` (link mode) must see single-link SKILL.md
            # files (OpenClaw refuses hard-linked ones); a mirror copies them anyway.
            copy_names = frozenset({"SKILL.md"}) if cfg.publish_mode == "link" else frozenset()
            stats = stage_release(self.releases, release_id, build, reuse, read_blob, manifest,
                                  copy_names=copy_names)
            log.info("staged", files_written=stats.files_written, files_linked=stats.files_linked,
                     bytes_written=stats.bytes_written)
        finally:
            repo.close()

        self.releases.flip(release_id)
        log.info("flipped", release=release_id, previous_release=current)
        self._publish(release_id)
        problems = self._check(release_id, built=[s.name for s in build])
        skill_events = [
            {"name": r["name"], "version": r.get("version"), "content_sha": r.get("content_sha"),
             "change": r.get("change", "held_back") if r.get("status") == "ok" else "held_back"}
            for r in records
        ] + [{"name": n, "version": old_records[n].get("version"),
              "content_sha": old_records[n].get("content_sha"), "change": "removed"}
             for n in plan.removed]
        if problems and current is not None:
            return self._auto_rollback(trigger, state, current, release_id, fetched, problems,
                                       base, skill_events)
        live = [r for r in records if r.get("live")]
        new_state = dataclasses.replace(
            state,
            commit=fetched.commit,
            release=release_id,
            last_good_release=release_id,
            source=source.safe_url,
            ref=cfg.ref,
            rejected_commit=None,
            settings=settings,
            failure_streak=0,
            last_success=now_iso(),
            last_error=None,
        )
        # Journal first, then state: a crash in between is repaired by _reconcile,
        # which sees the event already journalled and does not write it twice.
        self.record("deployed", trigger=trigger, **{**base, "commit": fetched.commit},
                    release=release_id, skills=skill_events, skills_count=len(live),
                    held_back=held, history_rewritten=fetched.history_rewritten,
                    findings=[_finding_json(f) for f in all_findings])
        save_state(cfg.state_file, new_state)
        for name, reasons in held.items():
            log.warning("skill_held_back", skill=name, reasons=reasons)
        self._prune(new_state)
        return SyncOutcome(
            status="deployed",
            release=release_id,
            plan=plan,
            held_back=held,
            skills_live=len(live),
            findings=all_findings,
            history_rewritten=fetched.history_rewritten,
            **{**base, "commit": fetched.commit},
        )

    def _verify_signature(self, repo: Repo, commit: str, trigger: str, state: State,
                          base: dict[str, Any], settings: str) -> None:
        """Refuse the commit as a whole when SKILLSYNC_VERIFY wants a trusted signature it lacks."""
        cfg = self.cfg
        if cfg.verify == "none":
            return
        from skillsyncd.trust import verify_commit

        raw = repo.object_store[ObjectID(commit.encode())].as_raw_string()
        verdict = verify_commit(raw, cfg.verify, cfg.allowed_signers.get() or "", cfg.gpg_keys.get() or "",
                                commit)
        if verdict.ok:
            log.info("signature_verified", signer=verdict.signer)
            return
        finding = policy_of(cfg).finding(verdict.rule or "commit.bad-signature", commit[:12], verdict.message)
        if finding is None or finding.severity is not Severity.ERROR:
            log.warning("signature_not_enforced", rule=verdict.rule, message=verdict.message)
            return
        save_state(cfg.state_file, dataclasses.replace(state, rejected_commit=commit, settings=settings))
        self.record("validation_failed", trigger=trigger, policy="verify",
                    findings=[_finding_json(finding)], **base)
        raise ValidationRejected(f"commit {commit[:12]} refused: {finding}")

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

    def _publish(self, release_id: str) -> None:
        self._published_once = True
        if self.publish is not None:
            result = self.publish(self.cfg, release_id)
            log.info("published", release=release_id, result=_jsonable(result))

    def _check(self, release_id: str, built: Sequence[str]) -> list[str]:
        problems: list[str] = []
        for check in self.checks:
            try:
                problems.extend(check(self.cfg, release_id))
            except Exception as exc:  # a broken check is a failed check
                problems.append(f"{getattr(check, '__name__', 'check')}: {exc}")
        if problems:
            log.error("health_check_failed", problems=problems[:20])
        return problems

    def _auto_rollback(
        self,
        trigger: str,
        state: State,
        current: str,
        bad_release: str,
        fetched: FetchResult,
        problems: Sequence[str],
        base: dict[str, Any],
        skill_events: list[dict[str, Any]],
    ) -> SyncOutcome:
        reason = "; ".join(problems)[:2000]
        self.releases.flip(current)
        self._publish(current)
        bad = {**state.bad_commits, fetched.commit: f"health check failed: {reason}"}
        save_state(
            self.cfg.state_file,
            dataclasses.replace(state, bad_commits=bad, failure_streak=state.failure_streak + 1,
                                last_error=reason),
        )
        self.record("rolled_back", trigger=trigger, **{**base, "commit": fetched.commit},
                    release=current, rolled_back_release=bad_release, reason=reason,
                    skills=skill_events)
        log.error("rolled_back", release=current, rolled_back_release=bad_release, reason=reason)
        return SyncOutcome(status="rolled_back", release=current, reason=reason,
                           **{**base, "commit": fetched.commit})

    def _save_success(self, state: State) -> None:
        save_state(
            self.cfg.state_file,
            dataclasses.replace(state, failure_streak=0, last_success=now_iso(), last_error=None),
        )

    def _prune(self, state: State) -> None:
        complete = self.releases.complete()
        doomed = choose_deletions(
            complete, self.cfg.keep_releases, protect=(state.release, state.last_good_release)
        )
        for release_id in doomed:
            self.releases.delete(release_id)
            log.info("release_pruned", release=release_id)


ALLOWLIST_MAX_BYTES = 64 * 1024


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


def _state_dir_hint(cfg: Config, exc: Exception) -> str:
    """An OSError met while syncing (full disk, read-only mount), with what to do about it."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        hint = "free space on that filesystem"
    elif isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = f"make {cfg.state_dir} writable by uid {os.getuid()}"
    else:
        hint = f"check {cfg.state_dir}"
    return f"disk error: {exc}; {hint}, and the next sync retries"


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
    written = {s["name"] for s in manifest.get("skills", [])
               if s.get("live") and s.get("change") != "unchanged"}
    return verify_release(releases, release_id, only=written)


def _previous(complete: Sequence[str], current: str | None) -> str | None:
    if current is None or current not in complete:
        return complete[-1] if complete else None
    idx = complete.index(current)
    return complete[idx - 1] if idx > 0 else None


def _finding_json(f: Finding) -> dict[str, Any]:
    return {"rule": f.rule, "severity": str(f.severity), "path": f.path, "line": f.line,
            "message": f.message}


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json.loads(json.dumps(dataclasses.asdict(value), default=str))
    return value


__all__ = ["TRIGGERS", "DeployLock", "SyncOutcome", "Syncer", "atomic_write", "readback_check",
           "redact_url"]
