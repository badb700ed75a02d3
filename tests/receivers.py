"""Real receivers on 127.0.0.1 for what skillsyncd tells people.

- :class:`JsonReceiver`: an HTTP server taking Apprise's ``json://`` posts
  (answers with a status the test sets, to play a failing notifier);
- :class:`SmtpReceiver`: a real SMTP server (aiosmtpd) taking ``mailto://``;
- :class:`FakeGitHub`: ``POST /repos/{owner}/{repo}/statuses/{sha}`` checked against
  GitHub's documented REST shape, answering with what the test queues.
"""

from __future__ import annotations

import email
import email.policy
import http.server
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def wait_for(pred: Callable[[], Any], timeout: float = 15, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class _Server:
    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class JsonReceiver(_Server):
    """Apprise's json:// target: collects (headers, parsed body) per POST."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.code = 200
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if outer.code < 300:
                    outer.posts.append((dict(self.headers), json.loads(body)))
                else:
                    outer.refused += 1
                self.send_response(outer.code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.refused = 0
        super().__init__(Handler)
        self.url = f"json://127.0.0.1:{self.port}/alerts"

    def messages(self) -> list[dict[str, Any]]:
        return [body for _h, body in self.posts]


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1: every accepted message, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
                outer.messages.append(msg)  # type: ignore[arg-type]
                return "250 OK"

        with socket.socket() as probe:  # aiosmtpd's start-up check cannot use port 0
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        self.url = f"mailto://127.0.0.1:{self.port}?from=skillsyncd@example.com&to=ops@example.com"

    def bodies(self) -> list[str]:
        out = []
        for m in self.messages:
            part = m.get_body(("plain", "html"))
            out.append(f"{m['Subject']}\n{part.get_content() if part else ''}")
        return out

    def close(self) -> None:
        self.controller.stop()


_STATUS_PATH = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/statuses/(?P<sha>[0-9a-f]{40})$")
STATES = {"error", "failure", "pending", "success"}


class FakeGitHub(_Server):
    """Checks each request like GitHub's REST API would, then answers from a queue (default 201)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.accepted: list[dict[str, Any]] = []
        self.requests = 0
        self.problems: list[str] = []
        self.answers: list[tuple[int, dict[str, str], dict[str, Any]]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.requests += 1
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                m = _STATUS_PATH.match(self.path)
                problems = []
                if not m:
                    problems.append(f"path {self.path}")
                if self.headers.get("Authorization") != f"Bearer {outer.token}":
                    problems.append("authorization")
                if self.headers.get("Accept") != "application/vnd.github+json":
                    problems.append("accept")
                try:
                    data = json.loads(body)
                except ValueError:
                    data = {}
                    problems.append("body is not JSON")
                if data.get("state") not in STATES or not isinstance(data.get("context"), str):
                    problems.append(f"body {data}")
                if len(str(data.get("description", ""))) > 140:
                    problems.append("description over 140 characters")
                if outer.answers:
                    code, headers, answer = outer.answers.pop(0)
                elif problems:
                    outer.problems.extend(problems)
                    code, headers, answer = 422, {}, {"message": "Validation Failed"}
                else:
                    code, headers, answer = 201, {}, {"id": len(outer.accepted) + 1}
                if 200 <= code < 300 and m:
                    outer.accepted.append({**data, **m.groupdict()})
                raw = json.dumps(answer).encode()
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                return None

        super().__init__(Handler)
        self.url = f"http://127.0.0.1:{self.port}"
