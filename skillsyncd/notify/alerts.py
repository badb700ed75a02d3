"""Which alerts a journal event raises, given what was already sent (pure: no I/O, no clock).

Alerts are derived from the audit journal's events, the same record every other
consumer reads, so they say exactly what the journal says and need no hook into
the sync itself. The sender (``skillsyncd.notify.apprise``) feeds each appended event
through :func:`decide` and delivers what comes out; the :class:`Book` it keeps in
``<state>/alerts.json`` is what makes "not twice for the same commit and event"
hold across restarts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skillsyncd.audit.events import (
    Deployed,
    FetchFailed,
    Frozen,
    GatewayConfirmed,
    JournalEvent,
    Rejected,
    RolledBack,
    SyncFailed,
    SyncFinished,
)
from skillsyncd.release.manifest import Manifest

# fetch_failed and sync_failed mean "this sync could not reach or finish its work"
# (validation refusals are decisions, not failures, and raise their own alert).
# sync_finished statuses that end a failure streak (the remote answered and we acted on it).
RECOVERED_STATUSES = frozenset({"deployed", "no_change", "skipped_bad", "rejected", "frozen"})
SENT_KEEP = 1000  # dedup keys remembered; the oldest are forgotten first

FAILURE, WARNING, SUCCESS, INFO = "failure", "warning", "success", "info"  # Apprise's notify types


@dataclass(frozen=True)
class Settings:
    """What shapes the alerts (from Config; kept apart so decisions need no Config)."""

    replica: str = "skillsyncd"
    failing_after: int = 3  # failed syncs in a row before an alert
    audit_lag_events: int = 100  # unshipped journal events before an alert
    commit_web: str | None = None  # e.g. https://github.com/OWNER/REPO (GitHub remotes only)

    def commit_link(self, commit: str | None) -> str | None:
        return f"{self.commit_web}/commit/{commit}" if self.commit_web and commit else None


@dataclass(frozen=True)
class Alert:
    """One message: ``keys`` are recorded as sent once it went out (or was given up on)."""

    event: str
    level: str
    title: str
    body: str
    keys: tuple[str, ...]
    commit: str | None = None


@dataclass(frozen=True)
class Book:
    """What was already sent, and the running failure streak; persisted as alerts.json."""

    sent: tuple[str, ...] = ()
    streak: int = 0
    streak_alerted: bool = False
    last_error: str | None = None
    lag_alerted: bool = False

    def has(self, key: str) -> bool:
        return key in self.sent

    def with_sent(self, keys: Sequence[str]) -> Book:
        fresh = [k for k in keys if k not in self.sent]
        return dataclasses.replace(self, sent=(*self.sent, *fresh)[-SENT_KEEP:])

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Book:
        """A damaged or foreign file starts a fresh book (at worst one repeated alert)."""
        try:
            raw = json.loads(data)
            return cls(sent=tuple(str(k) for k in raw.get("sent", [])),
                       streak=int(raw.get("streak", 0)),
                       streak_alerted=bool(raw.get("streak_alerted", False)),
                       last_error=raw.get("last_error"),
                       lag_alerted=bool(raw.get("lag_alerted", False)))
        except (ValueError, TypeError, AttributeError):
            return cls()


_GITHUB = re.compile(
    r"^(?:https?://(?:[^@/]+@)?github\.com/|git@github\.com:|ssh://git@github\.com/)"
    r"(?P<owner>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+?)(?:\.git)?/?$")


def github_repository(repo_url: str | None) -> tuple[str, str] | None:
    """(owner, repo) when the remote is on github.com, else None."""
    m = _GITHUB.match((repo_url or "").strip())
    return (m.group("owner"), m.group("repo")) if m else None


def github_web(repo_url: str | None) -> str | None:
    found = github_repository(repo_url)
    return f"https://github.com/{found[0]}/{found[1]}" if found else None


def _short(commit: str | None) -> str:
    return (commit or "unknown")[:12]


def _finding_text(f: Any) -> str:
    """A finding as one line, whether journalled as a dict or already as text."""
    if isinstance(f, Mapping):
        where = f"{f.get('path')}:{f['line']}" if f.get("line") else str(f.get("path") or "")
        return f"{where}: [{f.get('rule')}] {f.get('message')}".strip()
    return str(f)


def _first_per_skill(findings: Sequence[Any]) -> dict[str, str]:
    """The first error finding per top-level path (skill folder) of a journalled finding list."""
    out: dict[str, str] = {}
    for f in findings:
        if isinstance(f, Mapping) and f.get("severity") not in (None, "error"):
            continue
        path = str(f.get("path") or ".") if isinstance(f, Mapping) else "."
        out.setdefault(path.split("/", 1)[0] if "/" in path else path, _finding_text(f))
    return out


def _commit_lines(s: Settings, event: JournalEvent) -> list[str]:
    lines = [f"Replica: {s.replica}", f"Commit: {_short(event.commit)}"]
    link = s.commit_link(event.commit)
    if link:
        lines.append(f"Link: {link}")
    return lines


def decide(event: JournalEvent, book: Book, s: Settings,
           held_shas: Mapping[str, str] | None = None) -> tuple[list[Alert], Book]:
    """The alerts one journal event raises and the book after it.

    ``held_shas`` maps a held-back skill to the tree id of the version that was refused
    (from the release manifest); a skill is announced once per refused version.
    """
    alerts: list[Alert] = []
    if isinstance(event, Deployed):
        alerts += _nothing_live(event, book, s)
        if event.held_back:
            alerts += _held_back(event, book, s, held_shas or {})
        alerts += _unused(event, book, s)
    elif isinstance(event, Rejected):  # 0.1.0's 'validation_failed' decodes as Rejected too
        alerts += _rejected(event, book, s)
    elif isinstance(event, RolledBack):
        alerts += _rolled_back(event, book, s)
    elif isinstance(event, GatewayConfirmed):
        alerts += _gateway(event, book, s)
    elif isinstance(event, Frozen):
        alerts += _frozen(event, book, s)
    streak, book = _streak(event, book, s)
    return alerts + streak, book


def _held_back(event: Deployed, book: Book, s: Settings,
               held_shas: Mapping[str, str]) -> list[Alert]:
    """Skills of a deployed commit that failed validation: once per refused version."""
    commit = event.commit

    def key(name: str) -> str:
        return f"held_back:{name}@{held_shas.get(name) or commit}"

    fresh = {name: reasons for name, reasons in sorted(event.held_back.items())
             if not book.has(key(name))}
    if not fresh:
        return []
    body = [f"{len(fresh)} skill(s) of commit {_short(commit)} failed validation and were "
            "held back; their last good version (if any) stays live, the rest of the "
            "commit is deployed.", *_commit_lines(s, event), ""]
    for name, reasons in fresh.items():
        body.append(f"- {name}: {reasons[0] if reasons else 'failed validation'}")
    body += ["", "What to do: fix the finding(s) and push; check locally with "
             "`skillsyncd validate . --format text`."]
    return [Alert("held_back", WARNING, f"skillsyncd: {', '.join(fresh)} held back ({s.replica})",
                  "\n".join(body), tuple(key(n) for n in fresh), commit)]


def _nothing_live(event: Deployed, book: Book, s: Settings) -> list[Alert]:
    """A deploy that went live holding no skill: the layout and the settings disagree.

    Once per commit; a release of only held-back skills is said by ``held_back``."""
    key = f"nothing_live:{event.commit}"
    if event.skills_count != 0 or event.held_back or event.recovered or book.has(key):
        return []
    body = [f"Commit {_short(event.commit)} deployed, and the release holds no skill: the "
            "gateway now gets none from skillsyncd.", *_commit_lines(s, event), "",
            "What to do: check SKILLSYNC_SKILLS_PATH (the folder holding the skill folders) and "
            "SKILLSYNC_SKILL_DEPTH against the repository's layout; `skillsyncd validate .` in "
            "a checkout lists the skills it finds."]
    return [Alert("nothing_live", WARNING, f"skillsyncd: commit {_short(event.commit)} deployed "
                  f"no skill ({s.replica})", "\n".join(body), (key,), event.commit)]


def _frozen(event: Frozen, book: Book, s: Settings) -> list[Alert]:
    """A commit validated and staged that a freeze (or the sync windows) keeps waiting: once
    per commit."""
    key = f"frozen:{event.commit}"
    if book.has(key):
        return []
    changes = [f"- {x.get('change')}: {x.get('name')}" for x in event.skills
               if x.get("change") not in (None, "unchanged")]
    body = [f"Commit {_short(event.commit)} is validated and waits: {event.reason or 'frozen'}.",
            *_commit_lines(s, event), "", *changes[:30],
            "", ("What to do: nothing; it deploys when the sync windows open "
                 f"({event.until or 'no opening within a year'}); `skillsyncd --once "
                 "--window-override` (or POST /sync?override=window) deploys it now"
                 if event.window else
                 "What to do: `skillsyncd unfreeze` (or POST /unfreeze) deploys it")
            + f"; until then release {event.release or '-'} stays live."]
    behind = f"sync window {event.window}" if event.window else "a freeze"
    return [Alert("frozen", INFO, f"skillsyncd: commit {_short(event.commit)} waits behind "
                  f"{behind} ({s.replica})", "\n".join(body), (key,), event.commit)]


def _unused(event: Deployed, book: Book, s: Settings) -> list[Alert]:
    """Deployed skills the gateway will not offer as published (usage.* findings): once per commit."""
    found = [f for f in event.findings
             if isinstance(f, Mapping) and str(f.get("rule", "")).startswith("usage.")]
    key = f"usage:{event.commit}"
    if not found or book.has(key):
        return []
    body = [f"Commit {_short(event.commit)} is deployed, but the gateway will not give agents all of "
            f"it as published ({len(found)} finding(s)).", *_commit_lines(s, event), ""]
    body += [f"- {_finding_text(f)}" for f in found[:20]]
    body += ["", "What to do: each line names the fix; check locally with "
             "`skillsyncd validate . --gateway-path \"$PATH\" --gateway-config openclaw.json`."]
    return [Alert("usage", WARNING, f"skillsyncd: commit {_short(event.commit)} deployed with "
                  f"{len(found)} usage warning(s) ({s.replica})", "\n".join(body), (key,), event.commit)]


def _rejected(event: Rejected, book: Book, s: Settings) -> list[Alert]:
    """A commit refused as a whole, by validation, the mass-removal guard or the pre-flip command."""
    if event.policy == "veto":
        return _vetoed(event, book, s)
    commit = event.commit
    guard = event.policy == "guard"
    name = "mass_removal" if guard else "rejected"
    key = f"{name}:{commit}"
    if book.has(key):
        return []
    per_skill = _first_per_skill(event.findings)
    body = [("Commit {c} would remove too many live skills: the mass-removal guard "
             "refused it and nothing was changed.") if guard else
            "Commit {c} was rejected by validation (on_invalid=reject): nothing of it "
            "was deployed; the live release stays.", *_commit_lines(s, event), ""]
    body = [b.replace("{c}", _short(commit)) for b in body]
    body += [f"- {path}: {text}" for path, text in list(per_skill.items())[:20]]
    body += ["", "What to do: " + (
        "if the removal is intended, run `skillsyncd --once --force` in the container "
        "or set SKILLSYNC_ALLOW_MASS_REMOVAL=true; otherwise restore the skills and push."
        if guard else "fix the findings and push a new commit.")]
    return [Alert(name, FAILURE, f"skillsyncd: commit {_short(commit)} "
                  f"{'refused by the mass-removal guard' if guard else 'rejected'} "
                  f"({s.replica})", "\n".join(body), (key,), commit)]


def _vetoed(event: Rejected, book: Book, s: Settings) -> list[Alert]:
    """The pre-flip command refused a staged release (sync/veto.py)."""
    key = f"vetoed:{event.commit}"
    if book.has(key):
        return []
    why = str(event.findings[0].get("message")) if event.findings else "refused"
    body = [f"Commit {_short(event.commit)} was refused by the pre-flip command "
            "(SKILLSYNC_PRE_FLIP_COMMAND) before it went live; the live release stays.",
            *_commit_lines(s, event), f"Reason: {why[:1500]}", "",
            "What to do: fix what the command reports and push; it is not run again on this "
            "commit unless `skillsyncd --once --force`."]
    return [Alert("rejected", FAILURE, f"skillsyncd: commit {_short(event.commit)} refused by "
                  f"the pre-flip command ({s.replica})", "\n".join(body), (key,), event.commit)]


def _rolled_back(event: RolledBack, book: Book, s: Settings) -> list[Alert]:
    """A commit that went live, failed its checks and was undone."""
    commit = event.commit
    key = f"rolled_back:{commit}"
    if book.has(key):
        return []
    body = [f"Commit {_short(commit)} went live and failed its post-deploy checks; "
            f"skillsyncd rolled back to release {event.release}.",
            *_commit_lines(s, event), f"Reason: {(event.reason or '')[:500]}", "",
            "What to do: the commit is marked bad and will not be retried; fix it and push "
            "a new commit. `skillsyncd status` shows the live release."]
    return [Alert("rolled_back", FAILURE,
                  f"skillsyncd: rolled back commit {_short(commit)} ({s.replica})",
                  "\n".join(body), (key,), commit)]


def _gateway(event: GatewayConfirmed, book: Book, s: Settings) -> list[Alert]:
    """Skills the running gateway cannot use: once per skill and reason (a skill this commit
    broke: once per commit); a gateway that refused skillsyncd's connection: once per error.
    A gateway that could not be reached raises none (logged and in /status; never blamed)."""
    if event.state == "refused":
        return _gateway_refused(event, book, s)
    if event.state != "confirmed" or not event.gaps:
        return []
    fresh = [g for g in event.gaps if not book.has(_gap_key(event, g))]
    if not fresh:
        return []
    blamed = [str(g.get("skill")) for g in fresh if g.get("blamed")]
    body = [f"The gateway sees {event.seen} of {event.expected} skills of release {event.release}.",
            *_commit_lines(s, event), ""]
    body += [f"- {g.get('skill')}: {g.get('detail')}"
             + (" (usable before this commit)" if g.get("blamed") else "") for g in fresh[:30]]
    if len(fresh) > 30:
        body.append(f"- and {len(fresh) - 30} more (`/status`, field gateway)")
    body += ["", "What to do: each line names the fix; the skills stay deployed"
             + (" (SKILLSYNC_GATEWAY_CONFIRM=rollback rolls back a commit that breaks a skill)."
                if blamed else ".")]
    title = (f"skillsyncd: commit {_short(event.commit)} made {', '.join(blamed[:3])} unusable"
             if blamed else f"skillsyncd: the gateway sees {event.seen} of {event.expected} skills")
    return [Alert("gateway_blamed" if blamed else "gateway_gaps", FAILURE if blamed else WARNING,
                  f"{title} ({s.replica})", "\n".join(body),
                  tuple(_gap_key(event, g) for g in fresh), event.commit)]


def _gap_key(event: GatewayConfirmed, gap: Mapping[str, Any]) -> str:
    if gap.get("blamed"):
        return f"gateway_blamed:{event.commit}:{gap.get('skill')}"
    return f"gateway_gap:{gap.get('skill')}:{gap.get('reason')}:{_digest(str(gap.get('detail')))}"


def _gateway_refused(event: GatewayConfirmed, book: Book, s: Settings) -> list[Alert]:
    key = f"gateway_refused:{_digest(event.summary or '')}"
    if book.has(key):
        return []
    body = [f"skillsyncd could not confirm release {event.release} with the gateway: "
            f"{event.summary}", f"Replica: {s.replica}", "",
            "What to do: check SKILLSYNC_GATEWAY_URL and the token (OPENCLAW_GATEWAY_TOKEN); "
            "deploys carry on unconfirmed."]
    return [Alert("gateway_refused", WARNING, f"skillsyncd: the gateway refused the "
                  f"confirmation ({s.replica})", "\n".join(body), (key,), event.commit)]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _streak(event: JournalEvent, book: Book, s: Settings) -> tuple[list[Alert], Book]:
    """Failed syncs in a row: one alert when the streak reaches its bound, one when it ends."""
    alerts: list[Alert] = []
    if isinstance(event, FetchFailed | SyncFailed):
        error = (event.error or "")[:500]
        book = dataclasses.replace(book, streak=book.streak + 1, last_error=error)
        if book.streak >= s.failing_after and not book.streak_alerted:
            body = [f"The last {book.streak} syncs in a row failed; the live release keeps "
                    "serving.", f"Replica: {s.replica}", f"Last error: {error}", "",
                    "What to do: check the remote, the token and the disk; `skillsyncd status` "
                    "shows the last error. A recovery message follows when a sync succeeds."]
            alerts.append(Alert("failing", FAILURE, f"skillsyncd: syncs failing ({s.replica})",
                                "\n".join(body), ()))
            book = dataclasses.replace(book, streak_alerted=True)
    elif isinstance(event, SyncFinished) and event.status in RECOVERED_STATUSES:
        if book.streak_alerted:
            alerts.append(Alert("recovered", SUCCESS, f"skillsyncd: syncs recovered ({s.replica})",
                                f"Syncs succeed again after {book.streak} failures in a row "
                                f"(last error: {book.last_error}).\nReplica: {s.replica}", ()))
        if book.streak or book.streak_alerted:
            book = dataclasses.replace(book, streak=0, streak_alerted=False, last_error=None)
    return alerts, book


def decide_lag(lag: int, book: Book, s: Settings) -> tuple[list[Alert], Book]:
    """Audit replication lag: one alert when it passes the threshold, one when it is back to 0."""
    if lag >= s.audit_lag_events and not book.lag_alerted:
        return [Alert("audit_lag", WARNING, f"skillsyncd: audit replication behind ({s.replica})",
                      f"{lag} journal events are not in Neo4j yet; deployments carry on and the "
                      "events wait in the journal.\n"
                      f"Replica: {s.replica}\n\nWhat to do: check NEO4J_URI and the database; "
                      "`skillsyncd audit push` ships the backlog by hand.", ())], \
            dataclasses.replace(book, lag_alerted=True)
    if lag == 0 and book.lag_alerted:
        return [Alert("audit_caught_up", SUCCESS, f"skillsyncd: audit replication caught up "
                      f"({s.replica})", f"Neo4j has every journal event again.\nReplica: {s.replica}",
                      ())], dataclasses.replace(book, lag_alerted=False)
    return [], book


def held_shas_of(manifest: Manifest) -> dict[str, str]:
    """Held-back skill -> the refused version's tree id, from a release manifest."""
    return {r.name: r.rejected_sha for r in manifest.skills
            if r.status == "held_back" and r.rejected_sha}


__all__ = ["Alert", "Book", "Settings", "decide", "decide_lag", "github_repository", "github_web",
           "held_shas_of"]
