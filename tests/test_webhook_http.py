"""The webhook endpoint in-process (aiohttp test server): body limits, disabled endpoint, rotation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from skillsyncd.config import Config, Secret
from skillsyncd.daemon.hooks import HookRunner
from skillsyncd.daemon.http import make_app
from skillsyncd.daemon.loop import Daemon
from skillsyncd.daemon.metrics import Metrics
from skillsyncd.daemon.webhook import sign

SECRET = "rotating-secret-1"


async def _client(cfg: Config) -> tuple[TestClient[Any, Any], Daemon]:
    daemon = Daemon(cfg, syncer=object(), metrics=Metrics(),  # type: ignore[arg-type]
                    hooks=HookRunner(None, None, report=lambda h, r: None))
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(daemon)))
    await client.start_server()
    return client, daemon


def _headers(body: bytes, secret: str = SECRET, delivery: str = "d") -> dict[str, str]:
    return {"X-Hub-Signature-256": sign(secret, body), "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery}


PUSH = json.dumps({"ref": "refs/heads/main"}).encode()


def test_chunked_oversized_body_is_refused(tmp_path: Path) -> None:
    cfg = Config(state_dir=tmp_path, webhook_secret=Secret(SECRET), webhook_max_bytes=1024)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"x" * 1024

    async def scenario() -> tuple[int, int, bool]:
        client, daemon = await _client(cfg)
        try:
            big = await client.post("/webhook/github", data=body(), headers=_headers(b""))
            declared = await client.post("/webhook/github", data=b"x" * 2048, headers=_headers(b""))
            return big.status, declared.status, daemon.scheduler.pending == "startup"
        finally:
            await client.close()

    big, declared, untouched = asyncio.run(scenario())
    assert (big, declared) == (413, 413)
    assert untouched  # nothing beyond the startup sync was requested


def test_no_secret_means_off_and_file_secret_rotates(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")

    async def scenario() -> list[int]:
        off, _ = await _client(Config(state_dir=tmp_path))
        on, daemon = await _client(Config(state_dir=tmp_path, webhook_secret=Secret(file=secret_file)))
        daemon.scheduler.pending = None  # as if the startup sync had run
        try:
            codes = [(await off.post("/webhook/github", data=PUSH, headers=_headers(PUSH))).status]
            codes.append((await on.post("/webhook/github", data=PUSH, headers=_headers(PUSH))).status)
            secret_file.write_text("rotated-secret-2\n")
            codes.append((await on.post("/webhook/github", data=PUSH,
                                        headers=_headers(PUSH, delivery="e"))).status)
            codes.append((await on.post("/webhook/github", data=PUSH,
                                        headers=_headers(PUSH, "rotated-secret-2", "f"))).status)
            return codes
        finally:
            await off.close()
            await on.close()

    assert asyncio.run(scenario()) == [404, 202, 401, 202]


def test_readyz_without_a_release_is_503(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, dict[str, Any]]:
        client, _ = await _client(Config(state_dir=tmp_path))
        try:
            resp = await client.get("/readyz")
            return resp.status, await resp.json()
        finally:
            await client.close()

    code, body = asyncio.run(scenario())
    assert code == 503 and body["reason"] == "no release is live yet"
