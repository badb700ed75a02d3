"""Post-flip checks the operator configures: a health URL and a health command.

Each is a :data:`skillsyncd.sync.Check` (``(cfg, release_id) -> problems``) run
by the core in its worker thread right after the flip; any problem makes the
core flip back and mark the commit bad. Both the daemon and ``--once`` use them
(through ``wiring.build_syncer``).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from dataclasses import dataclass

import structlog
import urllib3

from skillsyncd.config import Config
from skillsyncd.errors import ReleaseError
from skillsyncd.log import redact_text
from skillsyncd.release import Releases

log = structlog.get_logger(__name__)

# Pause between attempts grows linearly: the gateway may need a moment to reload.
RETRY_PAUSE = 0.5


def release_env(cfg: Config, release_id: str) -> dict[str, str]:
    """Environment for a command that runs about a release (checks and hooks)."""
    releases = Releases(cfg.state_dir)
    try:
        commit = str(releases.manifest(release_id).get("commit") or "")
    except ReleaseError:
        commit = ""
    return {
        **os.environ,
        "SKILLSYNC_RELEASE": release_id,
        "SKILLSYNC_COMMIT": commit,
        "SKILLSYNC_RELEASE_DIR": str(releases.dir(release_id)),
        "SKILLSYNC_STATE_DIR": str(cfg.state_dir),
    }


def _attempts(retries: int) -> range:
    return range(1, max(1, retries) + 1)


@dataclass(frozen=True)
class HealthUrlCheck:
    """GET ``url``; healthy on a 2xx answer within ``timeout``, tried ``retries`` times."""

    url: str
    timeout: float
    retries: int

    def __call__(self, cfg: Config, release_id: str) -> list[str]:
        http = urllib3.PoolManager(timeout=urllib3.Timeout(total=self.timeout), retries=False)
        last = ""
        for attempt in _attempts(self.retries):
            try:
                resp = http.request("GET", self.url, preload_content=True)
                if 200 <= resp.status < 300:
                    log.info("health_url_ok", status=resp.status, attempt=attempt)
                    return []
                last = f"answered HTTP {resp.status}"
            except urllib3.exceptions.HTTPError as exc:
                last = f"unreachable ({type(exc).__name__})"
            log.warning("health_url_failed", url=redact_text(self.url), attempt=attempt, error=last)
            if attempt < max(1, self.retries):
                time.sleep(RETRY_PAUSE * attempt)
        return [f"health URL {redact_text(self.url)} {last} after {max(1, self.retries)} attempt(s)"]


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
        last = ""
        for attempt in _attempts(self.retries):
            try:
                done = subprocess.run(argv, env=env, capture_output=True, timeout=self.timeout,
                                      check=False, stdin=subprocess.DEVNULL)
                if done.returncode == 0:
                    log.info("health_command_ok", attempt=attempt)
                    return []
                tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
                last = f"exited {done.returncode}" + (f": {tail[0][:300]}" if tail[0] else "")
            except subprocess.TimeoutExpired:
                last = f"timed out after {self.timeout:g}s"
            except OSError as exc:
                last = f"could not start ({exc.strerror})"
            log.warning("health_command_failed", attempt=attempt, error=redact_text(last))
            if attempt < max(1, self.retries):
                time.sleep(RETRY_PAUSE * attempt)
        return [f"health command {argv[0]!r} {redact_text(last)} after {max(1, self.retries)} attempt(s)"]


def post_deploy_checks(cfg: Config) -> tuple[HealthUrlCheck | HealthCommandCheck, ...]:
    """The configured checks, in order: health URL, then health command."""
    checks: list[HealthUrlCheck | HealthCommandCheck] = []
    if cfg.health_url:
        checks.append(HealthUrlCheck(cfg.health_url, cfg.health_timeout, cfg.health_retries))
    if cfg.health_command:
        checks.append(HealthCommandCheck(cfg.health_command, cfg.health_timeout, cfg.health_retries))
    return tuple(checks)
