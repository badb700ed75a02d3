"""GitHub webhook rules: signature, replay, event and ref filtering (no I/O).

A push only *triggers* a fetch; nothing in the payload decides what is deployed
(the sync asks the remote itself). So the payload is read for one thing, its
``ref``, and only after the signature proved GitHub sent it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from skillsyncd.source.channels import is_channel

SIGNATURE_HEADER = "X-Hub-Signature-256"
DELIVERY_HEADER = "X-GitHub-Delivery"
EVENT_HEADER = "X-GitHub-Event"
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """HMAC-SHA256 of the raw body, compared in constant time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def sign(secret: str, body: bytes) -> str:
    """The header value GitHub would send (used by tests and docs)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def ref_matches(configured: str, pushed: str) -> bool:
    """Whether a push to ``pushed`` (e.g. refs/heads/main) moves the configured ref.

    A configured commit SHA never moves, so no push matches it.
    """
    if _FULL_SHA.match(configured.lower()):
        return False
    if is_channel(configured):  # any tag pushed, moved or deleted may change the pick
        return pushed.startswith("refs/tags/")
    if configured.startswith("refs/"):
        return pushed == configured
    return pushed in (f"refs/heads/{configured}", f"refs/tags/{configured}")


def pushed_head(body: bytes) -> str | None:
    """The commit a push payload moved its ref to (``after``), or None (deleted ref, not a push)."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    after = payload.get("after") if isinstance(payload, dict) else None
    if not isinstance(after, str) or not _FULL_SHA.match(after) or after == "0" * 40:
        return None
    return after


def pushed_ref(body: bytes) -> str | None:
    """The ``ref`` of a push payload, or None when the body is not a push payload."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    ref = payload.get("ref") if isinstance(payload, dict) else None
    return ref if isinstance(ref, str) else None


class DeliveryLog:
    """Delivery ids already accepted, bounded; remembers the newest ``size``."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._seen: OrderedDict[str, None] = OrderedDict()

    def seen(self, delivery: str) -> bool:
        return delivery in self._seen

    def add(self, delivery: str) -> None:
        self._seen[delivery] = None
        self._seen.move_to_end(delivery)
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)


@dataclass(frozen=True)
class Verdict:
    """The answer to one webhook request: HTTP status, a metrics label, a reason, sync or not."""

    status: int
    result: str
    reason: str
    trigger: bool = False
    head: str | None = None  # the pushed commit ("after"), when the push moved the configured ref


DISABLED = Verdict(404, "disabled", "webhook disabled: set GITHUB_WEBHOOK_SECRET to turn it on")
TOO_LARGE = Verdict(413, "too_large", "body over the size cap")
TOO_SLOW = Verdict(408, "too_slow", "body not received within http_timeout")


def judge(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    configured_ref: str,
    deliveries: DeliveryLog,
) -> Verdict:
    """Decide a webhook request whose body is already within the size cap.

    Order matters: nothing is remembered about a request until its signature
    checks out, so unsigned traffic cannot fill the replay log.
    """
    if not signature_valid(secret, body, headers.get(SIGNATURE_HEADER)):
        missing = not headers.get(SIGNATURE_HEADER)
        return Verdict(401, "unauthorized", "missing signature" if missing else "invalid signature")
    delivery = headers.get(DELIVERY_HEADER, "").strip()
    if not delivery:
        return Verdict(400, "bad_request", "missing X-GitHub-Delivery")
    if deliveries.seen(delivery):
        return Verdict(409, "replayed", "delivery already received")
    deliveries.add(delivery)
    event = headers.get(EVENT_HEADER, "").strip()
    if event == "ping":
        return Verdict(200, "ping", "pong")
    if event != "push":
        return Verdict(202, "ignored", f"ignored event {event or '(none)'}")
    ref = pushed_ref(body)
    if ref is None:
        return Verdict(400, "bad_request", "push payload without a ref")
    if not ref_matches(configured_ref, ref):
        return Verdict(202, "ignored", f"ignored push to {ref}")
    return Verdict(202, "triggered", "sync triggered", trigger=True, head=pushed_head(body))
