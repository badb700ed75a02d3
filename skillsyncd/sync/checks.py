"""Post-flip checks: the release read back, what the operator configures (a health URL
and a health command), and the gateway's own confirmation of which skills its agent can use.

Each is a :data:`skillsyncd.sync.values.Check` (``(cfg, release_id) -> problems``) run
by go-live right after the flip; a problem makes it flip back and mark the commit
bad. Both the daemon and ``--once`` use them (through ``sync.assembly.build_syncer``).

A health URL names the gateway, which may be down or starting (the real one
takes 15-19 s to listen): before the flip, :meth:`HealthUrlCheck.wait_ready`
waits for it (``health_start_wait``, bounded) and the core blames a commit only
when the gateway was healthy before the flip and is not after it. Retries and
their back-off are stamina's. The confirmation (:class:`GatewayConfirmCheck`) asks
the gateway's ``skills.status`` over its WebSocket (``sync.gateway_rpc``) and
compares the answer with the release (``sync.confirm``, pure).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import urllib3

from skillsyncd.audit.events import GatewayConfirmed
from skillsyncd.audit.journal import now_iso
from skillsyncd.config import Config
from skillsyncd.errors import ReleaseError, SkillsyncError
from skillsyncd.fsutil import atomic_write
from skillsyncd.log import redact_text
from skillsyncd.release.releases import Releases
from skillsyncd.release.verify import verify_release
from skillsyncd.sync.confirm import (
    CONFIRMED,
    GAPS_KEPT,
    REFUSED,
    UNREACHABLE,
    Confirmation,
    Expected,
    Gap,
    GatewaySkill,
    blamed,
    compare,
    expected_of,
    from_json,
    gateway_skills,
    settled,
)
from skillsyncd.sync.gateway_rpc import GatewayRefused, GatewayTarget, GatewayUnavailable, call
from skillsyncd.sync.ledger import Recorder
from skillsyncd.sync.values import Check

log = structlog.get_logger(__name__)

# First pause between attempts; it doubles (with jitter): the gateway may need a moment to reload.
RETRY_PAUSE = 0.5
RETRY_PAUSE_MAX = 5.0


class _Unhealthy(Exception):
    """One failed attempt (retried by stamina)."""


def release_env(cfg: Config, release_id: str) -> dict[str, str]:
    """Environment for a command that runs about a release (checks and hooks)."""
    releases = Releases(cfg.state_dir)
    try:
        commit = releases.manifest(release_id).commit
    except ReleaseError:
        commit = ""
    return {
        **os.environ,
        "SKILLSYNC_RELEASE": release_id,
        "SKILLSYNC_COMMIT": commit,
        "SKILLSYNC_RELEASE_DIR": str(releases.dir(release_id)),
        "SKILLSYNC_STATE_DIR": str(cfg.state_dir),
    }


@dataclass(frozen=True)
class HealthUrlCheck:
    """GET ``url``; healthy on a 2xx answer within ``timeout``, tried ``retries`` times."""

    url: str
    timeout: float
    retries: int

    def _get(self) -> str | None:
        """One GET: None when healthy, else what went wrong."""
        http = urllib3.PoolManager(timeout=urllib3.Timeout(total=self.timeout), retries=False)
        try:
            resp = http.request("GET", self.url, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            return f"unreachable ({type(exc).__name__})"
        if 200 <= resp.status < 300:
            return None
        return f"answered HTTP {resp.status}"

    def __call__(self, cfg: Config, release_id: str) -> list[str]:
        last = _retry(self._get, max(1, self.retries), "health_url",
                      url=redact_text(self.url))
        if last is None:
            return []
        return [f"health URL {redact_text(self.url)} {last} after {max(1, self.retries)} attempt(s)"]

    def wait_ready(self, cfg: Config) -> str | None:
        """Before the flip: wait up to ``health_start_wait`` for a 2xx; why not, if it never came."""
        last = _retry(self._get, None, "gateway_wait", timeout=max(0.0, cfg.health_start_wait),
                      url=redact_text(self.url))
        if last is None:
            return None
        return f"{redact_text(self.url)} {last} for {cfg.health_start_wait:g}s"


def _retry(attempt: Callable[[], str | None], attempts: int | None, what: str,
           timeout: float | None = None, **fields: object) -> str | None:
    """Call ``attempt`` until it returns None (healthy), through stamina; the last error if never.

    A retried check logs each failed try. A wait (``timeout`` set: a gateway starting
    takes 15-45 s) logs one line when it starts and one when it ends or gives up.
    """
    import stamina  # deferred: only a configured health URL or command retries (~24 modules)

    # skillsyncd logs each try (or each wait) itself: stamina's own warning per retry
    # (`stamina.retry_scheduled`) would double every line and undo the one-line wait.
    stamina.instrumentation.set_on_retry_hooks([])
    waiting = timeout is not None
    started = time.monotonic()
    last: str | None = None
    number = 0
    try:
        for number, tried in enumerate(stamina.retry_context(
                on=_Unhealthy, attempts=attempts, timeout=timeout, wait_initial=RETRY_PAUSE,
                wait_max=RETRY_PAUSE_MAX, wait_jitter=RETRY_PAUSE / 2), start=1):
            with tried:
                last = attempt()
                if last is None:
                    if not waiting:
                        log.info(f"{what}_ok", attempt=number, **fields)
                    elif number > 1:
                        log.info(f"{what}_ended", attempts=number,
                                 waited=round(time.monotonic() - started, 1), **fields)
                    return None
                if not waiting:
                    log.warning(f"{what}_failed", attempt=number, error=redact_text(last), **fields)
                elif number == 1:
                    log.info(f"{what}_started", error=redact_text(last),
                             limit=timeout, **fields)
                raise _Unhealthy(last)
    except _Unhealthy:
        pass
    if waiting:
        log.warning(f"{what}_gave_up", attempts=number, waited=round(time.monotonic() - started, 1),
                    error=redact_text(last or ""), **fields)
    return last


@dataclass(frozen=True)
class HealthCommandCheck:
    """Run ``command`` (no shell); healthy on exit 0 within ``timeout``, tried ``retries`` times.

    The command sees SKILLSYNC_RELEASE, SKILLSYNC_COMMIT and SKILLSYNC_RELEASE_DIR.
    """

    command: str
    timeout: float
    retries: int

    def __call__(self, cfg: Config, release_id: str) -> list[str]:
        argv = shlex.split(self.command)
        if not argv:
            return ["health command is empty"]
        env = release_env(cfg, release_id)

        def run_once() -> str | None:
            try:
                done = subprocess.run(argv, env=env, capture_output=True, timeout=self.timeout,
                                      check=False, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                return f"timed out after {self.timeout:g}s"
            except OSError as exc:
                return f"could not start ({exc.strerror})"
            if done.returncode == 0:
                return None
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            return f"exited {done.returncode}" + (f": {tail[0][:300]}" if tail[0] else "")

        last = _retry(run_once, max(1, self.retries), "health_command")
        if last is None:
            return []
        return [f"health command {argv[0]!r} {redact_text(last)} after {max(1, self.retries)} attempt(s)"]


def post_deploy_checks(cfg: Config, record: Recorder | None = None) -> tuple[Check, ...]:
    """The configured checks, in order: health URL, health command, the gateway's confirmation."""
    checks: list[Check] = []
    if cfg.health_url:
        checks.append(HealthUrlCheck(cfg.health_url, cfg.health_timeout, cfg.health_retries))
    if cfg.health_command:
        checks.append(HealthCommandCheck(cfg.health_command, cfg.health_timeout, cfg.health_retries))
    if cfg.gateway_url and cfg.gateway_confirm != "off":
        checks.append(GatewayConfirmCheck(record))
    return tuple(checks)


def readback_check(cfg: Config, release_id: str) -> list[str]:
    """The skills this release wrote hash to the manifest's content sha.

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


# --- the gateway's own answer (issue 24): which skills its agent can use --------------

GATEWAY_FILE = "gateway.json"  # in the state dir: the last confirmation, for /status and /metrics
_MAX_WAITS = 3  # gateway restarts waited for within one check
_SETTLE_PAUSE, _SETTLE_PAUSE_MAX = 0.25, 2.0


def load_confirmation(state_dir: Path) -> Confirmation | None:
    """The last confirmation recorded in ``state_dir`` (None: none yet, or unreadable)."""
    try:
        raw = json.loads((state_dir / GATEWAY_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    return from_json(raw) if isinstance(raw, dict) else None


class GatewayConfirmCheck:
    """Ask the running gateway (``skills.status``) which skills of the release its agent can use.

    Before the flip (:meth:`wait_ready`) it waits for the gateway and keeps its answer
    about what served until then; after it, it waits (``gateway_settle``) for the
    gateway to load the release and compares. A gateway that is starting, restarting
    or unreachable is waited for (``health_start_wait``) and reported, never blamed. A
    skill this commit changed that was usable before and is not after is blamed: with
    ``gateway_confirm=rollback`` the check fails (the release is rolled back, the commit
    marked bad); with ``report`` (the default) it is logged and alerted only.
    """

    def __init__(self, record: Recorder | None = None) -> None:
        self.record = record
        self._before: tuple[tuple[Expected, ...], tuple[Gap, ...]] | None = None
        self._waited_out = False  # the wait before the flip gave up: ask once after it, no second wait

    def _target(self, cfg: Config) -> GatewayTarget:
        return GatewayTarget(str(cfg.gateway_url), cfg.gateway_token.get(), cfg.health_timeout)

    def _ask(self, cfg: Config) -> tuple[GatewaySkill, ...]:
        """One ``skills.status``; GatewayUnavailable, GatewayRefused or ValueError if not."""
        return gateway_skills(call(self._target(cfg), "skills.status"), _published_under(cfg))

    def _wait(self, cfg: Config) -> tuple[tuple[GatewaySkill, ...] | None, str | None]:
        """(the gateway's answer, None), or (None, why not) after ``health_start_wait``."""
        got: list[tuple[GatewaySkill, ...]] = []

        def attempt() -> str | None:
            try:
                got.append(self._ask(cfg))
            except GatewayUnavailable as exc:
                return str(exc)
            return None

        last = _retry(attempt, None, "gateway_wait", timeout=max(0.0, cfg.health_start_wait),
                      url=redact_text(str(cfg.gateway_url)))
        return (got[-1], None) if got else (None, last)

    def wait_ready(self, cfg: Config) -> str | None:
        """Before the flip: wait for the gateway and note what it could use of the live release."""
        self._before, self._waited_out = None, False
        try:
            answer, why = self._wait(cfg)
        except (GatewayRefused, ValueError) as exc:
            return str(exc)
        if answer is None:
            self._waited_out = True
            return why
        releases = Releases(cfg.state_dir)
        current = releases.current()
        try:
            expected = expected_of(releases.manifest(current)) if current else ()
        except ReleaseError:
            expected = ()
        self._before = (expected, compare(expected, answer)[1])
        return None

    def __call__(self, cfg: Config, release_id: str) -> list[str]:
        before, self._before = self._before, None
        waits, self._waited_out = (_MAX_WAITS if not self._waited_out else 0), False
        manifest = Releases(cfg.state_dir).manifest(release_id)
        expected = expected_of(manifest)
        base = Confirmation(release_id, manifest.commit, UNREACHABLE, expected=len(expected),
                            at=now_iso())
        try:
            answer, is_settled = self._settle(cfg, expected, waits)
        except GatewayUnavailable as exc:
            conf = dataclasses.replace(base, error=str(exc))
        except (GatewayRefused, ValueError) as exc:
            conf = dataclasses.replace(base, state=REFUSED, error=str(exc))
        else:
            seen, gaps = compare(expected, answer)
            guilty = blamed(*before, expected, gaps) if before is not None else ()
            conf = dataclasses.replace(base, state=CONFIRMED, seen=seen, gaps=gaps, blamed=guilty,
                                       settled=is_settled)
        self._tell(cfg, conf)
        if conf.blamed and cfg.gateway_confirm == "rollback":
            why = {g.skill: g.detail for g in conf.gaps}
            return [f"the gateway can no longer use {name} after this commit: {why[name]}"
                    for name in conf.blamed]
        return []

    def _settle(self, cfg: Config, expected: tuple[Expected, ...], waits: int
                ) -> tuple[tuple[GatewaySkill, ...], bool]:
        """The first answer that holds the whole release, or the last one after ``gateway_settle``;
        a gateway that is down is waited for at most ``waits`` times."""
        deadline = time.monotonic() + max(0.0, cfg.gateway_settle)
        pause = _SETTLE_PAUSE
        while True:
            try:
                answer = self._ask(cfg)
            except GatewayUnavailable as exc:
                if waits <= 0:
                    raise
                waits -= 1
                got, why = self._wait(cfg)
                if got is None:
                    raise GatewayUnavailable(why or str(exc)) from None
                answer, deadline = got, time.monotonic() + max(0.0, cfg.gateway_settle)
            if settled(expected, answer):
                return answer, True
            if time.monotonic() >= deadline:
                return answer, False
            time.sleep(pause)
            pause = min(pause * 2, _SETTLE_PAUSE_MAX)

    def _tell(self, cfg: Config, conf: Confirmation) -> None:
        """The confirmation into the log, ``gateway.json`` and the journal (for the alerts)."""
        fields: dict[str, Any] = {"release": conf.release, "state": conf.state,
                                  "seen": conf.seen, "expected": conf.expected}
        if conf.state != CONFIRMED:
            log.warning("gateway_unconfirmed", error=conf.error, **fields,
                        hint="the gateway could not be asked: reported, never blamed on the commit")
        elif conf.blamed:
            log.error("gateway_confirm_blamed", blamed=list(conf.blamed), summary=conf.summary(),
                      action=cfg.gateway_confirm, **fields)
        elif conf.gaps:
            log.warning("gateway_confirmed", summary=conf.summary(), settled=conf.settled,
                        gaps=[g.text() for g in conf.gaps[:50]], **fields)
        else:
            log.info("gateway_confirmed", summary=conf.summary(), **fields)
        try:
            atomic_write(cfg.state_dir / GATEWAY_FILE, conf.encode())
        except OSError as exc:
            log.error("gateway_record_failed", error=str(exc), path=str(cfg.state_dir / GATEWAY_FILE))
        if self.record is None:
            return
        try:
            self.record(GatewayConfirmed(
                release=conf.release, commit=conf.commit, state=conf.state,
                expected=conf.expected, seen=conf.seen, summary=conf.summary(),
                gaps=tuple({"skill": g.skill, "reason": g.reason, "detail": g.detail,
                            "blamed": g.skill in conf.blamed} for g in conf.gaps[:GAPS_KEPT])))
        except (OSError, SkillsyncError) as exc:  # the journal's trouble is no verdict on the skills
            log.error("gateway_record_failed", error=str(exc), path="journal")


def _published_under(cfg: Config) -> Callable[[str], bool]:
    """Whether a skill folder the gateway loaded is one skillsyncd published (paths resolved)."""
    if cfg.publish_mode == "mirror" and cfg.publish_dir is not None:
        roots = [os.path.realpath(cfg.publish_dir)]
    else:
        roots = [os.path.realpath(cfg.releases_dir), os.path.realpath(cfg.current_link)]
    prefixes = tuple(r.rstrip(os.sep) + os.sep for r in roots)

    def ours(base_dir: str) -> bool:
        return bool(base_dir) and os.path.realpath(base_dir).startswith(prefixes)

    return ours
