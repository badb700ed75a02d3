"""Hooks after a successful publish: an exec command and/or an HTTP POST.

They run on the event loop as subprocesses and aiohttp requests, one
deployment at a time from a queue, so a slow hook never delays a sync. Each
deployment is delivered at most once per process (keyed by release id), and the
release id travels with it (SKILLSYNC_RELEASE, ``Idempotency-Key``) so a
receiver can recognise a repeat after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

import aiohttp
import structlog

from skillsyncd.log import redact_text

log = structlog.get_logger(__name__)

HOOK_TIMEOUT = 30.0  # seconds per attempt
HOOK_ATTEMPTS = 3
HOOK_PAUSE = 1.0  # seconds before the second attempt; doubles after


@dataclass(frozen=True)
class Deployment:
    """What a hook is told about: the release that went live and the one it replaced."""

    commit: str
    release: str
    previous_commit: str | None
    previous_release: str | None
    trigger: str
    state_dir: str
    event: str = "deployed"  # or "manual_rollback" after `skillsyncd rollback` (events.Status)

    def env(self) -> dict[str, str]:
        return {
            "SKILLSYNC_EVENT": self.event,
            "SKILLSYNC_COMMIT": self.commit,
            "SKILLSYNC_RELEASE": self.release,
            "SKILLSYNC_PREVIOUS_COMMIT": self.previous_commit or "",
            "SKILLSYNC_PREVIOUS_RELEASE": self.previous_release or "",
            "SKILLSYNC_TRIGGER": self.trigger,
            "SKILLSYNC_STATE_DIR": self.state_dir,
        }

    def payload(self) -> bytes:
        return json.dumps(asdict(self)).encode()


Report = Callable[[str, str], None]  # (hook, result) -> None, for metrics


class _HookFailed(Exception):
    """One failed delivery attempt (retried by stamina)."""


def deliver_now(command: str | None, url: str | None, deployment: Deployment) -> bool:
    """Run the hooks for one deployment and wait for them (``--once`` and ``rollback``).

    Returns False if a hook still failed after its retries; the deployment itself
    stands either way.
    """
    results: list[str] = []

    async def deliver() -> None:
        runner = HookRunner(command, url, report=lambda _hook, result: results.append(result))
        if not runner.enabled:
            return
        runner.submit(deployment)
        if runner._worker is not None:
            await runner._worker

    asyncio.run(deliver())
    return "failed" not in results


class HookRunner:
    """Delivers deployments to the configured hooks in the background."""

    def __init__(self, command: str | None, url: str | None, report: Report,
                 timeout: float = HOOK_TIMEOUT, attempts: int = HOOK_ATTEMPTS,
                 pause: float = HOOK_PAUSE) -> None:
        self.argv = shlex.split(command) if command else []
        self.url = url
        self.report = report
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.pause = pause
        self._queue: asyncio.Queue[Deployment] = asyncio.Queue()
        self._delivered: set[str] = set()
        self._worker: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.argv or self.url)

    def submit(self, deployment: Deployment) -> None:
        """Queue a deployment; a release already delivered or queued is ignored."""
        if not self.enabled or deployment.release in self._delivered:
            return
        self._delivered.add(deployment.release)
        self._queue.put_nowait(deployment)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="skillsync-hooks")

    async def close(self) -> None:
        """Stop at once: a hook in flight is cancelled (its subprocess killed)."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def _drain(self) -> None:
        while not self._queue.empty():
            deployment = self._queue.get_nowait()
            if self.argv:
                await self._retry("command", deployment, self._run_command)
            if self.url:
                await self._retry("url", deployment, self._post)

    async def _retry(self, hook: str, deployment: Deployment,
                     attempt_once: Callable[[Deployment], Awaitable[str | None]]) -> None:
        """Up to ``attempts`` tries, through stamina (back-off from ``pause``, doubling)."""
        import stamina  # deferred: an idle daemon without hooks never loads stamina and tenacity

        attempt = 0
        try:
            async for tried in stamina.retry_context(
                    on=_HookFailed, attempts=self.attempts, timeout=None,
                    wait_initial=self.pause, wait_max=max(self.pause, 8 * self.pause),
                    wait_jitter=0.0, wait_exp_base=2):
                with tried:
                    attempt += 1
                    error = await attempt_once(deployment)
                    if error is not None:
                        log.warning("hook_failed", hook=hook, release=deployment.release,
                                    attempt=attempt, error=redact_text(error))
                        raise _HookFailed(error)
        except _HookFailed:
            self.report(hook, "failed")
            return
        log.info("hook_done", hook=hook, release=deployment.release, attempt=attempt)
        self.report(hook, "ok")

    async def _run_command(self, deployment: Deployment) -> str | None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, env={**os.environ, **deployment.env()},
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            return f"could not start {self.argv[0]!r}: {exc.strerror}"
        try:
            _, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return f"timed out after {self.timeout:g}s"
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()  # reap it before the loop closes
            raise
        if proc.returncode == 0:
            return None
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return f"exited {proc.returncode}" + (f": {tail[0][:300]}" if tail[0] else "")

    async def _post(self, deployment: Deployment) -> str | None:
        assert self.url is not None
        headers = {"Content-Type": "application/json", "Idempotency-Key": deployment.release,
                   "User-Agent": "skillsyncd"}
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with (aiohttp.ClientSession(timeout=timeout) as session,
                        session.post(self.url, data=deployment.payload(), headers=headers) as resp):
                if 200 <= resp.status < 300:
                    return None
                return f"answered HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"unreachable ({type(exc).__name__})"
