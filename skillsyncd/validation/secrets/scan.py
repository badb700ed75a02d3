"""One window of text through every rule; overlapping hits are reported once, by the
first rule to claim the span (token formats, then structural rules, then assignments).

The window is also read through its views (escapes decoded, split strings joined); a
binary's printable runs are read glued, because a database stores values back to back.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator

from skillsyncd.validation.secrets import structural
from skillsyncd.validation.secrets.assignments import assignments, glued_assignments
from skillsyncd.validation.secrets.compiled import (
    TOKEN_CHARS,
    TOKENS,
    Candidate,
    Compiled,
    label,
    needles_in,
    runs,
)
from skillsyncd.validation.secrets.fingerprints import Hit
from skillsyncd.validation.secrets.values import entropy, looks_made_up
from skillsyncd.validation.secrets.views import View, escaped_lines, joined_strings

MAX_HITS_PER_FILE = 50  # a file of generated keys says enough after fifty
# Formats whose letters alone say little: a digit and a letter after the prefix are required.
_NEEDS_DIGIT = frozenset(
    {
        "secret.slack-token",
        "secret.twilio-api-key",
        "secret.octopus-deploy-api-key",
        "secret.mailchimp-api-key",
        "secret.mailgun-api-key",
    }
)


class _Lines:
    """Line starts, computed on the first hit: most windows have none."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._starts: list[int] | None = None

    def of(self, pos: int) -> int:
        if self._starts is None:
            self._starts = [0] + [m.end() for m in re.finditer("\n", self._text)]
        return bisect.bisect_right(self._starts, pos)


def _shape_ok(c: Compiled, token: str) -> bool:
    if c.rule.id in _NEEDS_DIGIT:
        return bool(re.search(r"\d", token)) and bool(re.search(r"[A-Za-z]", token[4:]))
    return True


_NAME_TAIL = re.compile(r"(?:^|[_.\-])[A-Za-z]{3,}$")


def _after_a_name(text: str, at: int) -> bool:
    """In a binary's runs, a value glued to what precedes it counts when that is a name
    (``GITHUB_TOKEN``, ``token``), not more data (``…NzaC1yc2`` in an SSH key's base64)."""
    lo = at
    while lo > max(0, at - 80) and text[lo - 1] in TOKEN_CHARS:
        lo -= 1
    return _NAME_TAIL.search(text, lo, at) is not None


def tokens(text: str, glued: bool) -> Iterator[Candidate]:
    """Self-identifying formats. In text a match inside a longer token is not one; in a
    binary's runs (``glued``) a value may sit right against a name or the next record."""
    present = needles_in(runs(text))
    for c in TOKENS:
        if present.isdisjoint(c.rule.prefilter):
            continue
        for m in (c.glued if glued else c.regex).finditer(text):
            token = m.group("s")
            inside = bool(m.start()) and text[m.start() - 1] in TOKEN_CHARS and token[0] in TOKEN_CHARS
            if inside and not (glued and _after_a_name(text, m.start())):
                continue  # inside a longer token (in a binary: one that is not a name)
            if looks_made_up(token) or entropy(token) < c.rule.min_entropy or not _shape_ok(c, token):
                continue
            shown = next((p for p in c.shown if token.startswith(p)), "")
            yield Candidate(c.rule.id, token, m.start("s"), m.end("s"), shown)


def candidates(text: str, glued: bool = False) -> Iterator[Candidate]:
    """Every rule over ``text``, in claiming order."""
    yield from tokens(text, glued)
    if "PRIVATE KEY" in text or "Private-Lines:" in text:
        yield from structural.private_keys(text)
    if any(n in text for n in structural.AWS_NEEDLES):
        yield from structural.aws_keys(text, glued)
    if structural.JWT_NEEDLE in text:
        yield from structural.jwts(text, glued)
    if structural.URL_NEEDLE in text:
        yield from structural.url_credentials(text)
    if any(n in text for n in structural.AUTH_NEEDLES):
        yield from structural.auth_headers(text, glued)
    if any(n in text for n in structural.REGISTRY_NEEDLES):
        yield from structural.registry_auth(text)
    if glued:  # first: a separator inside a glued value must not cut it in two
        yield from glued_assignments(text)
    yield from assignments(text, glued)


class _Scan:
    """Claims over one text: a span is reported once, by the first candidate to claim it."""

    def __init__(self, text: str, own: tuple[int, int], budget: int) -> None:
        self.lines = _Lines(text)
        self.own = own
        self.budget = budget
        self.hits: list[tuple[int, Hit]] = []
        self.taken: list[tuple[int, int]] = []

    def claim(self, start: int, end: int) -> bool:
        if any(s < end and start < e for s, e in self.taken):
            return False
        self.taken.append((start, end))
        return True

    def add(self, c: Candidate, lines_before: int) -> None:
        if len(self.hits) >= self.budget:
            return
        if not (self.own[0] <= c.start < self.own[1]):
            self.claim(c.start, c.end)  # another window owns it; still keep weaker rules off it
            return
        if self.claim(c.start, c.end):
            line = lines_before + self.lines.of(c.start)
            self.hits.append((c.start, Hit(c.rule, line, c.secret, label(c.rule), c.shown)))
            if c.covers is not None:
                self.claim(*c.covers)


def _run(
    text: str, own: tuple[int, int], budget: int, lines_before: int, glued: bool
) -> list[tuple[int, Hit]]:
    scan = _Scan(text, own, budget)
    for c in candidates(text, glued):
        if len(scan.hits) >= budget:
            break
        scan.add(c, lines_before)
    return scan.hits


def _view_hits(view: View, budget: int) -> Iterator[tuple[int, Hit]]:
    """Hits in a view, each at the window offset of the line it came from."""
    joined, offsets, origins = view.text()
    for at, h in _run(joined, (0, len(joined)), budget, 0, glued=False):
        yield origins[bisect.bisect_right(offsets, at) - 1], h


def scan_window(
    text: str, lines_before: int, own: tuple[int, int], budget: int, glued: bool = False
) -> list[Hit]:
    """Hits whose start lies in ``own``, numbered as lines of the whole file; then the same
    text through its views, each hit found there only once."""
    found = [h for _, h in _run(text, own, budget, lines_before, glued)]
    seen = {(h.rule, h.secret) for h in found}
    lines = _Lines(text)
    views = [escaped_lines(text, own[0], own[1])] if "\\" in text else []
    views.append(joined_strings(text, own[0], own[1]))
    for view in views:
        if not view.lines or len(found) >= budget:
            continue
        for origin, h in _view_hits(view, budget - len(found)):
            if (h.rule, h.secret) not in seen and len(found) < budget:
                seen.add((h.rule, h.secret))
                found.append(Hit(h.rule, lines_before + lines.of(origin), h.secret, h.label, h.shown))
    return found


def scan_text(text: str) -> list[Hit]:
    """Every likely secret in ``text`` with its 1-based line; overlapping hits reported once."""
    return sorted(scan_window(text, 0, (0, len(text)), MAX_HITS_PER_FILE), key=lambda h: (h.line, h.rule))
