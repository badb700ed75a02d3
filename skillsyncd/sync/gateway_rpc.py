"""A minimal client of the OpenClaw gateway's WebSocket RPC: connect, then call one method.

The gateway speaks JSON frames (``{"type": "req"|"res"|"event", ...}``, protocol 4 in
OpenClaw 2026.9.6). On a new socket the server sends a ``connect.challenge`` event;
the client answers with a ``connect`` request naming itself (``gateway-client``,
mode ``backend``), its role (``operator``), the scopes it wants and, when the gateway
needs one, its token. On loopback a backend client needs no device identity. After
the ``hello-ok`` answer any method the scopes allow can be called.

Two kinds of failure, because the post-deploy check treats them differently:
:class:`GatewayUnavailable` (nothing listens, the socket closed, no answer in
time, or the gateway says it is not ready yet: wait and report, never blame) and
:class:`GatewayRefused` (it answered and said no: a bad token, a missing scope).
The token is sent in the ``connect`` frame only; it is never logged or put in an error.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from skillsyncd import __version__
from skillsyncd.errors import SkillsyncError
from skillsyncd.log import redact_text, register_secret

PROTOCOL = 4  # the gateway's PROTOCOL_VERSION (OpenClaw 2026.9.6)
CLIENT_ID = "gateway-client"
CLIENT_MODE = "backend"
ROLE = "operator"
READ_SCOPE = "operator.read"
MAX_FRAME = 64 * 1024 * 1024  # a skills.status answer for thousands of skills is a few MiB
_RETRYABLE_CODES = frozenset({"UNAVAILABLE"})


class GatewayUnavailable(SkillsyncError):
    """The gateway could not be asked (down, starting, restarting, too slow): not its skills' fault."""


class GatewayRefused(SkillsyncError):
    """The gateway answered but refused (bad or missing token, missing scope, bad request)."""


@dataclass(frozen=True)
class GatewayTarget:
    """Where the gateway listens and how to authenticate; ``token`` is None for auth mode none."""

    url: str
    token: str | None = None
    timeout: float = 5.0  # for the whole exchange: connect, challenge, hello, the call
    scopes: tuple[str, ...] = (READ_SCOPE,)


def call(target: GatewayTarget, method: str, params: Mapping[str, Any] | None = None) -> Any:
    """Blocking: one RPC on a fresh connection (run from a worker thread, never from an event loop)."""
    return asyncio.run(call_async(target, method, params))


async def call_async(target: GatewayTarget, method: str,
                     params: Mapping[str, Any] | None = None) -> Any:
    """One RPC on a fresh connection; the method's payload, or one of this module's errors."""
    register_secret(target.token)
    url = redact_text(target.url)
    try:
        async with asyncio.timeout(target.timeout), aiohttp.ClientSession() as session, \
                session.ws_connect(target.url, max_msg_size=MAX_FRAME, autoping=True) as ws:
            rpc = _Rpc(ws)
            await rpc.handshake(target)
            return await rpc.request(method, dict(params or {}))
    except TimeoutError as exc:
        raise GatewayUnavailable(f"gateway {url} did not answer {method} within "
                                 f"{target.timeout:g}s") from exc
    except aiohttp.WSServerHandshakeError as exc:
        raise GatewayUnavailable(f"gateway {url} refused the WebSocket upgrade "
                                 f"(HTTP {exc.status}): is this the gateway's port?") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise GatewayUnavailable(f"gateway {url} unreachable ({type(exc).__name__}: "
                                 f"{redact_text(str(exc))[:200]})") from exc


class _Rpc:
    """Request/response over one open socket; events other than the challenge are skipped."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def _frame(self) -> dict[str, Any]:
        msg = await self.ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            try:
                frame = json.loads(msg.data)
            except ValueError as exc:
                raise GatewayRefused("the gateway sent a frame that is not JSON") from exc
            if not isinstance(frame, dict):
                raise GatewayRefused("the gateway sent a frame that is not a JSON object")
            return frame
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            reason = f" ({msg.extra})" if msg.extra else ""
            raise GatewayUnavailable(f"the gateway closed the connection: code "
                                     f"{self.ws.close_code or msg.data}{reason}")
        if msg.type is aiohttp.WSMsgType.ERROR:
            raise GatewayUnavailable(f"the gateway connection failed: {msg.data}")
        return {}  # binary or ping frames: nothing this client asked for

    async def handshake(self, target: GatewayTarget) -> None:
        """Wait for ``connect.challenge``, answer with ``connect``, expect ``hello-ok``."""
        while True:
            frame = await self._frame()
            if frame.get("type") == "event" and frame.get("event") == "connect.challenge":
                break
        params: dict[str, Any] = {
            "minProtocol": PROTOCOL, "maxProtocol": PROTOCOL,
            "client": {"id": CLIENT_ID, "version": __version__, "platform": "linux",
                       "mode": CLIENT_MODE, "displayName": "skillsyncd"},
            "role": ROLE, "scopes": list(target.scopes),
        }
        if target.token:
            params["auth"] = {"token": target.token}
        await self.request("connect", params)

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        """Send one ``req`` frame and wait for the ``res`` frame with its id."""
        rid = f"skillsyncd-{next(self._ids)}"
        await self.ws.send_str(json.dumps({"type": "req", "id": rid, "method": method,
                                           "params": params}))
        while True:
            frame = await self._frame()
            if frame.get("type") != "res" or frame.get("id") != rid:
                continue
            if frame.get("ok") is True:
                return frame.get("payload")
            raise _refusal(method, frame.get("error"))


def _refusal(method: str, error: Any) -> SkillsyncError:
    """The error a ``res`` frame with ``ok: false`` stands for."""
    err = error if isinstance(error, Mapping) else {}
    code = str(err.get("code") or "UNKNOWN")
    message = redact_text(str(err.get("message") or "no message"))[:300]
    text = f"the gateway refused {method}: {code}: {message}"
    if code in _RETRYABLE_CODES or err.get("retryable") is True:
        return GatewayUnavailable(text)
    if method == "connect":
        text += ("; check OPENCLAW_GATEWAY_TOKEN (or SKILLSYNC_GATEWAY_TOKEN[_FILE]) against the "
                 "gateway's gateway.auth settings")
    return GatewayRefused(text)
