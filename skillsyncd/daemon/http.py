"""The HTTP side: / (dashboard), /healthz, /readyz, /status, /metrics, POST /webhook/github,
and POST /freeze, /unfreeze and /sync (always behind the token, see access.py) (aiohttp).

Every client is bounded: ``http_timeout`` for its request headers (aiohttp's keep-alive
timer, which also closes idle connections), ``http_timeout`` again for a webhook body
(else 408), at most ``http_max_connections`` open at once (connections.py), and
aiohttp's own caps on line and header size (a 400).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiohttp import web

from skillsyncd.audit.journal import now_iso
from skillsyncd.errors import ConfigError
from skillsyncd.sync.freeze import end_freeze, parse_until, set_freeze
from skillsyncd.sync.state import load_state

from . import access, dashboard, status, webhook
from .connections import ConnectionCap
from .loop import Daemon

log = structlog.get_logger(__name__)

WEBHOOK_PATH = "/webhook/github"


def parse_bind(bind: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``; port 0 picks a free one (logged at start)."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"http_bind must be HOST:PORT, e.g. 127.0.0.1:18790 (got {bind!r})")
    return host.strip("[]"), int(port)


class Endpoints:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.deliveries = webhook.DeliveryLog()

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        disk = await asyncio.to_thread(status.disk_view, self.daemon.cfg)
        live = disk["current_release"] is not None
        fresh = self.daemon.fresh()
        body = {"ready": live and fresh, "release": disk["current_release"],
                "last_success": disk["last_success"],
                "last_success_age_seconds": self.daemon.success_age(),
                "staleness_limit_seconds": self.daemon.staleness}
        if not live:
            body["reason"] = "no release is live yet"
        elif not fresh:
            body["reason"] = f"no successful sync in the last {self.daemon.staleness:g}s"
        return web.json_response(body, status=200 if live and fresh else 503)

    async def status(self, request: web.Request) -> web.Response:
        disk = await asyncio.to_thread(status.disk_view, self.daemon.cfg)
        return web.json_response(status.document(self.daemon, disk))

    async def dashboard(self, request: web.Request) -> web.Response:
        disk = await asyncio.to_thread(status.disk_view, self.daemon.cfg)
        doc = status.document(self.daemon, disk)
        m = self.daemon.metrics
        m.live(disk["deployed_commit"], disk["current_release"], disk["skills_live"])
        m.freeze(disk["freeze"], disk["waiting"])
        m.sync_window(doc["sync_window"])
        m.failure_streak.set(self.daemon.scheduler.failure_streak)
        m.gateway(disk["gateway"])
        page = await asyncio.to_thread(dashboard.gather, self.daemon, doc, m.exposition().decode())
        body = dashboard.render(page, want=request.query.get("status", "all"))
        return web.Response(text=body, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    async def metrics(self, request: web.Request) -> web.Response:
        disk = await asyncio.to_thread(status.disk_view, self.daemon.cfg)
        m = self.daemon.metrics
        m.live(disk["deployed_commit"], disk["current_release"], disk["skills_live"])
        m.freeze(disk["freeze"], disk["waiting"])
        m.sync_window(status.document(self.daemon, disk)["sync_window"])
        m.failure_streak.set(self.daemon.scheduler.failure_streak)
        m.gateway(disk["gateway"])
        return web.Response(body=m.exposition(), headers={"Content-Type": m.content_type})

    async def freeze(self, request: web.Request) -> web.Response:
        """POST /freeze {"reason": TEXT, "until": TIME}: as ``skillsyncd freeze`` (token only)."""
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        if not isinstance(body, dict) or not all(
                isinstance(body.get(k), str | None) for k in ("reason", "until")):
            return web.json_response({"error": 'send {"reason": "...", "until": "2h"} (both '
                                      "optional strings)"}, status=400)
        try:
            until = parse_until(body["until"]) if body.get("until") else None
        except ConfigError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        done = await asyncio.to_thread(set_freeze, self.daemon.cfg, self.daemon.syncer.ledger.record,
                                       body.get("reason"), until, "http")
        self.daemon.frozen_until(done.until)
        return web.json_response({"frozen": True, "freeze": done.to_dict()})

    async def unfreeze(self, request: web.Request) -> web.Response:
        """POST /unfreeze: lift the freeze and sync at once (what waits goes live)."""
        lifted = await asyncio.to_thread(end_freeze, self.daemon.cfg,
                                         self.daemon.syncer.ledger.record, "http")
        self.daemon.frozen_until(None)
        synced = lifted is not None and self.daemon.trigger("unfreeze")
        return web.json_response({"frozen": False, "lifted": lifted.to_dict() if lifted else None,
                                  "sync_triggered": bool(synced)})

    async def sync(self, request: web.Request) -> web.Response:
        """POST /sync: a manual sync now; ``?override=window`` lets it deploy inside a closed
        sync window (as ``--once --window-override``; a freeze still holds)."""
        override = request.query.get("override")
        if override not in (None, "window"):
            return web.json_response({"error": f"override={override!r}: the one override is "
                                      "'window' (POST /sync?override=window)"}, status=400)
        queued = (self.daemon.override_windows() if override == "window"
                  else self.daemon.trigger("manual"))
        return web.json_response({"sync_triggered": queued, "window_override": override == "window"})

    async def github(self, request: web.Request) -> web.Response:
        verdict = await self._judge(request)
        self.daemon.metrics.webhooks.labels(result=verdict.result).inc()
        delivery = request.headers.get(webhook.DELIVERY_HEADER)
        if verdict.status < 300:
            self.daemon.observed.webhook_last_received = now_iso()
        if verdict.trigger:  # a signed push of a new head skips the token bucket
            self.daemon.trigger("webhook", urgent=await self._new_head(verdict.head))
        (log.info if verdict.status < 400 else log.warning)(
            "webhook", result=verdict.result, reason=verdict.reason, http_status=verdict.status,
            delivery=delivery, github_event=request.headers.get(webhook.EVENT_HEADER))
        response = web.json_response({"result": verdict.result, "reason": verdict.reason},
                                     status=verdict.status)
        if verdict is webhook.TOO_SLOW:
            response.force_close()  # no lingering read of the rest of a trickled body
        return response

    async def _new_head(self, head: str | None) -> bool:
        """Whether a signed push names a commit that is not the deployed one."""
        if head is None:
            return False
        deployed = (await asyncio.to_thread(load_state, self.daemon.cfg.state_file)).commit
        return head != deployed

    async def _judge(self, request: web.Request) -> webhook.Verdict:
        cfg = self.daemon.cfg
        if not cfg.webhook_secret:
            return webhook.DISABLED
        if (request.content_length or 0) > cfg.webhook_max_bytes:
            return webhook.TOO_LARGE
        try:
            # bounded in size by the app's client_max_size, in time by http_timeout
            async with asyncio.timeout(cfg.http_timeout):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return webhook.TOO_LARGE
        except TimeoutError:
            return webhook.TOO_SLOW
        try:
            secret = cfg.webhook_secret.get()  # re-read: a *_FILE secret may rotate
        except ConfigError as exc:
            log.error("webhook_secret_unreadable", error=str(exc))
            return webhook.Verdict(503, "secret_unreadable", "webhook secret unreadable")
        if not secret:
            return webhook.DISABLED
        if self.daemon.stopping:
            return webhook.Verdict(503, "stopping", "daemon is stopping")
        return webhook.judge(secret, body, request.headers, cfg.ref, self.deliveries)


def make_app(daemon: Daemon) -> web.Application:
    app = web.Application(client_max_size=daemon.cfg.webhook_max_bytes)
    app.middlewares.append(access.middleware(daemon.cfg))  # the token rule off loopback
    ep = Endpoints(daemon)
    app.router.add_get("/", ep.dashboard)
    app.router.add_get("/healthz", ep.healthz)
    app.router.add_get("/readyz", ep.readyz)
    app.router.add_get("/status", ep.status)
    app.router.add_get("/metrics", ep.metrics)
    app.router.add_post(WEBHOOK_PATH, ep.github)
    app.router.add_post("/freeze", ep.freeze)
    app.router.add_post("/unfreeze", ep.unfreeze)
    app.router.add_post("/sync", ep.sync)
    return app


async def start(app: web.Application, bind: str, timeout: float = 5.0,
                max_connections: int = 64) -> tuple[web.AppRunner, Any]:
    """Listen on ``bind``; returns the runner (for cleanup) and the bound address."""
    host, port = parse_bind(bind)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                           # Until a complete request line and headers arrive, and while
                           # idle between requests; aiohttp closes the connection after it.
                           keepalive_timeout=timeout,
                           # After answering early (404, 413), read no more of a body than this.
                           lingering_time=timeout)
    await runner.setup()
    if runner.server is None:  # setup() always makes one
        raise RuntimeError("aiohttp AppRunner.setup() made no server")
    ConnectionCap(runner.server, max_connections)  # lives on in the server's callbacks
    site = web.TCPSite(runner, host, port, backlog=max_connections)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot listen on {bind}: {exc.strerror}; set SKILLSYNC_HTTP_BIND") from exc
    addresses = runner.addresses
    return runner, addresses[0] if addresses else (host, port)
