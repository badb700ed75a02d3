"""The table compiled for scanning: one regex per rule, the literal prefilter, and the
candidate every detector reports.

Cheap on prose: each rule names literal text one of its matches must contain (the
prefilter); a window of text without any of them is not searched with that rule.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from skillsyncd.validation.secret_rules import KEYED_RULES, SECRET_RULES, TOKEN_RULES
from skillsyncd.validation.secrets.formats import SecretRule, format_regex

BOUNDARY = r"(?![A-Za-z0-9_\-])"  # right boundary: not inside a longer token
TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class Candidate:
    """A likely secret at ``start:end`` of a window's text, before claims and line numbers."""

    rule: str
    secret: str = field(repr=False)
    start: int
    end: int
    shown: str = ""  # a public prefix that names the format, never secret material
    covers: tuple[int, int] | None = None  # another span it accounts for (an AWS key id)


@dataclass(frozen=True)
class Compiled:
    rule: SecretRule
    regex: re.Pattern[str]  # bounded on the right; the left boundary is checked in code
    glued: re.Pattern[str]  # unbounded: for a binary's runs, where values sit back to back
    shown: tuple[str, ...]  # literal prefixes a match may start with (shown in fingerprints)


def _compile(rule: SecretRule) -> Compiled:
    body = "|".join(format_regex(f) for f in rule.formats)
    if rule.kind == "keyed":  # matched against an assigned value found by the assignment pass
        whole = re.compile(f"(?:{body})")
        return Compiled(rule, whole, whole, ())
    # a lookbehind in front would stop the regex engine from jumping to the literal prefix
    regex = re.compile(rf"(?P<s>{body}){BOUNDARY}")
    glued = re.compile(rf"(?P<s>{body})")
    shown = tuple(f[0] for f in rule.formats if isinstance(f[0], str) and len(f[0]) <= 12)
    return Compiled(rule, regex, glued, shown)


TOKENS = tuple(_compile(r) for r in TOKEN_RULES)
KEYED = tuple(_compile(r) for r in KEYED_RULES)
ALL_NEEDLES = tuple(sorted({n for c in TOKENS for n in c.rule.prefilter}))


def needle_trie(needles: Collection[str]) -> re.Pattern[str]:
    """One regex that finds, at every position, the shortest needle starting there."""
    trie: dict[str, dict] = {}  # type: ignore[type-arg]
    for word in needles:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def alt(node: dict) -> str:  # type: ignore[type-arg]
        if "" in node:
            return ""
        parts = [re.escape(ch) + alt(sub) for ch, sub in sorted(node.items())]
        return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"

    return re.compile(f"(?=({alt(trie)}))")


def longer_needles(needles: Collection[str]) -> dict[str, tuple[str, ...]]:
    """needle -> the longer needles that start with it (a trie reports only the shortest)."""
    return {n: tuple(m for m in needles if m != n and m.startswith(n)) for n in needles}


_NEEDLE_TRIE = needle_trie(ALL_NEEDLES)
_LONGER = longer_needles(ALL_NEEDLES)


def _shortest(rule: SecretRule) -> int:
    return min(sum(len(s) if isinstance(s, str) else s[1] for s in f) for f in rule.formats)


# Every token is at least this long, in these characters: only such runs can hold one.
SHORTEST_TOKEN = min(_shortest(c.rule) for c in TOKENS)
_LONG_RUN = re.compile(rf"[A-Za-z0-9_\-+/=.~:$|@%]{{{SHORTEST_TOKEN},}}")
KEYED_BY_WORD = {k: tuple(c for c in KEYED if k in c.rule.keywords) for c in KEYED for k in c.rule.keywords}
_RULES_BY_ID = {r.id: r for r in SECRET_RULES}


def label(rule_id: str) -> str:
    r = _RULES_BY_ID[rule_id]
    kind = rule_id.removeprefix("secret.").replace("-", " ")
    return f"{r.provider} credential ({kind})" if r.kind != "structural" else kind


def runs(text: str) -> str:
    """The window's distinct runs of token characters as long as the shortest token,
    lowercased: every token match lies in one, and prose has few, so needles are looked
    for in far less text."""
    return "\n".join(set(_LONG_RUN.findall(text))).lower()


def needles_in(found_runs: str) -> frozenset[str]:
    """Needles present in ``found_runs``: one pass of the trie gives the shortest needle at
    each position; longer needles sharing that start are then checked one by one."""
    short = set(_NEEDLE_TRIE.findall(found_runs))
    return frozenset(short).union(*((m for m in _LONGER[s] if m in found_runs) for s in short))
