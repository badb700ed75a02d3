"""GitHub commit statuses for skill authors: next to their commit, whether their skill is live.

Off by default (SKILLSYNC_COMMIT_STATUS=true turns it on; GITHUB_TOKEN, or the
GitHub App's installation token when one is configured, must be allowed to write
statuses). Each decision in the journal becomes one
``POST /repos/{owner}/{repo}/statuses/{sha}`` with context ``skillsyncd/<replica>``.
It runs on its own background thread and never retries: a refused token is one
warning and switches posting off until the next start, a rate limit is one
warning and a pause until GitHub's reset time, and a deploy never waits for any
of it. Other forges are not supported (nothing is posted).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
import urllib3

from skillsyncd.audit.events import Deployed, JournalEvent, Rejected, RolledBack
from skillsyncd.config import Config
from skillsyncd.errors import ConfigError
from skillsyncd.log import redact_text, register_secret
from skillsyncd.notify import alerts
from skillsyncd.notify.outbox import Outbox
from skillsyncd.source.github_app import GitHubAppError, installation_tokens

log = structlog.get_logger(__name__)

DESCRIPTION_MAX = 140  # GitHub truncates longer descriptions; we cut them ourselves
API_VERSION = "2022-11-28"


@dataclass(frozen=True)
class Status:
    """One commit status, shaped like GitHub's REST body."""

    sha: str
    state: str  # success | failure | error | pending
    description: str
    context: str
    target_url: str | None = None

    def body(self) -> dict[str, str]:
        out = {"state": self.state, "description": self.description[:DESCRIPTION_MAX],
               "context": self.context}
        if self.target_url:
            out["target_url"] = self.target_url
        return out


def _cut(text: str) -> str:
    return text if len(text) <= DESCRIPTION_MAX else text[:DESCRIPTION_MAX - 1] + "…"


def _first(findings: Any) -> str:
    for f in findings or []:
        if isinstance(f, Mapping) and f.get("severity") in (None, "error"):
            return f"{f.get('path')}: [{f.get('rule')}] {f.get('message')}"
    return "see `skillsyncd status`"


def status_for(event: JournalEvent, context: str, target_url: str | None) -> Status | None:
    """The status a journal event calls for, or None (pure)."""
    sha = event.commit
    if not isinstance(sha, str) or len(sha) != 40:
        return None
    if isinstance(event, Deployed):
        if event.held_back:
            names = ", ".join(f"{n} ({(r or ('invalid',))[0]})"
                              for n, r in sorted(event.held_back.items()))
            return Status(sha, "failure", _cut(f"held back: {names}"), context, target_url)
        n = event.skills_count or 0
        return Status(sha, "success", _cut(f"deployed {n} skill{'s' if n != 1 else ''}"), context,
                      target_url)
    if isinstance(event, Rejected):  # 0.1.0's 'validation_failed' decodes as Rejected too
        what = "refused (mass removal)" if event.policy == "guard" else "rejected"
        return Status(sha, "failure", _cut(f"{what}: {_first(event.findings)}"), context,
                      target_url)
    if isinstance(event, RolledBack):
        return Status(sha, "failure", _cut(f"rolled back: {event.reason or 'check failed'}"),
                      context, target_url)
    return None


@dataclass(frozen=True)
class Answer:
    """What GitHub said, reduced to what the poster acts on."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""


Post = Callable[[str, dict[str, str], bytes], Answer]  # (url, headers, body) -> answer


def _urllib3_post(timeout: float) -> Post:
    pool = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout), retries=False)

    def post(url: str, headers: dict[str, str], body: bytes) -> Answer:
        resp = pool.request("POST", url, body=body, headers=headers, preload_content=True)
        return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.data or b"")

    return post


class Poster:
    """Posts statuses one at a time; every refusal is one warning, never a retry."""

    def __init__(self, cfg: Config, owner: str, repo: str, post: Post | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.owner, self.repo = owner, repo
        self.context = f"skillsyncd/{cfg.replica_id}"
        self.post = post or _urllib3_post(min(cfg.network_timeout, 10.0))
        self.clock = clock
        self.off: str | None = None  # why posting is switched off until the next start
        self.paused_until = 0.0
        self._sent: set[tuple[str, str, str]] = set()
        self.outbox = Outbox("commit_status", self._handle)

    def event(self, event: JournalEvent) -> None:
        """Journal listener (sync thread): decide, then queue."""
        status = status_for(event, self.context, self.cfg.commit_status_url)
        if status is not None and (status.sha, status.state, status.description) not in self._sent:
            self._sent.add((status.sha, status.state, status.description))
            self.outbox.put(status)

    def url(self, sha: str) -> str:
        return f"{self.cfg.github_api_url.rstrip('/')}/repos/{self.owner}/{self.repo}/statuses/{sha}"

    def _handle(self, status: Status) -> None:
        counts = self.outbox.counts
        if self.off is not None:
            counts["skipped"] += 1
            return
        if self.clock() < self.paused_until:
            counts["skipped"] += 1
            return
        try:
            app = installation_tokens(self.cfg)  # a GitHub App's token, when one is configured
            token = app.get() if app is not None else self.cfg.token.get()
        except (ConfigError, GitHubAppError) as exc:
            counts["failed"] += 1
            log.warning("commit_status_failed", error=str(exc))
            return
        if not token:
            self._switch_off("no GITHUB_TOKEN (nor a GitHub App): set one that may write commit "
                             "statuses")
            return
        register_secret(token)
        headers = {"Accept": "application/vnd.github+json", "Authorization": f"Bearer {token}",
                   "X-GitHub-Api-Version": API_VERSION, "User-Agent": "skillsyncd",
                   "Content-Type": "application/json"}
        try:
            answer = self.post(self.url(status.sha), headers, json.dumps(status.body()).encode())
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            counts["failed"] += 1
            log.warning("commit_status_failed", commit=status.sha[:12],
                        error=f"GitHub unreachable ({type(exc).__name__})")
            return
        self._judge(status, answer)

    def _judge(self, status: Status, answer: Answer) -> None:
        counts = self.outbox.counts
        code, h = answer.status, answer.headers
        if 200 <= code < 300:
            counts["posted"] += 1
            log.info("commit_status_posted", commit=status.sha[:12], state=status.state,
                     context=status.context)
            return
        counts["failed"] += 1
        message = _message(answer.body)
        if code == 429 or (code == 403 and (h.get("x-ratelimit-remaining") == "0"
                                            or "rate limit" in message.lower())):
            wait = _retry_after(h, self.clock())
            self.paused_until = self.clock() + wait
            log.warning("commit_status_rate_limited", pause=round(wait),
                        hint="statuses until then are skipped; deploys carry on")
        elif code in (401, 403, 404) and self.cfg.github_app_id:
            self._switch_off(f"GitHub refused the GitHub App's token ({code}): give the app "
                             f"'Commit statuses: write' and install it on {self.owner}/{self.repo}, "
                             "or set SKILLSYNC_COMMIT_STATUS=false")
        elif code in (401, 403, 404):
            why = {401: "GITHUB_TOKEN was refused (401)",
                   403: "GITHUB_TOKEN may not write commit statuses (403)",
                   404: f"{self.owner}/{self.repo} is not visible to GITHUB_TOKEN (404)"}[code]
            self._switch_off(f"{why}: give the token 'Commit statuses: write' (fine-grained) or "
                             "repo:status (classic), or set SKILLSYNC_COMMIT_STATUS=false")
        else:
            log.warning("commit_status_failed", commit=status.sha[:12], http_status=code,
                        error=redact_text(message)[:300])

    def _switch_off(self, why: str) -> None:
        self.off = why
        self.outbox.counts["skipped"] += 1
        log.warning("commit_status_off", reason=why)


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace")
    return str(data.get("message", "")) if isinstance(data, dict) else ""


def _retry_after(headers: Mapping[str, str], now: float) -> float:
    """Seconds to pause: Retry-After, else until X-RateLimit-Reset, else a minute (max an hour)."""
    try:
        if headers.get("retry-after"):
            return min(3600.0, max(1.0, float(headers["retry-after"])))
        if headers.get("x-ratelimit-reset"):
            return min(3600.0, max(1.0, float(headers["x-ratelimit-reset"]) - now))
    except ValueError:
        pass
    return 60.0


def build(cfg: Config, post: Post | None = None) -> Poster | None:
    """The Poster when SKILLSYNC_COMMIT_STATUS is on and the repository is known, else None."""
    if not cfg.commit_status:
        return None
    if cfg.github_repository:
        owner, _, repo = cfg.github_repository.strip("/").partition("/")
        if not owner or not repo or "/" in repo:
            log.error("commit_status_off", reason="SKILLSYNC_GITHUB_REPOSITORY must be OWNER/REPO")
            return None
        found: tuple[str, str] | None = (owner, repo)
    else:
        found = alerts.github_repository(cfg.repo)
    if found is None:
        log.warning("commit_status_off", reason="the remote is not on github.com (other forges are "
                    "not supported); set SKILLSYNC_GITHUB_REPOSITORY=OWNER/REPO for GitHub Enterprise")
        return None
    return Poster(cfg, *found, post=post)


__all__ = ["Poster", "Status", "build", "status_for"]
