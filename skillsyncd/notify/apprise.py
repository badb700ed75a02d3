"""Alerts through Apprise (SKILLSYNC_NOTIFY): journal events in, messages out, in the background.

One setting reaches Slack, Discord, email, Telegram, ntfy, Matrix, Signal or a
plain JSON webhook: each entry is an Apprise URL (https://github.com/caronc/apprise/wiki).
Apprise is imported only when the setting is present, so a daemon without alerts
pays nothing for it. What to send is decided by :mod:`skillsyncd.notify.alerts`; this
module only feeds it, remembers what was sent (``<state>/alerts.json``) and talks
to Apprise. Notifier URLs carry secrets: every part of them is registered with
the log redactor before anything can print it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import filelock
import structlog

from skillsyncd.audit.events import (
    Deployed,
    FetchFailed,
    JournalEvent,
    Rejected,
    RolledBack,
    SyncFailed,
    SyncFinished,
)
from skillsyncd.config import Config
from skillsyncd.errors import ConfigError, ReleaseError
from skillsyncd.fsutil import atomic_write
from skillsyncd.log import redact_text, register_secret
from skillsyncd.notify import alerts
from skillsyncd.notify.outbox import Outbox
from skillsyncd.release.releases import Releases

log = structlog.get_logger(__name__)

# Journal events that can raise an alert; everything else is never queued (0.1.0's
# 'validation_failed' decodes as Rejected).
_ALERTING = (Deployed, Rejected, RolledBack, SyncFinished, FetchFailed, SyncFailed)
_SPLIT = re.compile(r"[\s]+")

Send = Callable[[alerts.Alert], str | None]  # None when delivered, else why not (no secrets)


def notify_urls(raw: str | None) -> list[str]:
    """The Apprise URLs of SKILLSYNC_NOTIFY: separated by spaces or newlines, ``#`` comments."""
    urls: list[str] = []
    for line in (raw or "").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            urls.extend(u for u in _SPLIT.split(line) if u)
    return urls


SECRET_PART_MIN = 12  # shorter parts (user names, "alerts", "hooks") are not worth masking everywhere


def register_url_secrets(url: str) -> None:
    """Mask a notifier URL, its password, and each long part that may be a key, in every later log line.

    Apprise URLs put keys in the user, host, path or query (slack://TokenA/TokenB/TokenC,
    discord://ID/TOKEN, json://user:pass@host/...). Parts shorter than SECRET_PART_MIN are
    masked only as part of the whole URL, so ordinary words stay readable in the logs.
    """
    register_secret(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.password:
        register_secret(unquote(parts.password))
    candidates = [parts.username or "", *parts.path.split("/"), *(v for _k, v in parse_qsl(parts.query))]
    host = parts.netloc.rsplit("@", 1)[-1]
    if "." not in host and not host.startswith(("localhost", "[")):
        candidates += [host, *host.split(":")]  # slack://TOKEN/..., tgram://BOT:TOKEN/...: a key
    for value in candidates:
        if len(value) >= SECRET_PART_MIN:
            register_secret(unquote(value))


def safe_scheme(url: str) -> str:
    return url.split("://", 1)[0] + "://" if "://" in url else "(not a URL)"


class _Captured(logging.Handler):
    """Apprise reports why a send failed through logging: keep the first error, print nothing."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.first: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.first is None:
            self.first = record.getMessage()


def apprise_sender(urls: list[str]) -> tuple[Send, list[str]]:
    """A sender over Apprise, and the schemes of the entries Apprise refused (logged by the caller)."""
    import apprise  # lazy: only a daemon with SKILLSYNC_NOTIFY set pays for the import

    captured = _Captured()
    logger = logging.getLogger("apprise")
    logger.handlers = [captured]
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    ap = apprise.Apprise()
    refused = [safe_scheme(u) for u in urls if not ap.add(u)]
    servers = list(ap)

    def send(alert: alerts.Alert) -> str | None:
        """Each receiver in turn, in the Outbox thread. Not Apprise.notify: its thread pool
        refuses work once the interpreter is exiting, exactly when a one-shot sends its last."""
        if not servers:
            return "no usable SKILLSYNC_NOTIFY entry"
        errors = []
        for server in servers:
            captured.first = None
            try:
                ok = server.notify(body=alert.body, title=alert.title, notify_type=alert.level)
            except Exception as exc:  # a plugin bug is this receiver's failure, not ours
                ok, captured.first = False, f"{type(exc).__name__}: {exc}"
            if not ok:
                errors.append(f"{server.service_name or type(server).__name__}: "
                              f"{captured.first or 'refused the message'}")
        return redact_text("; ".join(errors))[:300] if errors else None

    return send, refused


class Notifier:
    """Turns journal events into alerts and hands them to ``send`` on an Outbox thread."""

    def __init__(self, state_dir: Path, settings: alerts.Settings, send: Send,
                 lag: Callable[[], int] | None = None) -> None:
        self.state_dir = state_dir
        self.settings = settings
        self.send = send
        self.book_file = state_dir / "alerts.json"
        self._lock = filelock.FileLock(str(state_dir / "alerts.lock"))
        self.lag = lag  # the audit replica's lag, when the daemon runs a Neo4j sink
        self.outbox = Outbox("alert", self._handle, tick=self._tick)

    def event(self, event: JournalEvent) -> None:
        """Journal listener: called in the sync thread, so it only queues."""
        if isinstance(event, _ALERTING):
            self.outbox.put(event)

    def _load(self) -> alerts.Book:
        try:
            return alerts.Book.from_json(self.book_file.read_bytes())
        except FileNotFoundError:
            return alerts.Book()

    def _save(self, book: alerts.Book) -> None:
        atomic_write(self.book_file, book.to_json(), mode=0o600)

    def _held_shas(self, event: JournalEvent) -> dict[str, str]:
        """The refused versions of the release's held-back skills (its manifest says)."""
        if not isinstance(event, Deployed) or not event.held_back or not event.release:
            return {}
        try:
            manifest = Releases(self.state_dir).manifest(event.release)
        except ReleaseError as exc:  # announced per commit instead of per refused version
            log.warning("alert_manifest_unreadable", release=event.release, error=str(exc))
            return {}
        return alerts.held_shas_of(manifest)

    def _handle(self, event: JournalEvent) -> None:
        held = self._held_shas(event)
        self._decide(lambda book: alerts.decide(event, book, self.settings, held))

    def _tick(self) -> None:
        lag = self.lag
        if lag is not None:
            seen = lag()
            self._decide(lambda book: alerts.decide_lag(seen, book, self.settings))

    def _decide(self, step: Callable[[alerts.Book], tuple[list[alerts.Alert], alerts.Book]]) -> None:
        # The lock spans decide-and-record, so a `--once` beside the daemon cannot send the same one.
        with self._lock:
            book = self._load()
            found, after = step(book)
            for alert in found:
                self._deliver(alert)
                after = after.with_sent(alert.keys)  # given up on counts too: no storm of repeats
            if after != book:
                self._save(after)

    def _deliver(self, alert: alerts.Alert) -> None:
        error = self.send(alert)
        if error is None:
            self.outbox.counts["sent"] += 1
            log.info("alert_sent", alert=alert.event, commit=alert.commit)
        else:
            self.outbox.counts["failed"] += 1
            log.warning("alert_failed", alert=alert.event, commit=alert.commit, error=error)


def settings_of(cfg: Config) -> alerts.Settings:
    return alerts.Settings(replica=cfg.replica_id, failing_after=max(1, cfg.notify_failing_after),
                           audit_lag_events=max(1, cfg.notify_audit_lag),
                           commit_web=alerts.github_web(cfg.repo))


def build(cfg: Config, send: Send | None = None, lag: Callable[[], int] | None = None) -> Notifier | None:
    """The Notifier for ``cfg``, or None when SKILLSYNC_NOTIFY is not set.

    ``lag`` reads the audit replica's lag, for the audit-lag alert (the daemon's Neo4j sink)."""
    if not cfg.notify:
        return None
    try:
        raw = cfg.notify.get()
    except ConfigError as exc:
        log.error("notify_unreadable", error=str(exc))
        return None
    urls = notify_urls(raw)
    for url in urls:
        register_url_secrets(url)
    if not urls:
        return None
    if send is None:
        send, refused = apprise_sender(urls)
        for scheme in refused:
            log.error("notify_url_refused", scheme=scheme,
                      hint="not an Apprise URL (or its plugin is missing): fix SKILLSYNC_NOTIFY")
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    log.info("alerts_on", receivers=len(urls), schemes=sorted({safe_scheme(u) for u in urls}))
    return Notifier(cfg.state_dir, settings_of(cfg), send, lag=lag)


__all__ = ["Notifier", "build", "notify_urls", "register_url_secrets"]
