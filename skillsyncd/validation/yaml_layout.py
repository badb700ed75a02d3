"""Indentation the gateway's YAML refuses although PyYAML accepts it, judged line by line.

PyYAML ignores indentation inside a flow collection and is lenient with tabs
between lines; the gateway's ``yaml`` package is not. These rules run before
PyYAML reads a block (validation/yaml12.py), so a block PyYAML would read but
the gateway would not is refused the way the gateway refuses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class LayoutFault:
    """A line the gateway's YAML refuses: why, and the offset of the line in the block."""

    message: str
    index: int


_KEY_ONLY = re.compile(r"( *)[^\s#][^#]*:[ \t]*\Z")
_BLOCK_HEAD = re.compile(r"( *)[^\s#].*:[ \t]+[|>][0-9+-]*[ \t]*(?:#.*)?\Z")
# 'key: [' or 'key: {' (after '- ' too); group 1 ends where the key starts, group 2 is the opener.
_FLOW_OPEN = re.compile(r"( *(?:- +)?)[^\s#\[{][^#]*?:[ \t]+([\[{])")
_QUOTE_AFTER = frozenset({"", "{", "[", ",", ":", "?"})  # where a quote opens a quoted value


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _blank(line: str) -> bool:
    return not line.strip(" \t")


def layout_fault(block: str) -> LayoutFault | None:
    """Indentation the gateway's YAML refuses and PyYAML accepts, judged line by line.

    A whitespace line holding a tab inside a block scalar, or between a bare
    'key:' and a line that is not indented under it; a flow collection ('[' or
    '{') continued on a line not indented past its key (its closing bracket aside).
    """
    lines = block.split("\n")
    offsets = [0]
    for line in lines[:-1]:
        offsets.append(offsets[-1] + len(line) + 1)
    i = 0
    while i < len(lines):
        line = lines[i]
        head = _BLOCK_HEAD.match(line)
        key_only = _KEY_ONLY.match(line) if head is None else None
        flow = _FLOW_OPEN.match(line) if head is None and key_only is None else None
        fault: int | LayoutFault | None = None
        if head is not None:
            fault = _block_scalar_fault(lines, i, len(head.group(1)), offsets)
        elif key_only is not None:
            fault = _key_only_fault(lines, i, len(key_only.group(1)), offsets)
        elif flow is not None:
            fault = _flow_fault(lines, i, len(flow.group(1)), line[flow.start(2):], offsets)
        if isinstance(fault, LayoutFault):
            return fault
        i = fault if isinstance(fault, int) else i + 1
    return None


def _block_scalar_fault(lines: list[str], i: int, indent: int, offsets: list[int]) -> LayoutFault | None:
    """A whitespace line holding a tab inside the block scalar opened on line ``i``."""
    for j in range(i + 1, len(lines)):
        nxt = lines[j]
        if not _blank(nxt) and _indent(nxt) <= indent:
            break
        if _blank(nxt) and "\t" in nxt:
            return LayoutFault("a tab in a block scalar's blank line", offsets[j])
    return None


def _key_only_fault(lines: list[str], i: int, indent: int, offsets: list[int]) -> LayoutFault | None:
    """A tab-indented blank line after a bare 'key:' when what follows is not indented under it."""
    tabbed = None
    for j in range(i + 1, len(lines)):
        nxt = lines[j]
        if _blank(nxt):
            if nxt.startswith("\t") and tabbed is None:
                tabbed = j
            continue
        if tabbed is not None and (_indent(nxt) <= indent or nxt.lstrip(" ").startswith("\t")):
            return LayoutFault("tabs are not allowed as indentation", offsets[tabbed])
        break
    return None


def _flow_fault(lines: list[str], i: int, key: int, opened: str, offsets: list[int]) -> int | LayoutFault:
    """The flow collection opened on line ``i`` by a key at column ``key``: the line after it, or
    the first of its lines the gateway's YAML refuses.

    As the gateway's ``yaml`` lexer reads it: each line inside the collection is indented past
    the key (spaces only; blank and comment lines aside), except the outermost closing ']' or
    '}', which may stand at the key's own column (``metadata: {`` ... ``}`` at the margin).
    A quoted value continued on the next line needs that indentation too, blank lines aside.
    Its composer also refuses a comment at the margin right after a value in a flow mapping.
    """
    state = _flow_state(opened, "", None)
    j = i + 1
    while state.stack and j < len(lines):
        line = lines[j]
        body = line.lstrip(" \t")
        if state.quote is not None:
            if line.strip(" ") and _indent(line) <= key:
                return LayoutFault("a quoted value continued without indentation", offsets[j])
        elif body.startswith("#"):
            if line.startswith("#") and state.stack[-1] == "{" and state.ends_value:
                return LayoutFault("a comment at the margin right after a value in a flow mapping",
                                   offsets[j])
        elif body and _indent(line) <= key:
            closing = _indent(line) == key and len(state.stack) == 1 and body[0] in "]}"
            if not closing:
                return LayoutFault("a flow collection continued without indentation", offsets[j])
        state = _flow_state(line, state.stack, state.quote)
        j += 1
    return j


@dataclass(frozen=True)
class _FlowState:
    """Where one line of a flow collection leaves it."""

    stack: str  # the brackets still open, outermost first ('' once it is closed)
    quote: str | None  # the quote of a quoted value still open at the line's end
    last: str = ""  # the line's last character outside quotes and comments
    colon: bool = False  # the line holds a ':' outside quotes (a key and its value)

    @property
    def ends_value(self) -> bool:
        return self.last not in ("", ",", "{", "[", ":") and (self.colon or self.last in "]}")


def _flow_state(text: str, stack: str, quote: str | None) -> _FlowState:
    """The brackets open and the quote still open after ``text``, a line of flow content.

    Brackets inside quoted values and comments do not count; a quote opens a value only
    where a value starts (after '{', '[', ',', ':' or at the line's start), so the
    apostrophe of a plain ``it's`` does not.
    """
    prev = ""
    colon = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote is not None:
            if (ch == "\\" and quote == '"') or (ch == quote and quote == "'" and text[i + 1:i + 2] == "'"):
                i += 1
            elif ch == quote:
                quote, prev = None, ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            break
        elif ch in "\"'" and prev in _QUOTE_AFTER:
            quote = ch
        elif ch in "[{":
            stack += ch
        elif ch in "]}":
            stack = stack[:-1]
            if not stack:
                return _FlowState("", None)  # closed: what follows on the line is PyYAML's to judge
        colon |= quote is None and ch == ":"
        if quote is None and ch not in " \t":
            prev = ch
        i += 1
    return _FlowState(stack, quote, prev, colon)


__all__ = ["LayoutFault", "layout_fault"]
