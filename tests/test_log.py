"""Redaction happens in the logging pipeline itself, so no caller can leak a secret."""

import io
import json

import structlog

from skillsyncd.log import configure, redact_text, register_secret


def _capture() -> io.StringIO:
    buf = io.StringIO()
    configure("debug", stream=buf)
    return buf


def test_json_lines_with_required_keys() -> None:
    buf = _capture()
    structlog.get_logger("t").info("fetched", commit="abc")
    line = json.loads(buf.getvalue().strip())
    assert line["event"] == "fetched" and line["level"] == "info" and "timestamp" in line
    assert line["commit"] == "abc"


def test_secret_keys_values_and_url_credentials_redacted() -> None:
    buf = _capture()
    register_secret("ghp_registeredsecretvalue123")
    structlog.get_logger("t").error(
        "fetch_failed",
        token="abc123",
        password="pw",
        error="auth failed for ghp_registeredsecretvalue123 at https://x:tok@host/repo",
        nested={"webhook_secret": "s", "ok": "fine"},
    )
    raw = buf.getvalue()
    assert "abc123" not in raw and "\"pw\"" not in raw
    assert "ghp_registeredsecretvalue123" not in raw
    assert "x:tok@" not in raw and "https://***@host/repo" in raw
    line = json.loads(raw)
    assert line["nested"]["ok"] == "fine" and line["nested"]["webhook_secret"] == "[redacted]"


def test_sync_id_bound_via_contextvars() -> None:
    buf = _capture()
    structlog.contextvars.bind_contextvars(sync_id="s1")
    try:
        structlog.get_logger("t").info("a")
    finally:
        structlog.contextvars.unbind_contextvars("sync_id")
    assert json.loads(buf.getvalue())["sync_id"] == "s1"


def test_redact_text_leaves_plain_text() -> None:
    assert redact_text("nothing to hide here") == "nothing to hide here"


def test_stdlib_records_and_their_tracebacks_become_one_json_line() -> None:
    import logging

    buf = _capture()
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "127.0.0.1")
    logging.getLogger("asyncio").warning("slow callback")
    logging.getLogger("urllib3").info("noise below warning is dropped")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2, lines
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "Error handling request from 127.0.0.1"
    assert first["level"] == "error" and first["logger"] == "aiohttp.server"
    assert "ValueError: boom" in first["exception"] and "timestamp" in first
    assert second["event"] == "slow callback" and second["logger"] == "asyncio"
