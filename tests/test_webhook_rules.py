"""Webhook rules without a server: signature, replay, events, refs."""

from __future__ import annotations

import json

import pytest

from skillsyncd.daemon.webhook import DeliveryLog, judge, ref_matches, sign, signature_valid

SECRET = "s3cret-for-tests"
PUSH = json.dumps({"ref": "refs/heads/main", "after": "f" * 40}).encode()


def _headers(body: bytes = PUSH, event: str = "push", delivery: str = "d-1",
             secret: str = SECRET) -> dict[str, str]:
    return {"X-Hub-Signature-256": sign(secret, body), "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery}


def test_signature() -> None:
    good = sign(SECRET, b"body")
    assert signature_valid(SECRET, b"body", good)
    assert not signature_valid(SECRET, b"body!", good)
    assert not signature_valid("other", b"body", good)
    assert not signature_valid(SECRET, b"body", None)
    assert not signature_valid(SECRET, b"body", good.replace("sha256=", "sha1="))
    assert not signature_valid(SECRET, b"body", "sha256=" + "0" * 64)
    assert not signature_valid(SECRET, b"body", "sha256=zz\u00e9")  # non-ASCII does not raise


@pytest.mark.parametrize(
    ("configured", "pushed", "expected"),
    [
        ("main", "refs/heads/main", True),
        ("main", "refs/heads/main2", False),
        ("main", "refs/tags/main", True),
        ("v1", "refs/tags/v1", True),
        ("refs/heads/dev", "refs/heads/dev", True),
        ("refs/heads/dev", "refs/heads/main", False),
        ("a" * 40, "refs/heads/main", False),
        ("semver:>=1.2.0,<2", "refs/tags/v1.4.0", True),  # a channel: any tag may change the pick
        ("semver:>=1.2.0,<2", "refs/tags/v9", True),
        ("semver:>=1.2.0,<2", "refs/heads/main", False),
    ],
)
def test_ref_matches(configured: str, pushed: str, expected: bool) -> None:
    assert ref_matches(configured, pushed) is expected


def test_valid_push_triggers_once_then_replay_refused() -> None:
    log = DeliveryLog()
    v = judge(SECRET, PUSH, _headers(), "main", log)
    assert (v.status, v.result, v.trigger) == (202, "triggered", True)
    again = judge(SECRET, PUSH, _headers(), "main", log)
    assert (again.status, again.result, again.trigger) == (409, "replayed", False)


def test_unsigned_requests_do_not_fill_the_replay_log() -> None:
    log = DeliveryLog()
    bad = {**_headers(), "X-Hub-Signature-256": "sha256=" + "0" * 64}
    assert judge(SECRET, PUSH, bad, "main", log).status == 401
    missing = {k: v for k, v in _headers().items() if k != "X-Hub-Signature-256"}
    v = judge(SECRET, PUSH, missing, "main", log)
    assert (v.status, v.reason) == (401, "missing signature")
    assert judge(SECRET, PUSH, _headers(), "main", log).trigger  # same delivery id still fresh


def test_ping_other_events_other_refs_and_junk() -> None:
    log = DeliveryLog()
    assert judge(SECRET, b"{}", _headers(b"{}", "ping", "p"), "main", log).status == 200
    issue = judge(SECRET, b"{}", _headers(b"{}", "issues", "i"), "main", log)
    assert (issue.status, issue.result, issue.trigger) == (202, "ignored", False)
    other = json.dumps({"ref": "refs/heads/feature"}).encode()
    v = judge(SECRET, other, _headers(other, delivery="o"), "main", log)
    assert (v.status, v.result, v.trigger) == (202, "ignored", False)
    junk = b"not json"
    assert judge(SECRET, junk, _headers(junk, delivery="j"), "main", log).status == 400
    no_id = {**_headers(), "X-GitHub-Delivery": ""}
    assert judge(SECRET, PUSH, no_id, "main", log).status == 400


def test_delivery_log_is_bounded() -> None:
    log = DeliveryLog(size=3)
    for i in range(5):
        log.add(str(i))
    assert not log.seen("0") and not log.seen("1")
    assert all(log.seen(str(i)) for i in (2, 3, 4))


def test_pushed_head_is_the_after_commit() -> None:
    from skillsyncd.daemon.webhook import pushed_head

    sha = "1" * 40
    assert pushed_head(json.dumps({"ref": "refs/heads/main", "after": sha}).encode()) == sha
    assert pushed_head(json.dumps({"after": "0" * 40}).encode()) is None  # a deleted ref
    assert pushed_head(json.dumps({"after": "main"}).encode()) is None
    assert pushed_head(b"not json") is None
