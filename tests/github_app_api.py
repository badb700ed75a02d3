"""A GitHub REST API for GitHub App tests, on 127.0.0.1, that checks each request as GitHub would.

``POST /app/installations/{id}/access_tokens`` must carry ``Accept:
application/vnd.github+json`` and ``Authorization: Bearer <JWT>``, the JWT signed RS256
by the test's key with ``iss`` the app id, ``iat`` in the past and ``exp`` at most 10
minutes after it and in the future (GitHub's documented rules). It answers 201 with a
fresh ``token`` and ``expires_at`` (``expires_in`` seconds ahead), or the status queued
in ``answers``. ``POST /repos/{owner}/{repo}/statuses/{sha}`` must carry the newest
token minted. Every departure from the shape is kept in ``problems``.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

_TOKEN_PATH = re.compile(r"^/app/installations/(?P<installation>[0-9]+)/access_tokens$")
_STATUS_PATH = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/statuses/(?P<sha>[0-9a-f]{40})$")


class FakeGitHubApp:
    """The app's installation-token endpoint and the commit-status endpoint."""

    def __init__(self, app_id: str, installation_id: str, public_key: RSAPublicKey,
                 clock: Callable[[], float] = time.time) -> None:
        self.app_id, self.installation_id, self.public_key = app_id, installation_id, public_key
        self.clock = clock  # GitHub's clock: the JWT's times and expires_at are judged by it
        self.expires_in = 3600.0
        self.answers: list[int] = []  # statuses to answer the next token requests with
        self.problems: list[str] = []
        self.minted: list[str] = []
        self.claims: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer._lock:
                    code, answer = outer._answer(self.path, self.headers, body)
                raw = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        if headers.get("Accept") != "application/vnd.github+json":
            self.problems.append(f"accept {headers.get('Accept')!r} on {path}")
        auth = str(headers.get("Authorization") or "")
        if _TOKEN_PATH.match(path):
            return self._token(path, auth)
        m = _STATUS_PATH.match(path)
        if m:
            if not self.minted or auth != f"Bearer {self.minted[-1]}":
                self.problems.append("status posted without the newest installation token")
                return 401, {"message": "Bad credentials"}
            self.statuses.append({**json.loads(body), **m.groupdict()})
            return 201, {"id": len(self.statuses)}
        self.problems.append(f"path {path}")
        return 404, {"message": "Not Found"}

    def _token(self, path: str, auth: str) -> tuple[int, dict[str, Any]]:
        m = _TOKEN_PATH.match(path)
        if m is None or m["installation"] != self.installation_id:
            self.problems.append(f"installation in {path}")
        if not auth.startswith("Bearer "):
            self.problems.append("no Bearer JWT")
            return 401, {"message": "A JSON web token could not be decoded"}
        claims = self._check_jwt(auth[len("Bearer "):])
        if claims is None:
            return 401, {"message": "A JSON web token could not be decoded"}
        self.claims.append(claims)
        if self.answers:
            code = self.answers.pop(0)
            return code, {"message": {401: "Bad credentials", 403: "Forbidden"}.get(code, "error")}
        token = f"ghs_InstallationToken{len(self.minted) + 1:04d}abcdef0123456789"
        self.minted.append(token)
        expires = datetime.fromtimestamp(self.clock() + self.expires_in, UTC)
        return 201, {"token": token, "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "permissions": {"contents": "read", "statuses": "write"}}

    def _check_jwt(self, token: str) -> dict[str, Any] | None:
        """The JWT's claims when its signature and times are as GitHub requires, else None."""
        try:
            if jwt.get_unverified_header(token).get("alg") != "RS256":
                self.problems.append("alg is not RS256")
            claims: dict[str, Any] = jwt.decode(
                token, self.public_key, algorithms=["RS256"], issuer=self.app_id,
                options={"require": ["iat", "exp", "iss"], "verify_exp": False,
                         "verify_iat": False})  # judged below by this server's clock
        except jwt.exceptions.PyJWTError as exc:
            self.problems.append(f"JWT refused: {type(exc).__name__}: {exc}")
            return None
        now = self.clock()
        if not claims["exp"] > now:
            self.problems.append("exp is in the past")
        if not claims["iat"] <= now:
            self.problems.append("iat is in the future")
        if claims["exp"] - claims["iat"] > 600 or claims["exp"] > now + 600:
            self.problems.append("exp is more than 10 minutes out")
        return claims
