"""Find credentials committed into skills, without ever echoing them.

Prefixed, high-confidence formats are errors; JWTs, a lone AWS key id and
generic high-entropy assignments are warnings. Documentation placeholders
(``YOUR_API_KEY``, ``sk-...``, ``sk-ant-xxxxx``, ``<token>``) do not match:
every pattern needs a long run of key characters, and a run that looks
made up (xxxx, repeated characters, EXAMPLE, YOUR_...) is dropped.

Each pattern names the literal text every match must contain (``needles``);
a file without any of them is not searched with that pattern, which is what
makes scanning ordinary prose cheap. The generic rule has a cheap necessary
condition instead: an ':' or '=' followed by a 20-character value.

A hit is reported by fingerprint (first 4 characters, '…', first 12 hex of
its SHA-256). Listing a fingerprint in ``.skillsync-allow`` accepts it.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import math
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

ALLOWLIST_FILE = ".skillsync-allow"
SCAN_MAX_BYTES = 1024 * 1024
BINARY_SNIFF_BYTES = 8192
AWS_PAIR_LINES = 5
AWS_PAIR_CHARS = 1000
MAX_HITS_PER_FILE = 50  # a file of generated keys says enough after fifty

_B = r"(?<![A-Za-z0-9_\-])"  # left boundary: not inside a longer token
_E = r"(?![A-Za-z0-9_\-])"  # right boundary


@dataclass(frozen=True)
class Hit:
    rule: str
    line: int
    secret: str
    label: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.secret)


def fingerprint(secret: str) -> str:
    return f"{secret[:4]}…{_digest(secret)}"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:12]


_HEX12 = re.compile(r"([0-9a-f]{12})\s*$")


def parse_allowlist(data: bytes | str) -> frozenset[str]:
    """Fingerprint digests from a .skillsync-allow file (one per line, '#' comments).

    A line may hold the whole fingerprint ('ghp_…0123456789ab') or just the 12 hex
    digits; only the digits are kept, so a mangled ellipsis still matches.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    out = set()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        m = _HEX12.search(line)
        if m:
            out.add(m.group(1))
    return frozenset(out)


def normalise_allowed(allowed: Collection[str]) -> frozenset[str]:
    """Whole fingerprints or bare digests, as the caller has them, to digests."""
    out = set()
    for a in allowed:
        m = _HEX12.search(a.strip())
        if m:
            out.add(m.group(1))
    return frozenset(out)


_PLACEHOLDER = re.compile(
    r"x{4,}|X{4,}|\*{3,}|\.{3}|…|0{8,}|1234567|abcdef(?:gh|12)|your|example|sample|placeholder"
    r"|replace|dummy|fake|redacted|insert|changeme|<|>|\{|\}|\$",
    re.IGNORECASE,
)


def looks_made_up(token: str) -> bool:
    """True for documentation stand-ins: too few distinct characters or placeholder words."""
    core = re.sub(r"[^A-Za-z0-9]", "", token)
    return len(set(core)) < 8 or bool(_PLACEHOLDER.search(token))


def entropy(token: str) -> float:
    counts: dict[str, int] = {}
    for ch in token:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in counts.values()) if n else 0.0


@dataclass(frozen=True)
class _Pattern:
    rule: str
    label: str
    regex: re.Pattern[str]
    needles: tuple[str, ...]  # every match contains at least one of these
    group: int = 0
    accept: Callable[[str], bool] | None = None

    def may_match(self, present: frozenset[str]) -> bool:
        """``present``: the needles found in the text (:func:`_needles_in`)."""
        return not present.isdisjoint(self.needles)


def _mixed(s: str) -> bool:
    return bool(re.search(r"[a-z]", s)) + bool(re.search(r"[A-Z]", s)) + bool(re.search(r"\d", s)) >= 2


_PATTERNS: tuple[_Pattern, ...] = (
    _Pattern("secret.anthropic-api-key", "Anthropic API key",
             re.compile(_B + r"sk-ant-api\d\d-[A-Za-z0-9_\-]{80,}" + _E), ("sk-ant-api",)),
    _Pattern("secret.anthropic-admin-key", "Anthropic admin key",
             re.compile(_B + r"sk-ant-admin\d\d-[A-Za-z0-9_\-]{80,}" + _E), ("sk-ant-admin",)),
    _Pattern("secret.openai-api-key", "OpenAI project/service key",
             re.compile(_B + r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,}" + _E),
             ("sk-proj-", "sk-svcacct-", "sk-admin-")),
    _Pattern("secret.openai-api-key", "OpenAI API key",
             re.compile(_B + r"sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}" + _E), ("T3BlbkFJ",)),
    _Pattern("secret.openai-api-key", "OpenAI-style legacy API key",
             re.compile(_B + r"sk-[A-Za-z0-9]{48}" + _E), ("sk-",), accept=_mixed),
    _Pattern("secret.github-pat", "GitHub personal access token",
             re.compile(_B + r"(?:ghp_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})" + _E),
             ("ghp_", "github_pat_")),
    _Pattern("secret.github-token", "GitHub OAuth/app token",
             re.compile(_B + r"gh[ousr]_[A-Za-z0-9]{36}" + _E), ("gho_", "ghu_", "ghs_", "ghr_")),
    _Pattern("secret.slack-token", "Slack token",
             re.compile(_B + r"xox[baprs]-\d{6,}-[A-Za-z0-9\-]{8,}" + _E), ("xox",)),
    _Pattern("secret.slack-webhook", "Slack webhook URL",
             re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,}"),
             ("https://hooks.slack.com/services/",)),
    _Pattern("secret.stripe-live-key", "Stripe live key",
             re.compile(_B + r"(?:sk|rk)_live_[A-Za-z0-9]{20,}" + _E), ("sk_live_", "rk_live_")),
    _Pattern("secret.google-api-key", "Google API key",
             re.compile(_B + r"AIza[0-9A-Za-z_\-]{35}" + _E), ("AIza",)),
)

_AWS_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_PEM = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY( BLOCK)?-----")
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=]{40,}")
_JWT = re.compile(_B + r"(eyJ[A-Za-z0-9_\-]{8,})\.(eyJ[A-Za-z0-9_\-]{8,})\.([A-Za-z0-9_\-]{16,})" + _E)
_GENERIC = re.compile(
    r"(?i)(?:api[_-]?key|secret|token|passw(?:or)?d|access[_-]?key|auth[_-]?key|credential)"
    r"[A-Za-z0-9_\-]{0,40}[\"']?[ \t]{0,8}[:=][ \t]{0,8}[\"']?([A-Za-z0-9_\-/+=.]{20,200})"
    r"(?![A-Za-z0-9_\-/+=.])"
)
# Part of every _GENERIC match (separator, optional quote, 20 value characters); far
# cheaper to look for than the case-insensitive keyword alternation.
_GENERIC_VALUE = re.compile(r"[:=][ \t]{0,8}[\"']?[A-Za-z0-9_\-/+=.]{20}")
_ALL_NEEDLES = tuple(sorted({n for p in _PATTERNS for n in p.needles}))


def _needles_in(text: str) -> frozenset[str]:
    """Each needle is looked for once per file, not once per pattern that names it."""
    return frozenset(n for n in _ALL_NEEDLES if n in text)


_AWS_NEEDLES = ("AKIA", "ASIA")
_PEM_NEEDLE = "PRIVATE KEY"
_JWT_NEEDLE = "eyJ"


# Values that look like keys but are meant to be public or are test-mode only.
_NOT_SECRET_PREFIXES = ("sk_test_", "rk_test_", "pk_test_", "pk_live_", "sha256-", "sha384-", "sha512-")


class _Lines:
    """Line starts, computed on the first hit: most files have none."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._starts: list[int] | None = None

    @property
    def starts(self) -> list[int]:
        if self._starts is None:
            self._starts = [0] + [m.end() for m in re.finditer("\n", self._text)]
        return self._starts

    def of(self, pos: int) -> int:
        return bisect.bisect_right(self.starts, pos)


def _b64json(part: str) -> object:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError):
        return None


def scan_text(text: str) -> list[Hit]:
    """Every likely secret in ``text`` with its 1-based line; overlapping hits reported once."""
    lines = _Lines(text)
    hits: list[Hit] = []
    taken: list[tuple[int, int]] = []

    def claim(start: int, end: int) -> bool:
        if any(s < end and start < e for s, e in taken):
            return False
        taken.append((start, end))
        return True

    def add(rule: str, label: str, secret: str, start: int, end: int) -> None:
        if len(hits) < MAX_HITS_PER_FILE and claim(start, end):
            hits.append(Hit(rule, lines.of(start), secret, label))

    present = _needles_in(text)
    for p in _PATTERNS:
        if not p.may_match(present):
            continue
        for m in p.regex.finditer(text):
            token = m.group(p.group)
            if looks_made_up(token) or (p.accept and not p.accept(token)):
                continue
            add(p.rule, p.label, token, m.start(), m.end())

    for m in _PEM.finditer(text) if _PEM_NEEDLE in text else ():
        after = text[m.end(): m.end() + 400].replace("\\n", "\n")
        body = _PEM_BODY.search(after)
        if body and not looks_made_up(body.group()):
            add("secret.private-key", f"{m.group(1)}private key", body.group(), m.start(), m.end())

    for m in _AWS_ID.finditer(text) if any(n in text for n in _AWS_NEEDLES) else ():
        key_id = m.group()
        if looks_made_up(key_id):
            continue
        line = lines.of(m.start())
        lo = max(lines.starts[max(0, line - 1 - AWS_PAIR_LINES)], m.start() - AWS_PAIR_CHARS)
        hi_line = min(len(lines.starts), line + AWS_PAIR_LINES)
        hi = min(lines.starts[hi_line] if hi_line < len(lines.starts) else len(text),
                 m.end() + AWS_PAIR_CHARS)
        pair = next(
            (s for s in _AWS_SECRET.finditer(text, lo, hi)
             if re.search(r"[a-z]", s.group()) and re.search(r"[A-Z]", s.group())
             and not looks_made_up(s.group()) and entropy(s.group()) > 4.0),
            None,
        )
        if pair is not None:
            add("secret.aws-secret-key", "AWS access key pair", pair.group(), pair.start(), pair.end())
            claim(m.start(), m.end())
        else:
            add("secret.aws-access-key-id", "AWS access key id", key_id, m.start(), m.end())

    for m in _JWT.finditer(text) if _JWT_NEEDLE in text else ():
        header = _b64json(m.group(1))
        if isinstance(header, dict) and "alg" in header:
            add("secret.jwt", "JSON Web Token", m.group(), m.start(), m.end())

    for m in _GENERIC.finditer(text) if _GENERIC_VALUE.search(text) else ():
        value = m.group(1)
        if (looks_made_up(value) or not _mixed(value) or entropy(value) < 3.5
                or value.startswith(_NOT_SECRET_PREFIXES)
                or re.fullmatch(r"[A-Z0-9_]+", value) or re.fullmatch(r"[a-z0-9_.\-]+", value)):
            continue
        add("secret.generic", "high-entropy credential", value, m.start(1), m.end(1))

    return sorted(hits, key=lambda h: (h.line, h.rule))


def is_binary(data: bytes) -> bool:
    return b"\0" in data[:BINARY_SNIFF_BYTES]


def scan_bytes(data: bytes) -> Iterator[Hit]:
    """Text files only: binaries (a NUL in the first 8 KB) and files over 1 MB are skipped."""
    if len(data) > SCAN_MAX_BYTES or is_binary(data):
        return
    yield from scan_text(data.decode("utf-8", "replace"))


def allowed(hit: Hit, allow: frozenset[str]) -> bool:
    return _digest(hit.secret) in allow


__all__ = [
    "ALLOWLIST_FILE",
    "Hit",
    "allowed",
    "fingerprint",
    "normalise_allowed",
    "parse_allowlist",
    "scan_bytes",
    "scan_text",
]
