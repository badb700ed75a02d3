"""Structured JSON logging with secret redaction.

One JSON object per line on stdout. Every line of one sync carries its
``sync_id`` (bound with structlog's contextvars). A redaction processor runs
last before rendering, so no code path can print a secret by accident: keys
that name secrets are masked, registered secret values are masked wherever they
appear, and credentials inside URLs are stripped.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"(token|password|passwd|secret|authorization|api_?key)", re.I)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s:]+(:[^/@\s]*)?@", re.I)
_known_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret value so it is masked in any later log line."""
    if value and len(value) >= 4:
        with _lock:
            _known_secrets.add(value)


def redact_text(text: str) -> str:
    text = _URL_CREDENTIALS.sub(lambda m: m.group("scheme") + "***@", text)
    with _lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret_key(k) else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def _is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEY.search(key)) and not key.endswith("_set")


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if _is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(event_dict[key])
    return event_dict


class _CurrentStdout:
    """Writes to whatever sys.stdout (or sys.stderr) is now: tests and embedders swap them."""

    def __init__(self, name: str = "stdout") -> None:
        self.name = name

    def write(self, text: str) -> int:
        stream: TextIO = getattr(sys, self.name)
        return stream.write(text)

    def flush(self) -> None:
        stream: TextIO = getattr(sys, self.name)
        stream.flush()


def configure(level: str = "info", stream: TextIO | None = None, stderr: bool = False) -> None:
    """Set up structlog for JSON lines; safe to call more than once.

    Lines go to ``stream`` if given, else to the current stdout (stderr with ``stderr``).
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    processors: Iterable[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_processor,
        structlog.processors.JSONRenderer(sort_keys=False, default=str),
    ]
    structlog.configure(
        processors=list(processors),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # WriteLogger writes each line and its newline in one call: with an unbuffered
        # stdout shared with supervisord, print()'s two writes could be split apart.
        logger_factory=structlog.WriteLoggerFactory(
            file=stream or _CurrentStdout("stderr" if stderr else "stdout")),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
