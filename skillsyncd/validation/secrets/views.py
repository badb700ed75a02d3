"""The same text as the language in it reads it: string escapes decoded, and strings that
the language joins (split over two lines of code) joined. Each view is a list of lines,
each with the offset in the window its text came from, so a hit keeps its line number."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|[nrt/\"'\\])")
_ESCAPE_FIND = re.compile(r"\\(?:u[0-9a-fA-F]{4}|[nrt/\"'])")
# A quoted string, and what may stand between two strings the language joins: spaces, a
# line break (after a `\` continuation or inside brackets), and a concatenation operator.
_STRING = re.compile(r"\"(?:[^\"\\\n]|\\.){1,400}\"|'(?:[^'\\\n]|\\.){1,400}'")
# Possessive (``*+``): a binary's long runs of spaces must not be tried every way they split.
_OP = r"[ \t]*+(?:\+|\.\.|\.|&|\|\|)?+[ \t]*+"
_JOIN_GAP = re.compile(_OP + r"\\?[ \t]*+(?:\r?\n)?" + _OP)
_MAYBE_JOINED = re.compile(r"[\"']" + _OP + r"\\?\r?\n?" + _OP + r"[\"']")
_CONTINUED = re.compile(r"\\\r?\n[ \t]*")  # a line continuation inside a string (sh, C, YAML)


@dataclass(frozen=True)
class View:
    """Lines of a derived text, each with the window offset it stands for."""

    lines: tuple[tuple[int, str], ...]

    def text(self) -> tuple[str, list[int], list[int]]:
        """The joined text, the start of each line in it, and each line's window offset."""
        parts = [line for _, line in self.lines]
        offsets, at = [], 0
        for part in parts:
            offsets.append(at)
            at += len(part) + 1
        return "\n".join(parts), offsets, [start for start, _ in self.lines]


def unescape(s: str) -> str:
    def one(m: re.Match[str]) -> str:
        e = m.group()
        if e[1] == "u":
            return chr(int(e[2:], 16))
        return {"n": "\n", "r": "", "t": "\t"}.get(e[1], e[1])

    return _ESCAPE.sub(one, s)


def escaped_lines(text: str, lo: int, hi: int) -> View:
    """Each line in text[lo:hi] holding a JSON/YAML string escape, decoded."""
    out: list[tuple[int, str]] = []
    pos = lo
    while True:
        m = _ESCAPE_FIND.search(text, pos, hi)
        if m is None:
            return View(tuple(out))
        start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.end())
        end = len(text) if end < 0 else end
        out.append((start, unescape(text[start:end])))
        pos = end + 1


def _string_runs(text: str, lo: int, hi: int) -> Iterator[list[re.Match[str]]]:
    """Runs of two or more quoted strings with only joining space between them."""
    run: list[re.Match[str]] = []
    for m in _STRING.finditer(text, lo, hi):
        if run and _JOIN_GAP.fullmatch(text, run[-1].end(), m.start()) is None:
            if len(run) > 1:
                yield run
            run = []
        run.append(m)
    if len(run) > 1:
        yield run


def _head(text: str, at: int) -> tuple[int, str]:
    """The code before the string at ``at`` and where its line starts; when the string
    opens its line (``KEY = (`` on the line above, then the parts), the line above."""
    line_start = text.rfind("\n", 0, at) + 1
    head = text[line_start:at]
    if not head.strip(" \t([{") and line_start > 0:
        line_start = text.rfind("\n", 0, line_start - 1) + 1
        head = text[line_start:at]
    return line_start, head.rstrip(" \t\r\n([{+")


def joined_strings(text: str, lo: int, hi: int) -> View:
    """Strings split over lines and joined by the language, as one line: Python's adjacent
    literals, ``"a" +`` in JS, Java, C#, ``.`` in PHP, and a ``\\`` line continuation inside
    one string. Each line keeps the code before the first string, so ``KEY = (`` still
    names the value."""
    out: list[tuple[int, str]] = []
    if _MAYBE_JOINED.search(text, lo, hi):
        for run in _string_runs(text, lo, hi):
            first = run[0]
            line_start, head = _head(text, first.start())
            body = unescape("".join(m.group()[1:-1] for m in run))
            out.append((line_start, f"{head} {first.group()[0]}{body}{first.group()[0]}"))
    pos = lo
    while (m := _CONTINUED.search(text, pos, hi)) is not None:
        line_start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.end())
        end = len(text) if end < 0 else end
        out.append((line_start, unescape(text[line_start : m.start()] + text[m.end() : end])))
        indent = m.group().lstrip("\\\r\n")
        if indent:  # YAML drops the next line's indentation, shell and C keep it
            out.append((line_start, unescape(text[line_start : m.start()] + indent + text[m.end() : end])))
        pos = end
    return View(tuple(out))
