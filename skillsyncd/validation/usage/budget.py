"""The skills catalog in every agent's prompt, computed as the gateway computes it.

OpenClaw 2026.9.6's ``prepareSkillsForPrompt``: the eligible, model-visible skills
sorted by name (``localeCompare(.., "en")``), the first ``maxSkillsInPrompt`` (150)
of them; the full format (name, description, location per skill) when it fits
``maxSkillsPromptChars`` (18,000); else the compact format, first dropping skills
from the end until the compact catalog without descriptions fits, then the longest
description cut (4 to 220 characters, by binary search) that still fits, with a
warning line on top. Lengths are JavaScript's: UTF-16 code units.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

DEFAULT_MAX_SKILLS_IN_PROMPT = 150
DEFAULT_MAX_SKILLS_PROMPT_CHARS = 18_000
COMPACT_DESCRIPTION_MIN_CHARS = 4
COMPACT_DESCRIPTION_MAX_CHARS = 220
_JS_SPACE_RUN = re.compile("[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+")
_JS_WS = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
_READ_FULL = "Read a skill's file at its listed location when the task matches its description."
_READ_COMPACT = "Read a skill's file at its listed location when the task matches its name or description."
_READ_NAMES = "Read a skill's file at its listed location when the task matches its name."
_RELATIVE = ("When a skill file references a relative path, resolve it against the skill directory "
             "(parent of SKILL.md / dirname of the path) and use that absolute path in tool commands.")


@dataclass(frozen=True)
class Entry:
    """One catalog candidate: the gateway's name, description and SKILL.md location."""

    name: str
    description: str
    location: str


@dataclass(frozen=True)
class Catalog:
    """What the gateway puts in the prompt for a set of skills."""

    format: str  # full | compact
    description_chars: int | None  # compact: the cut (0 = names only); full: None
    kept: tuple[str, ...]  # names in the catalog, in its order
    omitted: tuple[str, ...]  # names left out (by count or by characters)
    prompt_chars: int  # the catalog's length
    full_chars: int  # what the full format of every skill (up to the count cap) would need
    max_chars: int
    max_skills: int
    prompt: str = field(default="", repr=False)  # the catalog text itself, as the gateway writes it

    @property
    def overrun(self) -> int:
        """Characters the full format is over the budget by (0 when it fits)."""
        return max(0, self.full_chars - self.max_chars)


def js_len(text: str) -> int:
    """JavaScript's ``length``: UTF-16 code units."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def _truncate_u16(text: str, limit: int) -> str:
    """``truncateUtf16Safe``: at most ``limit`` code units, never half a surrogate pair."""
    out, used = [], 0
    for c in text:
        width = 2 if ord(c) > 0xFFFF else 1
        if used + width > limit:
            break
        out.append(c)
        used += width
    return "".join(out)


def truncate_description(description: str, max_chars: int) -> str:
    """``truncateSkillDescription``: whitespace runs become one space, then cut with '...'."""
    normal = _JS_SPACE_RUN.sub(" ", description).strip(_JS_WS)
    if js_len(normal) <= max_chars:
        return normal
    if max_chars <= 3:
        return _truncate_u16(normal, max_chars)
    return _truncate_u16(normal, max_chars - 3).rstrip(_JS_WS) + "..."


def escape_xml(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


def _catalog(skills: Sequence[Entry], read: str, describe: Callable[[Entry], str | None]) -> str:
    if not skills:
        return ""
    lines = ["\n\nThe following skills provide specialized instructions for specific tasks.", read,
             _RELATIVE, "", "<available_skills>"]
    for s in skills:
        lines += ["  <skill>", f"    <name>{escape_xml(s.name)}</name>"]
        text = describe(s)
        if text is not None:
            lines.append(f"    <description>{escape_xml(text)}</description>")
        lines += [f"    <location>{escape_xml(s.location)}</location>", "  </skill>"]
    lines.append("</available_skills>")
    return "\n".join(lines)


def _note(truncated: bool, compact_chars: int | None, included: int, total: int) -> str:
    kind = "descriptions shortened" if compact_chars else "descriptions omitted"
    if truncated:
        detail = f" (compact format, {kind})" if compact_chars is not None else ""
        return (f"⚠️ Skills truncated: included {included} of {total}{detail}. "
                "Run `openclaw skills check` to audit.")
    if compact_chars is not None:
        return f"⚠️ Skills catalog using compact format ({kind}). Run `openclaw skills check` to audit."
    return ""


def render(skills: Sequence[Entry], total: int, compact_chars: int | None, note: bool = True) -> str:
    """``buildRenderedSkillsPrompt``: the note line, then the catalog (full when None)."""
    if compact_chars is None:
        body = _catalog(skills, _READ_FULL, lambda s: s.description)
    else:
        n = max(0, compact_chars)
        body = _catalog(skills, _READ_COMPACT if n > 0 else _READ_NAMES,
                        lambda s: (truncate_description(s.description, n) or None) if n > 0 else None)
    head = _note(len(skills) < total, compact_chars, len(skills), total) if note else ""
    return "\n".join(p for p in (head, body) if p)


# ICU's root order for ASCII punctuation and symbols (they sort before digits, digits
# before letters); letters compare by base letter first, then accents, then case.
_ICU_PUNCT = "_-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$"


def _primary(c: str) -> tuple[int, int]:
    if c in _ICU_PUNCT:
        return 0, _ICU_PUNCT.index(c)
    if c.isspace():
        return 0, -1
    if c.isdigit():
        return 1, ord(c)
    return 2, ord(c.lower())


def name_order(name: str) -> tuple[tuple[tuple[int, int], ...], tuple[str, ...], tuple[int, ...]]:
    """A sort key for ``localeCompare(.., "en")`` (ICU): base letters, then accents, then
    lowercase before uppercase. Exact for ASCII names and accented Latin letters."""
    parts = [unicodedata.normalize("NFD", c) for c in name]
    base = [p[0] for p in parts]
    return (tuple(_primary(b) for b in base), tuple(p[1:] for p in parts),
            tuple(1 if b.isupper() else 0 for b in base))


def prepare(skills: Sequence[Entry], max_chars: int | None = None, max_skills: int | None = None,
            preserve_order: bool = False) -> Catalog:
    """``prepareSkillsForPrompt``: which skills the catalog holds, and in which format."""
    limit = DEFAULT_MAX_SKILLS_PROMPT_CHARS if max_chars is None else max_chars
    count = DEFAULT_MAX_SKILLS_IN_PROMPT if max_skills is None else max_skills
    ordered = list(skills) if preserve_order else sorted(skills, key=lambda s: name_order(s.name))
    total = len(ordered)
    by_count = ordered[:max(0, count)]

    def fits(chosen: Sequence[Entry], compact: int | None, note: bool = True) -> str | None:
        text = render(chosen, total, compact, note)
        return text if js_len(text) <= limit else None

    full_text = render(by_count, total, None)
    if js_len(full_text) <= limit:
        return _result("full", None, by_count, ordered, full_text, full_text, limit, count)
    chosen = by_count
    if fits(chosen, 0) is None:
        chosen = by_count[:_largest(len(chosen), lambda n: fits(by_count[:n], 0) is not None)]
    if not chosen and by_count:
        bare = fits(by_count, None, note=False)
        if bare is not None:
            return _result("full", None, by_count, ordered, bare, full_text, limit, count)
        n = _largest(len(by_count), lambda n: fits(by_count[:n], 0, note=False) is not None)
        if n > 0:
            chosen = by_count[:n]
    note = fits(chosen, 0) is not None
    cut = 0
    if chosen and fits(chosen, COMPACT_DESCRIPTION_MIN_CHARS, note) is not None:
        lo, hi = COMPACT_DESCRIPTION_MIN_CHARS, COMPACT_DESCRIPTION_MAX_CHARS
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(chosen, mid, note) is not None:
                lo = mid
            else:
                hi = mid - 1
        cut = lo
    text = fits(chosen, cut, note) or ""
    return _result("compact", cut, chosen if text else [], ordered, text, full_text, limit, count)


def _largest(upper: int, ok: Callable[[int], bool]) -> int:
    """The gateway's binary search: the largest n in [0, upper] with ok(n) (ok(0) assumed)."""
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _result(fmt: str, cut: int | None, kept: Sequence[Entry], ordered: Sequence[Entry], text: str,
            full_text: str, limit: int, count: int) -> Catalog:
    names = tuple(s.name for s in kept)
    inside = set(names)
    return Catalog(fmt, cut, names, tuple(s.name for s in ordered if s.name not in inside),
                   js_len(text), js_len(full_text), limit, count, text)


def kept_chars(entry: Entry, catalog: Catalog) -> int:
    """How many characters of ``entry``'s description the agents see."""
    if entry.name not in catalog.kept:
        return 0
    if catalog.description_chars is None:
        return js_len(entry.description)
    if catalog.description_chars == 0:
        return 0
    return js_len(truncate_description(entry.description, catalog.description_chars))
