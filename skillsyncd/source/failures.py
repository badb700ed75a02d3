"""What went wrong reaching the remote, told in one line an operator can act on.

dulwich and urllib3 report a failed connection as a chain of library exceptions
(``GitProtocolError`` wrapping ``MaxRetryError`` wrapping ``NewConnectionError``
wrapping ``ConnectionRefusedError``). :func:`classify` walks that chain once and
names the cause as a :class:`Failure`; :class:`RemoteFailed` carries it with the
remote (redacted), what failed and what to do. Pure: nothing here does I/O.
"""

from __future__ import annotations

import enum
import errno
import http.client
import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from dulwich.client import HTTPProxyUnauthorized, HTTPUnauthorized
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository

from skillsyncd.errors import SourceError
from skillsyncd.log import redact_text

_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
_HTTP_STATUS = re.compile(r"unexpected http resp (\d{3})")
# What git daemon (and GitHub over git://) answers for a path it does not serve.
_NO_SUCH_REPO = re.compile(r"no such repository|not exported|repository not found|access denied",
                           re.I)


class Failure(enum.Enum):
    """Why the remote could not be used, one value per thing an operator checks."""

    DNS = "dns"
    REFUSED = "connection refused"
    UNREACHABLE = "unreachable"
    TLS = "tls"
    HOST_KEY = "ssh host key"
    UNAUTHORIZED = "401"
    FORBIDDEN = "403"
    NOT_FOUND = "404"
    TIMEOUT = "timeout"
    HTTP_STATUS = "http status"
    CONNECTION_LOST = "connection lost"
    PROTOCOL = "protocol"
    LOCAL_DISK = "local disk"  # not the remote's fault: the mirror could not be written


@dataclass(frozen=True)
class Remote:
    """What a message may say about the remote: its redacted URL and how it is reached."""

    safe_url: str
    token_set: bool
    network_timeout: float
    github_app: bool = False  # the token is a GitHub App's installation token

    @property
    def kind(self) -> str:
        scheme = urlsplit(self.safe_url).scheme
        return scheme if scheme in ("http", "https", "git") else "other"

    @property
    def host(self) -> str:
        parts = urlsplit(self.safe_url)
        return parts.hostname or self.safe_url

    @property
    def address(self) -> str:
        parts = urlsplit(self.safe_url)
        default = {"http": 80, "https": 443, "git": 9418}.get(parts.scheme)
        port = parts.port or default
        return f"{self.host}:{port}" if port else self.host


@dataclass(frozen=True)
class Diagnosis:
    failure: Failure
    what: str  # what failed, in words
    todo: str  # what to do about it


class RemoteFailed(SourceError):
    """The remote could not be reached or refused us; ``failure`` says why."""

    def __init__(self, operation: str, remote: Remote, diagnosis: Diagnosis) -> None:
        super().__init__(f"{operation} {remote.safe_url}: {diagnosis.what}; {diagnosis.todo}")
        self.operation = operation
        self.remote = remote
        self.failure = diagnosis.failure


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it was raised from or during, outermost first."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def one_line(exc: BaseException) -> str:
    """The exception's first line, prefixed by its type, with any credential masked."""
    text = str(exc).strip().splitlines()
    return redact_text(f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": "))


def classify(exc: BaseException, remote: Remote) -> Diagnosis:
    """The cause of a transport failure, found anywhere in its exception chain."""
    chain = _chain(exc)
    for found in chain:
        diagnosis = _diagnose(found, remote)
        if diagnosis is not None:
            return diagnosis
    return Diagnosis(Failure.PROTOCOL, one_line(exc),
                     "a later sync tries again; if it keeps failing, check that SKILLSYNC_REPO "
                     "is a git repository URL")


def _diagnose(exc: BaseException, remote: Remote) -> Diagnosis | None:
    """The diagnosis one link of the chain gives; None when it says nothing specific."""
    if isinstance(exc, HTTPUnauthorized):
        return _unauthorized(remote)
    if isinstance(exc, HTTPProxyUnauthorized):
        return Diagnosis(Failure.UNAUTHORIZED, "the HTTP proxy refused us (407)",
                         "check the credentials in HTTPS_PROXY/HTTP_PROXY")
    if isinstance(exc, socket.gaierror):
        return Diagnosis(Failure.DNS, f"the host name {remote.host} does not resolve (DNS: "
                         f"{exc.strerror or exc})",
                         "check the host in SKILLSYNC_REPO and this machine's DNS settings")
    if isinstance(exc, ConnectionRefusedError):
        return Diagnosis(Failure.REFUSED, f"connection refused by {remote.address}",
                         "nothing listens there: check the host and port in SKILLSYNC_REPO "
                         "and that the git server is running")
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        where = f" writing {exc.filename}" if exc.filename else ""
        return Diagnosis(Failure.LOCAL_DISK, f"this machine's disk failed{where} "
                         f"({exc.strerror or exc})",
                         "free space on (or remount read-write) the state dir's filesystem; the "
                         "remote is not at fault")
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return Diagnosis(Failure.UNREACHABLE, f"no route to {remote.address} ({exc.strerror})",
                         "check this machine's network and any firewall towards the server")
    if isinstance(exc, ssl.SSLError):
        return _tls(exc)
    if _is_timeout(exc):
        return Diagnosis(Failure.TIMEOUT, f"timed out ({_timeout_text(exc, remote)})",
                         f"check the network path to {remote.host} (firewall, proxy) or raise "
                         "SKILLSYNC_NETWORK_TIMEOUT")
    if isinstance(exc, NotGitRepository):
        return _not_found(remote)
    if isinstance(exc, GitProtocolError | HangupException):
        return _protocol(exc, remote)
    if isinstance(exc, ConnectionResetError | BrokenPipeError | http.client.IncompleteRead
                  | urllib3.exceptions.ProtocolError):
        return Diagnosis(Failure.CONNECTION_LOST,
                         f"the connection was closed mid-transfer ({one_line(exc)})",
                         "a later sync tries again; if it keeps happening, check proxies and "
                         "load balancers between here and the server")
    return None


def _unauthorized(remote: Remote) -> Diagnosis:
    if remote.github_app:
        todo = "check that the GitHub App is installed on the repository with Contents: Read"
    elif remote.token_set:
        todo = "check GITHUB_TOKEN/SKILLSYNC_TOKEN and that it can read the repository"
    else:
        todo = ("no token is set: set SKILLSYNC_TOKEN (or GITHUB_TOKEN) to one that can read "
                "the repository")
    return Diagnosis(Failure.UNAUTHORIZED, "authentication refused (401)", todo)


def _not_found(remote: Remote, said: str = "") -> Diagnosis:
    if said:  # the server's own words (git daemon, or GitHub through ssh)
        todo = ("check the path in SKILLSYNC_REPO and that the server exports it"
                if remote.kind == "git" else
                "check SKILLSYNC_REPO, and that the key or token may read the repository")
        return Diagnosis(Failure.NOT_FOUND, f"no repository there ({said})", todo)
    if remote.kind in ("http", "https"):
        return Diagnosis(Failure.NOT_FOUND, "no repository there (404)",
                         "check SKILLSYNC_REPO, and for a private repository that the token "
                         "can read it (GitHub answers 404 to a token without access)")
    if remote.kind == "git":
        return Diagnosis(Failure.NOT_FOUND, "no repository there",
                         "check the path in SKILLSYNC_REPO and that the server exports it")
    return Diagnosis(Failure.NOT_FOUND, "no repository there",
                     "check SKILLSYNC_REPO: it must name a git repository")


def _protocol(exc: BaseException, remote: Remote) -> Diagnosis | None:
    text = str(exc)
    status = _HTTP_STATUS.search(text)
    if status is not None:
        code = int(status.group(1))
        if code == 403:
            return Diagnosis(Failure.FORBIDDEN, "access denied (403)",
                             "check that the token (GITHUB_TOKEN/SKILLSYNC_TOKEN) may read the "
                             "repository; GitHub also answers 403 when it rate-limits")
        if code == 404:
            return _not_found(remote)
        return Diagnosis(Failure.HTTP_STATUS, f"the server answered HTTP {code}",
                         "a later sync tries again; if it keeps failing, check the server")
    if _NO_SUCH_REPO.search(text):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return _not_found(remote, redact_text(lines[0]))
    if isinstance(exc, HangupException):
        return _hung_up(exc)
    return None  # a wrapper: the chain below it may say more


# What system ssh prints before it exits (dulwich hands on its stderr as the hang-up text).
_SSH_SAYS = (
    (re.compile(r"Permission denied|publickey", re.I), Failure.UNAUTHORIZED,
     "check the SSH key (SKILLSYNC_SSH_COMMAND) and that it may read the repository"),
    (re.compile(r"Could not resolve hostname", re.I), Failure.DNS,
     "check the host in SKILLSYNC_REPO and this machine's DNS settings"),
    (re.compile(r"Connection refused", re.I), Failure.REFUSED,
     "check the host and port in SKILLSYNC_REPO and that the SSH server is running"),
    (re.compile(r"timed out", re.I), Failure.TIMEOUT,
     "check the network path to the server (firewall, proxy)"),
    (re.compile(r"Host key verification failed|REMOTE HOST IDENTIFICATION", re.I),
     Failure.HOST_KEY, "add the server's host key to known_hosts (or check that it is the "
     "right server)"),
)


def _hung_up(exc: HangupException) -> Diagnosis:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    said = redact_text(lines[0] if lines else "")
    for pattern, failure, todo in _SSH_SAYS:
        if pattern.search(said):
            return Diagnosis(failure, f"the connection failed ({said})", todo)
    return Diagnosis(Failure.CONNECTION_LOST, f"the server hung up ({said})",
                     "a later sync tries again; if it keeps happening, check the server's "
                     "logs and that SKILLSYNC_REPO names a repository it serves")


def _tls(exc: ssl.SSLError) -> Diagnosis:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Diagnosis(Failure.TLS, f"TLS certificate not trusted ({exc.verify_message})",
                         "check that SKILLSYNC_REPO names the right host; a server with a private "
                         "CA needs that CA trusted here (SSL_CERT_FILE)")
    reason = exc.reason or one_line(exc)
    return Diagnosis(Failure.TLS, f"TLS handshake failed ({reason})",
                     "check the scheme and port in SKILLSYNC_REPO (does that port speak "
                     "https?) and any proxy in between")


def _is_timeout(exc: BaseException) -> bool:
    # urllib3 2 makes NewConnectionError (refused, DNS) a ConnectTimeoutError for
    # compatibility: its cause, further down the chain, says what really happened.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return False
    return isinstance(exc, TimeoutError | urllib3.exceptions.TimeoutError)


def _timeout_text(exc: BaseException, remote: Remote) -> str:
    text = str(exc)
    if "overall" in text:
        return text
    return f"no answer within {remote.network_timeout:g}s"
