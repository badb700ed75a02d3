"""The HTTP side against malformed and slow clients, on a real daemon (issue 15).

* malformed requests get a 400 and leave one JSON line, not aiohttp's traceback;
* half-sent headers and trickled bodies are cut after ``http_timeout``;
* more half-sent connections than ``http_max_connections`` close the oldest ones,
  so /healthz and a signed webhook still answer during a slowloris attack.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gitserver import RepoBuilder
from test_daemon import SKILLSYNCD, Daemon, _clean_env

from skillsyncd.daemon.webhook import sign

SECRET = "edge-test-secret"


@pytest.fixture
def daemon(repo: RepoBuilder, tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(**env: str) -> Daemon:
        repo.add_skill("alpha", description="first")
        head = repo.commit("v1")
        d = Daemon([SKILLSYNCD, "run", "--repo", str(repo.path), "--state-dir",
                    str(tmp_path / "s"), "--http-bind", "127.0.0.1:0"],
                   _clean_env({"SKILLSYNC_INTERVAL": "600", "GITHUB_WEBHOOK_SECRET": SECRET,
                               **env}))
        started.append(d)
        d.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("commit") == head)
        return d

    yield start
    for d in started:
        d.kill()


def _connect(d: Daemon, timeout: float = 10) -> socket.socket:
    host, port = d.base.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def _exchange(d: Daemon, raw: bytes) -> bytes:
    """Send ``raw``, then read until the server closes (or 10 s pass)."""
    with _connect(d) as s:
        s.sendall(raw)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def _closed_by_server(s: socket.socket) -> bool:
    """True once the peer closed the connection (EOF or reset); blocks up to the socket timeout."""
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _push(d: Daemon, delivery: str) -> int:
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    return d.post("/webhook/github", body, {
        "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(SECRET, body), "Content-Type": "application/json"})[0]


MALFORMED = {
    "length-and-chunked": b"POST /webhook/github HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "100k-header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    "bad-request-line": b"GET /healthz HTTP/1.1 extra words\r\nHost: x\r\n\r\n",
    "bad-chunk-size": b"POST /webhook/github HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"\r\nzz\r\n",
}


def test_malformed_requests_get_400_and_every_log_line_is_json(
    daemon: Callable[..., Daemon],
) -> None:
    d = daemon()
    for name, raw in MALFORMED.items():
        mark = len(d.events)
        answer = _exchange(d, raw)
        assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0], (name, answer[:200])
        d.wait_event(lambda e: e.get("event") == "http_bad_request", start=mark)
    assert d.get("/healthz")[0] == 200
    assert d.stop() == 0
    # stdout and stderr (merged by the Daemon helper): every line one JSON object
    bad = [line for line in d.lines if not _is_json_object(line)]
    assert bad == [], "".join(bad)[:2000]
    warned = [e for e in d.events if e.get("event") == "http_bad_request"]
    assert len(warned) >= len(MALFORMED) and all(e["level"] == "warning" for e in warned)
    assert all("\n" not in json.dumps(e) for e in warned)


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def test_half_sent_headers_and_trickled_bodies_are_cut_after_http_timeout(
    daemon: Callable[..., Daemon],
) -> None:
    d = daemon(SKILLSYNC_HTTP_TIMEOUT="1")
    # Headers never finished: the server closes the connection (it used to wait ~1 hour).
    with _connect(d, timeout=20) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert _closed_by_server(s), "half-sent headers were kept open"
    # A body sent far slower than the timeout allows: 408, then the server closes.
    with _connect(d, timeout=20) as s:
        s.sendall(b"POST /webhook/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"X-GitHub-Event: push\r\nX-GitHub-Delivery: slow\r\n"
                  b"X-Hub-Signature-256: sha256=00\r\nContent-Length: 100\r\n\r\n{")
        answer = s.recv(4096)  # the 408 comes while the client still owes 99 bytes
        assert answer.split(b"\r\n")[0].endswith(b"408 Request Timeout"), answer
        assert _closed_by_server(s)
    code = d.get("/metrics")[1]
    assert 'skillsync_webhooks_total{result="too_slow"} 1.0' in code
    assert d.get("/healthz")[0] == 200


def test_slowloris_over_the_connection_cap_leaves_health_and_webhooks_answering(
    daemon: Callable[..., Daemon], repo: RepoBuilder
) -> None:
    # A long timeout: only the connection cap can free slots here.
    d = daemon(SKILLSYNC_HTTP_TIMEOUT="60", SKILLSYNC_HTTP_MAX_CONNECTIONS="16")
    slow: list[socket.socket] = []
    try:
        for i in range(48):  # three times the cap, each one a request that never ends
            s = _connect(d, timeout=20)
            s.sendall(b"POST /webhook/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Delivery: slow-%d\r\n"
                      b"Content-Length: 100000\r\n\r\n{\"ref\"" % i if i % 2 else
                      b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(s)
        mark = len(d.events)
        assert d.get("/healthz")[0] == 200
        repo.add_skill("alpha", description="pushed during the attack")
        head = repo.commit("v2")
        assert _push(d, "real-one") == 202
        d.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("commit") == head,
                     start=mark, timeout=20)
        # the oldest slow connections were closed to make room
        assert _closed_by_server(slow[0]) and _closed_by_server(slow[1])
        d.wait_event(lambda e: e.get("event") == "http_connections_dropped")
    finally:
        for s in slow:
            s.close()
    assert d.proc.poll() is None
    assert d.stop() == 0
