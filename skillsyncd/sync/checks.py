"""Post-flip checks: the release read back, and what the operator configures (a health URL
and a health command).

Each is a :data:`skillsyncd.sync.values.Check` (``(cfg, release_id) -> problems``) run
by go-live right after the flip; a problem makes it flip back and mark the commit
bad. Both the daemon and ``--once`` use them (through ``sync.assembly.build_syncer``).

A health URL names the gateway, which may be down or starting (the real one
takes 15-19 s to listen): before the flip, :meth:`HealthUrlCheck.wait_ready`
waits for it (``health_start_wait``, bounded) and the core blames a commit only
when the gateway was healthy before the flip and is not after it. Retries and
their back-off are stamina's.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import structlog
import urllib3

from skillsyncd.config import Config
from skillsyncd.errors import ReleaseError
from skillsyncd.log import redact_text
from skillsyncd.release.releases import Releases
from skillsyncd.release.verify import verify_release

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
    """Call ``attempt`` until it returns None (healthy), through stamina; the last error if never."""
    import stamina  # deferred: only a configured health URL or command retries (~24 modules)

    last: str | None = None
    try:
        for number, tried in enumerate(stamina.retry_context(
                on=_Unhealthy, attempts=attempts, timeout=timeout, wait_initial=RETRY_PAUSE,
                wait_max=RETRY_PAUSE_MAX, wait_jitter=RETRY_PAUSE / 2), start=1):
            with tried:
                last = attempt()
                if last is None:
                    log.info(f"{what}_ok", attempt=number, **fields)
                    return None
                log.warning(f"{what}_failed", attempt=number, error=redact_text(last), **fields)
                raise _Unhealthy(last)
    except _Unhealthy:
        pass
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


def post_deploy_checks(cfg: Config) -> tuple[HealthUrlCheck | HealthCommandCheck, ...]:
    """The configured checks, in order: health URL, then health command."""
    checks: list[HealthUrlCheck | HealthCommandCheck] = []
    if cfg.health_url:
        checks.append(HealthUrlCheck(cfg.health_url, cfg.health_timeout, cfg.health_retries))
    if cfg.health_command:
        checks.append(HealthCommandCheck(cfg.health_command, cfg.health_timeout, cfg.health_retries))
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
