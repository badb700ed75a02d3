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
_FLOW_OPEN = re.compile(r"( *)(?:- +)?[^\s#\[{][^#]*?:[ \t]+([\[{])")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _blank(line: str) -> bool:
    return not line.strip(" \t")


def _balance(line: str) -> int:
    return line.count("{") + line.count("[") - line.count("}") - line.count("]")


def layout_fault(block: str) -> LayoutFault | None:
    """Indentation the gateway's YAML refuses and PyYAML accepts, judged line by line.

    A whitespace line holding a tab inside a block scalar, or between a bare
    'key:' and a line that is not indented under it; a flow collection ('[' or
    '{') continued on a line not indented past its key.
    """
    lines = block.split("\n")
    offsets = [0]
    for line in lines[:-1]:
        offsets.append(offsets[-1] + len(line) + 1)
    inside = 0  # open brackets of a flow collection begun on an earlier line: its lines are flow
    for i, line in enumerate(lines):
        if inside > 0:
            inside += _balance(line)
            continue
        if line.lstrip(" ").startswith(("{", "[")) or _FLOW_OPEN.match(line):
            inside = max(0, _balance(line))
        head = _BLOCK_HEAD.match(line)
        if head is not None:
            for j in range(i + 1, len(lines)):
                nxt = lines[j]
                if not _blank(nxt) and _indent(nxt) <= len(head.group(1)):
                    break
                if _blank(nxt) and "\t" in nxt:
                    return LayoutFault("a tab in a block scalar's blank line", offsets[j])
            continue
        key_only = _KEY_ONLY.match(line)
        if key_only is not None:
            tabbed = None
            for j in range(i + 1, len(lines)):
                nxt = lines[j]
                if _blank(nxt):
                    if nxt.startswith("\t") and tabbed is None:
                        tabbed = j
                    continue
                if tabbed is not None and (_indent(nxt) <= len(key_only.group(1))
                                           or nxt.lstrip(" ").startswith("\t")):
                    return LayoutFault("tabs are not allowed as indentation", offsets[tabbed])
                break
            continue
        flow = _FLOW_OPEN.match(line)
        if flow is not None:
            opener = flow.group(2)
            closer = "]" if opener == "[" else "}"
            depth = line.count(opener) - line.count(closer)
            j = i + 1
            while depth > 0 and j < len(lines):
                nxt = lines[j]
                if not _blank(nxt) and (_indent(nxt) <= len(flow.group(1)) or nxt.startswith("\t")):
                    return LayoutFault("a flow collection continued without indentation",
                                      offsets[j])
                depth += nxt.count(opener) - nxt.count(closer)
                j += 1
    return None


__all__ = ["LayoutFault", "layout_fault"]
