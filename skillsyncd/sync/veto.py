"""The veto before the flip: ``SKILLSYNC_PRE_FLIP_COMMAND`` judges a staged release.

The command runs after staging and before ``current`` moves, so a team's own
rules judge a release before it is live (``health_command`` only can after).
It gets the staged release's path, the commit and the plan as JSON on stdin and
as ``SKILLSYNC_*`` variables; exit 0 lets the release go live, anything else
(a non-zero exit, a timeout, a command that cannot start) refuses the commit,
with the last lines it printed as the reason.

It never sees our secrets: the environment it inherits loses every ``SKILLSYNC_*``,
``NEO4J_*`` and secret variable (GITHUB_TOKEN, the webhook secret, ...), and any
variable holding the value of one of our secrets. It runs in a session of its
own; at the timeout its whole process group is killed, so a script that started
helpers leaves none behind. Stdin and the output are temporary files, never
pipes: a command that does not read stdin, or prints a lot, cannot block us.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

import structlog

from skillsyncd.config import Config, secret_env_names
from skillsyncd.errors import ConfigError
from skillsyncd.log import redact_text
from skillsyncd.release.releases import Releases
from skillsyncd.sync.values import Candidate, Live, Run

log = structlog.get_logger(__name__)

TAIL_LINES = 5  # lines of the command's output kept as the reason
TAIL_BYTES = 64 * 1024  # read back at most this much of its output
_DROPPED_PREFIXES = ("SKILLSYNC_", "NEO4J_")


@dataclass(frozen=True)
class Veto:
    """The command's answer: ``reason`` is None when the release may go live."""

    reason: str | None
    exit_code: int | None = None
    timed_out: bool = False


def payload(cfg: Config, releases: Releases, run: Run, live: Live, candidate: Candidate
            ) -> dict[str, Any]:
    """What the command reads on stdin (pure): the release, the commit and the plan."""
    plan, manifest = candidate.plan, candidate.manifest
    return {
        "release": candidate.release, "release_path": str(releases.dir(candidate.release)),
        "commit": manifest.commit, "ref": cfg.ref, "source": manifest.source,
        "previous_release": live.current, "previous_commit": live.commit,
        "trigger": run.trigger, "sync_id": run.sync_id,
        "plan": {"added": list(plan.added), "changed": list(plan.changed),
                 "removed": list(plan.removed), "unchanged": list(plan.unchanged)},
        "held_back": {k: list(v) for k, v in candidate.held.items()},
        "skills": [dict(s) for s in candidate.skills],
    }


def scrubbed_env(cfg: Config, base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """``base`` without anything of ours that is secret (or could lead to a secret), plus ``extra``."""
    secret_names = secret_env_names()
    values = {v for v in (_secret_value(cfg, name) for name in
                          ("token", "webhook_secret", "neo4j_password", "notify", "http_token"))
              if v}
    env = {k: v for k, v in base.items()
           if not k.startswith(_DROPPED_PREFIXES) and k not in secret_names
           and not any(secret in v for secret in values)}
    return {**env, **extra}


def _secret_value(cfg: Config, name: str) -> str | None:
    try:
        value = getattr(cfg, name).get()
    except ConfigError:  # an unreadable *_FILE: nothing to compare against
        return None
    return value if isinstance(value, str) and len(value) >= 4 else None


def run_pre_flip(cfg: Config, releases: Releases, run: Run, live: Live,
                 candidate: Candidate) -> Veto:
    """Run the command on the staged ``candidate``; never raises for what the command does."""
    argv = shlex.split(cfg.pre_flip_command or "")
    if not argv:
        return Veto("the pre-flip command is empty (SKILLSYNC_PRE_FLIP_COMMAND)")
    doc = payload(cfg, releases, run, live, candidate)
    env = scrubbed_env(cfg, os.environ, {
        "SKILLSYNC_EVENT": "pre_flip", "SKILLSYNC_RELEASE": candidate.release,
        "SKILLSYNC_RELEASE_PATH": doc["release_path"], "SKILLSYNC_COMMIT": doc["commit"],
        "SKILLSYNC_PREVIOUS_RELEASE": live.current or "",
        "SKILLSYNC_PREVIOUS_COMMIT": live.commit or "", "SKILLSYNC_REF": cfg.ref,
        "SKILLSYNC_TRIGGER": run.trigger})
    log.info("pre_flip_started", command=argv[0], release=candidate.release,
             timeout=cfg.pre_flip_timeout)
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as out:
        stdin.write(json.dumps(doc).encode())
        stdin.flush()
        stdin.seek(0)
        try:
            proc = _spawn(argv, env, stdin, out, cwd=doc["release_path"])
        except OSError as exc:
            return _refused(argv, Veto(f"pre-flip command {argv[0]!r} could not start: "
                                       f"{exc.strerror or exc}"))
        code = _wait(proc, cfg.pre_flip_timeout)
        tail = _tail(out)
    if code is None:
        return _refused(argv, Veto(f"pre-flip command {argv[0]!r} timed out after "
                                   f"{cfg.pre_flip_timeout:g}s (its process group was killed)"
                                   + (f": {tail}" if tail else ""), timed_out=True))
    if code != 0:
        return _refused(argv, Veto(f"pre-flip command {argv[0]!r} exited {code}"
                                   + (f": {tail}" if tail else ""), exit_code=code))
    log.info("pre_flip_passed", command=argv[0], release=candidate.release)
    return Veto(None, exit_code=0)


def _spawn(argv: list[str], env: dict[str, str], stdin: IO[bytes], out: IO[bytes],
           cwd: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env, stdin=stdin, stdout=out, stderr=subprocess.STDOUT,
                            cwd=cwd, start_new_session=True, close_fds=True)


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """The exit code, or None after killing the command's process group at ``timeout``."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.wait()
        return None
    finally:
        _kill_group(proc.pid)  # helpers it left running in its group go too


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _tail(out: IO[bytes]) -> str:
    """The last lines the command printed, redacted, on one line."""
    size = out.seek(0, os.SEEK_END)
    out.seek(max(0, size - TAIL_BYTES))
    text = out.read().decode(errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()][-TAIL_LINES:]
    return redact_text(" | ".join(line[:300] for line in lines))[:1500]


def _refused(argv: list[str], veto: Veto) -> Veto:
    log.warning("pre_flip_refused", command=argv[0], reason=veto.reason, timed_out=veto.timed_out)
    return veto
