"""Structured JSON logging with secret redaction.

One JSON object per line on stdout, also for other libraries' log records:
aiohttp, asyncio and anything else using the standard ``logging`` module go
through the same processors (a traceback becomes one escaped ``exception``
field, never extra lines), so a log collector can parse every line. Every line of one sync carries its
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
_stdlib_handler: logging.Handler | None = None
# Other libraries' info and debug lines (urllib3's every connection, ...) are noise here.
FOREIGN_MIN_LEVEL = logging.WARNING


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


def client_errors(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """aiohttp's "Error handling request" for a malformed request: one warning, no traceback.

    A client that sends a bad request (Content-Length with chunked encoding, a 100 KB
    header) has already been answered 400; its parser error is not a bug of ours.
    """
    exc_info = event_dict.get("exc_info")
    exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
    if (isinstance(exc, BaseException)
            and type(exc).__module__.startswith("aiohttp.http_exceptions")):
        message = str(getattr(exc, "message", "") or exc).strip().splitlines()
        event_dict.pop("exc_info", None)
        event_dict["level"] = "warning"
        event_dict["http_error"] = event_dict.get("event")
        event_dict["event"] = "http_bad_request"
        event_dict["status"] = getattr(exc, "code", 400)
        event_dict["reason"] = message[0][:200] if message else type(exc).__name__
    return event_dict


def _route_stdlib_logging(level: int, target: Any) -> None:
    """Send every ``logging`` record through the same JSON pipeline, one line each."""
    global _stdlib_handler
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_logger_name,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            client_errors,
            structlog.processors.format_exc_info,
            redact_processor,
            structlog.processors.JSONRenderer(sort_keys=False, default=str),
        ],
    )
    # StreamHandler writes the line and its terminator in one write() call.
    handler = logging.StreamHandler(target)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if _stdlib_handler is not None:
        root.removeHandler(_stdlib_handler)
    root.addHandler(handler)
    root.setLevel(max(level, FOREIGN_MIN_LEVEL))
    _stdlib_handler = handler
    logging.captureWarnings(True)  # warnings.warn() output becomes a JSON line too


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
    target = stream or _CurrentStdout("stderr" if stderr else "stdout")
    structlog.configure(
        processors=list(processors),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # WriteLogger writes each line and its newline in one call: with an unbuffered
        # stdout shared with supervisord, print()'s two writes could be split apart.
        logger_factory=structlog.WriteLoggerFactory(file=target),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(numeric, target)
