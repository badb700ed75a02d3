"""Start and stop the daemon: HTTP side, signals, the loop, and the bounded shutdown.

Shutdown on SIGTERM/SIGINT: stop taking triggers, close the HTTP side, wait up
to stop_grace seconds (SKILLSYNC_STOP_GRACE) for a sync in flight, exit 0. A sync still running then
is abandoned: the process exits with the worker thread mid-step, which is safe
because `current` only ever moves by one rename to a complete release, and the
next start removes an incomplete release and repairs state.json from disk.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from skillsyncd.config import Config
from skillsyncd.daemon.stopping import PENDING
from skillsyncd.errors import EXIT_OK, EXIT_SYNC_FAILED
from skillsyncd.sync.golive import check_name

# The heavy modules (dulwich through sync, aiohttp, prometheus_client, the Neo4j sink)
# are imported inside serve(), one group at a time with a stop check in between: a
# SIGTERM during start-up is honoured within one group's import time, not all of them.
if TYPE_CHECKING:
    from aiohttp import web

    from skillsyncd.audit.neo4j import Neo4jSink
    from skillsyncd.sync.pipeline import Syncer

    from .hooks import HookRunner
    from .loop import Daemon
    from .metrics import Metrics

log = structlog.get_logger(__name__)

AUDIT_STOP_WAIT = 2.0  # seconds the shutdown waits for the audit sink's thread


def _syncer(cfg: Config, metrics: Metrics) -> tuple[Syncer, Neo4jSink | None]:
    """The Syncer, and the Neo4j sink when NEO4J_URI is set (woken by each journal append).

    The daemon owns the alert and commit-status senders: built here once, attached to the
    journal through the Syncer, their counters in the daemon's metrics.
    """
    from skillsyncd.audit.commands import open_journal
    from skillsyncd.notify.observers import build_observers
    from skillsyncd.sync.assembly import build_syncer

    journal = open_journal(cfg)
    sink = None
    if cfg.neo4j_uri:
        from skillsyncd.audit.neo4j import Neo4jSink

        sink = Neo4jSink(cfg, journal)
    observers = build_observers(cfg, lag=sink.lag_seen if sink is not None else None)
    syncer = build_syncer(cfg, journal=journal, observers=observers)
    metrics.registry.register(observers.collector())  # alert and commit-status counters
    if sink is not None:
        journal.subscribe(sink.notify)
        metrics.watch_audit(sink)
    return syncer, sink


@dataclass(frozen=True)
class Stopped:
    """How the daemon ended: a sync left running, or the loop itself failed."""

    abandoned: bool = False
    crashed: bool = False


def _assemble(cfg: Config) -> tuple[Daemon, HookRunner, Neo4jSink | None]:
    """The daemon's parts, one import group at a time with a stop check after each."""
    PENDING.check("starting")
    from .metrics import Metrics

    metrics = Metrics()
    PENDING.check("metrics")
    from .hooks import HookRunner

    hooks = HookRunner(cfg.hook_command, cfg.hook_url,
                       report=lambda hook, result: metrics.hooks.labels(hook=hook, result=result).inc())
    PENDING.check("hooks")
    syncer, sink = _syncer(cfg, metrics)
    PENDING.check("syncer")
    from .loop import Daemon

    return Daemon(cfg, syncer, metrics, hooks), hooks, sink


def _on_signals(loop: asyncio.AbstractEventLoop, daemon: Daemon, stop: asyncio.Event) -> None:
    """SIGHUP triggers a sync, SIGTERM/SIGINT stop; one that came while binding stops now."""
    loop.add_signal_handler(signal.SIGHUP, daemon.trigger, "signal")
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The loop handles signals from here on; one that came while binding is honoured now,
    # before any sync starts (daemon.run() returns at once once stopping).
    if PENDING.requested:
        stop.set()
        daemon.stop()


async def serve(cfg: Config, grace: float) -> Stopped:
    """Run until SIGTERM/SIGINT (or until the loop dies of a bug).

    Until the loop's own handlers are in place, stopping.PENDING records signals;
    a stop raises StopRequested at the next check, before the HTTP port is bound.
    """
    loop = asyncio.get_running_loop()
    daemon, hooks, sink = _assemble(cfg)
    from . import http

    stop = asyncio.Event()
    PENDING.check("http")
    runner, address = await http.start(http.make_app(daemon), cfg.http_bind, cfg.http_timeout,
                                       cfg.http_max_connections)
    _on_signals(loop, daemon, stop)
    log.info("daemon_started", http=f"{address[0]}:{address[1]}", interval=cfg.interval,
             webhook=bool(cfg.webhook_secret), pid=os.getpid(),
             checks=[check_name(c) for c in daemon.syncer.checks])
    if sink is not None and not daemon.stopping:
        sink.start()  # its own thread: a slow or absent Neo4j never holds up a sync
        log.info("audit_sink_started", uri=sink.status()["uri"], replica=cfg.replica_id)
    from skillsyncd.publish.drift import DriftWatcher

    drift = DriftWatcher(cfg, lambda kind: daemon.metrics.drift.labels(kind=kind).inc())
    drift.start()  # its own thread; a no-op unless mirror mode and drift != off
    worker = asyncio.create_task(daemon.run(), name="skillsync-loop")
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({worker, stopper}, return_when=asyncio.FIRST_COMPLETED)
    crashed = worker.done() and worker.exception() is not None
    if crashed:
        log.error("loop_crashed", error=repr(worker.exception()))
    abandoned = await _drain(loop, daemon, worker, runner, grace)
    stopper.cancel()
    await hooks.close()
    await asyncio.to_thread(drift.stop)
    if sink is not None:
        # Bounded, and nearly nothing once the grace is spent: a sink stuck in a network
        # call is a daemon thread and dies with the process; its events stay journalled.
        clean = await asyncio.to_thread(sink.stop, 0.1 if abandoned else AUDIT_STOP_WAIT)
        log.info("audit_sink_stopped", lag=sink.lag_seen(), clean=clean)
    log.info("stopped", abandoned=abandoned, crashed=crashed)
    return Stopped(abandoned=abandoned, crashed=crashed)


async def _drain(loop: asyncio.AbstractEventLoop, daemon: Daemon, worker: asyncio.Task[None],
                 runner: web.AppRunner, grace: float) -> bool:
    """Stop taking triggers, close the HTTP side, wait up to ``grace`` for the sync in flight.

    True when a sync was still running after ``grace`` (abandoned, its task cancelled).
    """
    syncing = daemon.observed.poller_status == "syncing"
    daemon.stop()
    log.info("stopping", sync_in_flight=syncing, grace=grace)
    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    PENDING.install()  # a second SIGTERM while draining must not turn into status 143
    await runner.cleanup()
    done, _ = await asyncio.wait({worker}, timeout=grace)
    if not done:
        log.warning("sync_abandoned", grace=grace,
                    note="current is untouched or on a complete release; the next start cleans up")
        worker.cancel()
    return not done


def run(cfg: Config) -> int:
    """The ``run`` command, the daemon's entry: 0 after a clean stop, 1 if the loop died
    (supervisord restarts it). A stop that came while this module was imported ends it here."""
    PENDING.check("imported")
    stopped = asyncio.run(serve(cfg, cfg.stop_grace))
    code = EXIT_SYNC_FAILED if stopped.crashed else EXIT_OK
    if stopped.abandoned:
        # The sync thread may sit in a blocking read; leave without joining it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


__all__ = ["Stopped", "run", "serve"]
