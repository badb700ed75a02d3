"""How a credential format is written down, and what is derived from it.

A format is a sequence of segments: a literal string, or ``(alphabet, min, max)`` with
the alphabet written as character ranges (``"a-f0-9"``; any other ``-`` is a dash).
The regex, the literal prefilter, the docs' wording and the test values are all
derived from the same segments, so what the docs say, what the scanner matches and
what the tests generate cannot drift apart. The rows themselves are the table in
:mod:`skillsyncd.validation.secret_rules`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from skillsyncd.model import Severity

Seg = str | tuple[str, int, int]
Format = tuple[Seg, ...]


def n(alphabet: str, lo: int, hi: int | None = None) -> tuple[str, int, int]:
    """``lo`` (to ``hi``) characters from ``alphabet``."""
    return (alphabet, lo, lo if hi is None else hi)


def _is_range(alphabet: str, i: int) -> bool:
    """'a-z' at ``i`` (both ends letters or digits); any other '-' is a dash."""
    return (
        i + 2 < len(alphabet)
        and alphabet[i + 1] == "-"
        and alphabet[i].isalnum()
        and alphabet[i + 2].isalnum()
    )


def expand(alphabet: str) -> str:
    """The characters an alphabet spec stands for, in order."""
    out: list[str] = []
    i = 0
    while i < len(alphabet):
        if _is_range(alphabet, i):
            out.extend(chr(c) for c in range(ord(alphabet[i]), ord(alphabet[i + 2]) + 1))
            i += 3
        else:
            out.append(alphabet[i])
            i += 1
    return "".join(dict.fromkeys(out))


def char_class(alphabet: str) -> str:
    """A regex character class for an alphabet spec (ranges kept, specials escaped)."""
    body: list[str] = []
    i = 0
    while i < len(alphabet):
        if _is_range(alphabet, i):
            body.append(f"{re.escape(alphabet[i])}-{re.escape(alphabet[i + 2])}")
            i += 3
        else:
            body.append("\\-" if alphabet[i] == "-" else re.escape(alphabet[i]))
            i += 1
    return "[" + "".join(body) + "]"


def format_regex(fmt: Format) -> str:
    parts = []
    for seg in fmt:
        if isinstance(seg, str):
            parts.append(re.escape(seg))
        else:
            alphabet, lo, hi = seg
            parts.append(char_class(alphabet) + (f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}"))
    return "".join(parts)


def format_text(fmt: Format) -> str:
    """The format as the docs show it: ``glpat-`` + 20 ``[A-Za-z0-9_-]``."""
    parts = []
    for seg in fmt:
        if isinstance(seg, str):
            parts.append(f"`{seg}`")
        else:
            alphabet, lo, hi = seg
            count = str(lo) if lo == hi else (f"{lo}+" if hi >= 1000 else f"{lo}-{hi}")
            parts.append(f"{count} `[{alphabet}]`")
    return " + ".join(parts)


def longest_literal(fmt: Format) -> str:
    lits = [s for s in fmt if isinstance(s, str)]
    return max(lits, key=len) if lits else ""


@dataclass(frozen=True)
class SecretRule:
    """One row of the table. ``kind`` says which scanner code handles it."""

    id: str
    provider: str
    formats: tuple[Format, ...] = ()
    keywords: tuple[str, ...] = ()  # keyed rules: the assigned name must contain one
    min_entropy: float = 3.0
    severity: Severity = Severity.ERROR
    kind: str = "token"  # token | keyed | structural
    describe: str = ""  # structural rules: the format in words
    prefilter: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not self.prefilter:
            lits = self.keywords if self.kind == "keyed" else tuple(longest_literal(f) for f in self.formats)
            object.__setattr__(self, "prefilter", tuple(sorted({s.lower() for s in lits})))
        if self.kind == "token" and not (all(self.prefilter) and self.formats):
            raise ValueError(f"{self.id}: every token format must name a literal")

    @property
    def format_doc(self) -> str:
        if self.describe:
            return self.describe
        text = "; ".join(format_text(f) for f in self.formats)
        if self.kind == "keyed":
            names = ", ".join(f"`{k}`" for k in self.keywords)
            return f"{text}, assigned to a name containing {names}"
        return text


def tok(
    rule_id: str, provider: str, *formats: Format, entropy: float = 3.0, severity: Severity = Severity.ERROR
) -> SecretRule:
    return SecretRule(rule_id, provider, tuple(formats), min_entropy=entropy, severity=severity)


def keyed(
    rule_id: str, provider: str, keywords: tuple[str, ...], *formats: Format, entropy: float = 3.0
) -> SecretRule:
    return SecretRule(rule_id, provider, tuple(formats), keywords, min_entropy=entropy, kind="keyed")


def structural(
    rule_id: str,
    provider: str,
    describe: str,
    severity: Severity = Severity.ERROR,
    prefilter: tuple[str, ...] = ("",),
) -> SecretRule:
    return SecretRule(
        rule_id, provider, (), kind="structural", describe=describe, severity=severity, prefilter=prefilter
    )
