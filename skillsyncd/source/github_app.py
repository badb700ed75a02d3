"""GitHub App credentials: an installation token minted from the app's private key.

A personal token expires and belongs to a person; an app's installation token is
minted on demand (GitHub's documented flow): sign a JWT with the app's private key
(RS256, ``iat`` 60 s in the past for clock drift, ``exp`` 9 minutes ahead, ``iss`` the
app id), ``POST {github_api_url}/app/installations/{id}/access_tokens`` with it, and
use the token GitHub answers (valid one hour) as the HTTPS password of user
``x-access-token`` and as the bearer of commit statuses. The token is cached and
minted again once less than :data:`REFRESH_MARGIN` of it is left. The key, the JWT
and the token are registered as secrets before any use, so no log line shows them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import jwt
import structlog
import urllib3

from skillsyncd.config import Config, Secret
from skillsyncd.errors import ConfigError, SourceError
from skillsyncd.log import register_secret

log = structlog.get_logger(__name__)

API_VERSION = "2022-11-28"
JWT_BACKDATE = 60  # seconds: GitHub's advice against clock drift
JWT_LIFETIME = 540  # seconds after now; with the backdate the JWT lives 10 min, GitHub's most
REFRESH_MARGIN = 300.0  # mint anew when less is left: a fetch may take 4x network_timeout
USERNAME = "x-access-token"


class GitHubAppError(SourceError):
    """GitHub would not mint an installation token; the message says what to fix."""


@dataclass(frozen=True)
class InstallationToken:
    """One minted token and when GitHub says it expires (seconds since the epoch)."""

    token: str
    expires_at: float


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


Post = Callable[[str, dict[str, str]], Answer]  # (url, headers) -> answer


def app_jwt(app_id: str, private_key: str, now: float) -> str:
    """The app's JWT as GitHub documents it (pure)."""
    claims = {"iat": int(now) - JWT_BACKDATE, "exp": int(now) + JWT_LIFETIME, "iss": app_id}
    try:
        return jwt.encode(claims, private_key, algorithm="RS256")
    except (ValueError, TypeError, jwt.exceptions.PyJWTError) as exc:
        raise ConfigError(
            f"SKILLSYNC_GITHUB_APP_PRIVATE_KEY is not a usable RSA private key "
            f"({type(exc).__name__}); give the app's .pem file as SKILLSYNC_GITHUB_APP_PRIVATE_KEY_FILE"
        ) from None


def parse_answer(answer: Answer, installation_id: str) -> InstallationToken:
    """The token of a 201 answer, or one GitHubAppError line naming the fix (pure)."""
    if answer.status == 201:
        try:
            data = json.loads(answer.body)
            expires = datetime.fromisoformat(str(data["expires_at"]).replace("Z", "+00:00"))
            return InstallationToken(str(data["token"]), expires.timestamp())
        except (ValueError, KeyError, TypeError):
            raise GitHubAppError("GitHub's answer to the installation token request has no "
                                 "token and expires_at; check SKILLSYNC_GITHUB_API_URL") from None
    why = {
        401: "GitHub refused the app's JWT (401): check SKILLSYNC_GITHUB_APP_ID, that the private "
             "key is that app's, and this machine's clock",
        403: f"GitHub refused a token for installation {installation_id} (403): the installation "
             "is suspended or the app lacks the permission; check the app's installation settings",
        404: f"GitHub has no installation {installation_id} of this app (404): check "
             "SKILLSYNC_GITHUB_APP_INSTALLATION_ID",
    }.get(answer.status, f"GitHub answered {answer.status} to the installation token request")
    raise GitHubAppError(why)


def _urllib3_post(timeout: float) -> Post:
    pool = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout), retries=False)

    def post(url: str, headers: dict[str, str]) -> Answer:
        resp = pool.request("POST", url, headers=headers, preload_content=True)
        return Answer(resp.status, resp.data or b"")

    return post


class InstallationTokens:
    """The cached installation token of one app installation; safe across threads."""

    def __init__(self, cfg: Config, post: Post | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.app_id = str(cfg.github_app_id)
        self.installation_id = str(cfg.github_app_installation_id)
        self.key = cfg.github_app_private_key
        self.url = (f"{cfg.github_api_url.rstrip('/')}/app/installations/"
                    f"{self.installation_id}/access_tokens")
        self.post = post or _urllib3_post(min(cfg.network_timeout, 30.0))
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: InstallationToken | None = None

    def get(self) -> str:
        """A token with at least REFRESH_MARGIN left, minted when the cached one is not."""
        with self._lock:
            cached = self._cached
            if cached is None or cached.expires_at - self.clock() < REFRESH_MARGIN:
                cached = self._cached = self._mint()
            return cached.token

    def _mint(self) -> InstallationToken:
        key = (self.key.get() or "").replace("\\n", "\n")  # a PEM pasted into one env line
        register_secret(key)
        token = app_jwt(self.app_id, key, self.clock())
        register_secret(token)
        headers = {"Accept": "application/vnd.github+json", "Authorization": f"Bearer {token}",
                   "X-GitHub-Api-Version": API_VERSION, "User-Agent": "skillsyncd"}
        try:
            answer = self.post(self.url, headers)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise GitHubAppError(f"cannot reach {self.url} for an installation token "
                                 f"({type(exc).__name__}); a later sync tries again") from None
        minted = parse_answer(answer, self.installation_id)
        register_secret(minted.token)
        log.info("github_app_token_minted", installation=self.installation_id,
                 expires_in=round(minted.expires_at - self.clock()))
        return minted


_tokens: dict[tuple[str, str, str, Secret], InstallationTokens] = {}
_tokens_lock = threading.Lock()


def installation_tokens(cfg: Config) -> InstallationTokens | None:
    """The one token cache of the configured app installation (shared by fetches and
    commit statuses), or None when no app is configured; half an app is a ConfigError."""
    parts = (cfg.github_app_id, cfg.github_app_installation_id, cfg.github_app_private_key)
    if not any(parts):
        return None
    if not all(parts):
        raise ConfigError(
            "a GitHub App needs all of SKILLSYNC_GITHUB_APP_ID, SKILLSYNC_GITHUB_APP_INSTALLATION_ID "
            "and SKILLSYNC_GITHUB_APP_PRIVATE_KEY (or _FILE); set the missing ones or unset them all")
    key = (cfg.github_api_url, str(cfg.github_app_id), str(cfg.github_app_installation_id),
           cfg.github_app_private_key)  # another key, or key file, is another cache
    with _tokens_lock:
        if key not in _tokens:
            _tokens[key] = InstallationTokens(cfg)
        return _tokens[key]


def http_credentials(cfg: Config) -> tuple[str, str] | None:
    """(user, password) for an HTTPS remote: the app's installation token when an app is
    configured, else the token setting, else None."""
    app = installation_tokens(cfg)
    if app is not None:
        return USERNAME, app.get()
    token = cfg.token.get() if cfg.token else None
    register_secret(token)
    return (cfg.username, token) if token else None
