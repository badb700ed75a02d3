"""How the remote is reached: its URL's kind, the dulwich client with its credentials and
bounds, and every transport failure raised as one actionable error (see
:mod:`~skillsyncd.source.failures`).

Credentials never leave this module in clear: the token and any URL password are
registered as secrets (masked in every log line) before a client exists, and every
message names the remote by :func:`redact_url`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import urllib3
from dulwich.client import (
    GitClient,
    HTTPProxyUnauthorized,
    HTTPUnauthorized,
    default_urllib3_manager,
    get_transport_and_path,
)
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository

from skillsyncd.config import Config
from skillsyncd.errors import SourceError
from skillsyncd.log import register_secret
from skillsyncd.source.channels import TAGS_PREFIX, is_channel
from skillsyncd.source.deadline import Deadline
from skillsyncd.source.failures import Remote, RemoteFailed, classify
from skillsyncd.source.github_app import http_credentials


def redact_url(url: str) -> str:
    """The URL without any user:password part (safe to log and to record)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def is_ssh(url: str) -> bool:
    scheme = urlsplit(url).scheme
    if scheme in {"ssh", "git+ssh", "ssh+git"}:
        return True
    # scp-like syntax: user@host:path (but not a local path or a Windows drive)
    return not scheme and ":" in url and not url.startswith(("/", ".")) and "@" in url.split(":")[0]


def local_path(url: str) -> str | None:
    """The filesystem path of a local source (a path or ``file://`` URL), else None."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return unquote(parts.path)
    if parts.scheme or is_ssh(url):
        return None
    return url


def candidate_refs(ref: str) -> list[bytes]:
    """The full ref names a configured ref may mean: a branch first, then a tag; every tag
    for a channel (:mod:`~skillsyncd.source.channels`), whose pick is made from them."""
    if is_channel(ref):
        return [TAGS_PREFIX]
    if ref.startswith("refs/"):
        return [ref.encode()]
    return [f"refs/heads/{ref}".encode(), f"refs/tags/{ref}".encode()]


def open_client(cfg: Config, url: str, deadline: Deadline,
                thin_packs: bool = True) -> tuple[GitClient, str]:
    """A dulwich client for ``url`` bounded by ``deadline``, and the path to ask it for."""
    parts = urlsplit(url)
    if parts.password:
        register_secret(parts.password)
    kwargs: dict[str, Any] = {"report_activity": deadline, "thin_packs": thin_packs}
    if parts.scheme in {"http", "https"}:
        timeout = urllib3.Timeout(connect=cfg.network_timeout, read=cfg.network_timeout)
        # No connect retry: a refused or unresolvable host fails the same way at once, and
        # urllib3 would log the library's raw text as a warning before the one-line error.
        retries = urllib3.Retry(total=1, connect=0, read=0, redirect=3, status=0)
        kwargs["pool_manager"] = default_urllib3_manager(
            None,
            base_url=url,
            timeout=timeout,  # type: ignore[arg-type]
            pool_manager_cls=functools.partial(urllib3.PoolManager, retries=retries),  # type: ignore[arg-type]
            proxy_manager_cls=functools.partial(urllib3.ProxyManager, retries=retries),  # type: ignore[arg-type]
        )
        credentials = http_credentials(cfg)  # the token, or a GitHub App's installation token
        if credentials is not None:
            kwargs["username"], kwargs["password"] = credentials
    elif is_ssh(url):
        # System ssh, never prompting, with its own connect and keep-alive bounds.
        t = max(1, int(cfg.network_timeout))
        kwargs["ssh_command"] = cfg.ssh_command or (
            f"ssh -o BatchMode=yes -o ConnectTimeout={t} "
            f"-o ServerAliveInterval={max(1, t // 3)} -o ServerAliveCountMax=3"
        )
    try:
        return get_transport_and_path(url, **kwargs)
    except ValueError as exc:
        raise SourceError(f"unsupported repository URL {redact_url(url)}: {exc}") from exc


@contextlib.contextmanager
def network(what: str, remote: Remote) -> Iterator[Deadline]:
    """One network operation under its deadline (4x the network timeout overall); every
    transport failure leaves as a :class:`RemoteFailed` naming the remote and the cause."""
    timeout = remote.network_timeout
    try:
        with Deadline(timeout * 4, timeout) as deadline:
            try:
                yield deadline
            except Exception:
                if deadline.expired:  # the watchdog cut the connection
                    raise TimeoutError(
                        f"network operation exceeded {deadline.seconds:g}s overall"
                    ) from None
                raise
    except (HTTPUnauthorized, HTTPProxyUnauthorized, TimeoutError, NotGitRepository,
            GitProtocolError, HangupException, OSError, urllib3.exceptions.HTTPError) as exc:
        raise RemoteFailed(what, remote, classify(exc, remote)) from exc
