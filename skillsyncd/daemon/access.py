"""Who may read what over HTTP once the daemon listens beyond 127.0.0.1.

On the default bind (127.0.0.1, ::1, localhost) only processes in the container
can connect, and every path answers as before. On any other bind (0.0.0.0 to
give GitHub's webhook a public domain, or any other address) only
``POST /webhook/github`` (it proves itself with its HMAC signature) and
``/healthz`` (the platform's liveness probe) answer without
``Authorization: Bearer $SKILLSYNC_HTTP_TOKEN``; the dashboard, /status,
/readyz, /metrics and anything else answer 401. Without a token set they can
only be read from inside the container.

What changes the daemon's behaviour (``POST /freeze``, ``POST /unfreeze``) needs
the token on every bind, loopback included: anything in the container can read
status, only whoever holds the token may stop or start deployments.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from skillsyncd.config import Config
from skillsyncd.errors import ConfigError
from skillsyncd.log import register_secret

log = structlog.get_logger(__name__)

LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
OPEN_PATHS = frozenset({("POST", "/webhook/github"), ("GET", "/healthz"), ("HEAD", "/healthz")})
# Operator actions: the token is needed on every bind, loopback included.
CONTROL_PATHS = frozenset({("POST", "/freeze"), ("POST", "/unfreeze"), ("POST", "/sync")})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bind_host(bind: str) -> str:
    return bind.rpartition(":")[0].strip("[]")


def is_local(bind: str) -> bool:
    """Whether ``bind`` is the container-only default (exactly 127.0.0.1, ::1 or localhost)."""
    return bind_host(bind).lower() in LOCAL_HOSTS


def is_open(method: str, path: str) -> bool:
    return (method, path) in OPEN_PATHS


def is_control(method: str, path: str) -> bool:
    return (method, path) in CONTROL_PATHS


def bearer_matches(header: str | None, token: str | None) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time; no token set never matches."""
    if not token or not header:
        return False
    scheme, _, given = header.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _unauthorized(reason: str) -> web.Response:
    return web.json_response({"error": "unauthorized", "reason": reason}, status=401,
                             headers={"WWW-Authenticate": 'Bearer realm="skillsyncd"'})


def middleware(cfg: Config) -> Middleware:
    """The aiohttp middleware for ``cfg.http_bind`` (a pass-through on a local bind)."""
    local = is_local(cfg.http_bind)
    if not local and not cfg.http_token:
        log.warning("http_token_missing", bind=cfg.http_bind,
                    hint="only POST /webhook/github and /healthz answer off 127.0.0.1; set "
                         "SKILLSYNC_HTTP_TOKEN to read /status, /metrics and the dashboard remotely")

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_open(request.method, request.path) or (
                local and not is_control(request.method, request.path)):
            return await handler(request)
        try:
            token = cfg.http_token.get()  # re-read: a *_FILE token may rotate
        except ConfigError as exc:
            log.error("http_token_unreadable", error=str(exc))
            token = None
        register_secret(token)
        if not token:
            return _unauthorized("this address needs SKILLSYNC_HTTP_TOKEN, which is not set")
        if not bearer_matches(request.headers.get("Authorization"), token):
            return _unauthorized("send Authorization: Bearer $SKILLSYNC_HTTP_TOKEN")
        return await handler(request)

    return guard


__all__ = ["bearer_matches", "is_control", "is_local", "is_open", "middleware"]
