"""A WebSocket server on 127.0.0.1 that speaks the OpenClaw gateway's RPC protocol.

Real frames over a real socket, as OpenClaw 2026.9.6 sends them: a ``connect.challenge``
event on open, a ``connect`` request checked like the gateway checks it (client id and
mode, role, scopes, the token when one is set), then ``res`` frames for the methods.
What ``skills.status`` answers is the test's: :attr:`FakeGateway.answer`. Each new
connection takes the next behaviour from :attr:`FakeGateway.script` (then ``serve``):

- ``serve``: answer normally;
- ``starting``: answer ``connect`` with UNAVAILABLE "gateway starting" (as the real one
  does for a few seconds after it listens);
- ``restart``: accept ``connect``, then close the socket with 1012 (service restart)
  instead of answering the method;
- ``silent``: never send the challenge (a gateway too slow to answer).

:meth:`stop` and :meth:`start` close and reopen the port itself (a real restart: the
client meets "connection refused" in between).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeGateway:
    def __init__(self, token: str | None = None, port: int | None = None) -> None:
        self.token = token
        self.port = port or free_port()
        self.answer: Callable[[], dict[str, Any]] = lambda: {"skills": []}
        self.script: list[str] = []
        self.connects: list[dict[str, Any]] = []  # connect params, as received
        self.calls: list[str] = []  # methods called after a successful connect
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def start(self) -> FakeGateway:
        self._run(self._start())
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._socket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    def stop(self) -> None:
        if self._runner is not None:
            self._run(self._runner.cleanup())
            self._runner = None

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        behaviour = self.script.pop(0) if self.script else "serve"
        if behaviour == "silent":
            async for _ in ws:
                pass
            return ws
        await ws.send_str(json.dumps({"type": "event", "event": "connect.challenge",
                                      "payload": {"nonce": "n-1", "ts": 1}}))
        connected = False
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            if frame.get("method") == "connect":
                self.connects.append(frame["params"])
                error = self._refuse(frame["params"], behaviour)
                connected = error is None
                await ws.send_str(json.dumps(
                    {"type": "res", "id": frame["id"], "ok": connected,
                     **({"payload": {"type": "hello-ok", "protocol": 4}} if connected
                        else {"error": error})}))
                # a tick event between frames, as the real gateway sends them
                await ws.send_str(json.dumps({"type": "event", "event": "tick", "payload": {}}))
                continue
            if not connected:
                await ws.close(code=1008, message=b"connect first")
                break
            if behaviour == "restart":
                await ws.close(code=1012, message=b"service restart")
                break
            self.calls.append(frame["method"])
            ok = frame["method"] == "skills.status"
            await ws.send_str(json.dumps(
                {"type": "res", "id": frame["id"], "ok": ok,
                 **({"payload": self.answer()} if ok else
                    {"error": {"code": "INVALID_REQUEST", "message": "unknown method"}})}))
        return ws

    def _refuse(self, params: dict[str, Any], behaviour: str) -> dict[str, Any] | None:
        if behaviour == "starting":
            return {"code": "UNAVAILABLE", "message": "gateway starting; retry shortly",
                    "retryable": True}
        client = params.get("client") or {}
        if (params.get("minProtocol"), params.get("maxProtocol")) != (4, 4) \
                or client.get("id") != "gateway-client" or client.get("mode") != "backend" \
                or not client.get("version") or not client.get("platform"):
            return {"code": "INVALID_REQUEST", "message": "invalid connect params"}
        if self.token is not None and (params.get("auth") or {}).get("token") != self.token:
            return {"code": "INVALID_REQUEST", "message": "unauthorized: gateway token mismatch"}
        if params.get("role") != "operator" or "operator.read" not in (params.get("scopes") or []):
            return {"code": "INVALID_REQUEST", "message": "missing scope: operator.read"}
        return None
