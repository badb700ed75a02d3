"""YAML 1.2 through PyYAML, as the gateway's ``yaml`` package reads skill frontmatter.

PyYAML reads YAML 1.1; the gateway reads YAML 1.2 (core schema). They are made to
agree where a skill author notices: tabs as separators within a line but never as
indentation, core-schema scalars (``yes`` and ``2024-01-01`` are text), an unknown
tag keeps its value, an anchor may be defined again, ``<<`` is an ordinary key,
a key written twice is an error, and the indentation rules of yaml_layout.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.scanner import ScannerError

from skillsyncd.validation.frontmatter import check_expansion
from skillsyncd.validation.yaml_layout import layout_fault


@dataclass(frozen=True)
class YamlError:
    """Why the gateway's YAML refuses a block, and where."""

    code: str  # "implicit-key" for a ': ' inside a plain value, else "syntax"
    message: str
    index: int | None  # offset in the block


class _Loader12(yaml.SafeLoader):
    """PyYAML read as the gateway's YAML 1.2 reads skill frontmatter.

    Tabs separate tokens within a line but never indent; the core schema (no
    yes/no booleans, dates or merge keys); an anchor may be defined again; an
    unknown tag keeps the value it tags.
    """

    yaml_implicit_resolvers: dict[Any, Any] = {}
    """PyYAML's scanner with YAML 1.2's tabs: separators within a line, never indentation."""

    def scan_to_next_token(self) -> None:
        if self.index == 0 and self.peek() == "\ufeff":
            self.forward()
        while True:
            at_line_start = self.column == 0
            tab_indent = False
            while self.peek() in " \t":
                tab_indent |= at_line_start and self.peek() == "\t"
                self.forward()
            if self.peek() == "#":
                while self.peek() not in "\0\r\n\x85\u2028\u2029":
                    self.forward()
            if self._line_break():
                if not self.flow_level:
                    self.allow_simple_key = True
                continue
            if tab_indent and not self.flow_level and self.peek() != "\0":
                raise ScannerError(None, None, "tabs are not allowed as indentation",
                                   self.get_mark())
            return

    def scan_plain_spaces(self, indent: int, start_mark: Any) -> list[str]:
        # A tab inside or after a plain value is white space, as a space would be.
        length = 0
        while self.peek(length) in " \t":
            length += 1
        spaces = self.prefix(length)
        self.forward(length)
        if self.peek() not in "\r\n\x85\u2028\u2029":
            return [spaces] if spaces else []
        chunks: list[str] = []
        line_break = self._line_break()
        self.allow_simple_key = True
        breaks: list[str] = []
        while self.peek() in " \t\r\n\x85\u2028\u2029":
            if self.peek() in " \t":
                self._refuse_tab_indent()
                self.forward()
                continue
            if self._at_document_marker():
                return []
            breaks.append(self._line_break())
        if self._at_document_marker():
            return []
        if line_break != "\n" or not breaks:
            chunks.append(line_break if line_break != "\n" else " ")
        chunks.extend(breaks)
        return chunks

    def scan_flow_scalar_breaks(self, double: bool, start_mark: Any) -> list[str]:
        # A quoted value continued on a line indented with a tab: the gateway refuses it.
        chunks: list[str] = []
        while True:
            if self._at_document_marker():
                raise ScannerError("while scanning a quoted scalar", start_mark,
                                   "found unexpected document separator", self.get_mark())
            while self.peek() in " \t":
                self._refuse_tab_indent()
                self.forward()
            if self.peek() in "\r\n\x85\u2028\u2029":
                chunks.append(self._line_break())
            else:
                return chunks

    def _line_break(self) -> str:
        return str(self.scan_line_break())  # type: ignore[no-untyped-call]

    def _refuse_tab_indent(self) -> None:
        if self.peek() != "\t" or self.flow_level:
            return
        rest = 0
        while self.peek(rest) in " \t":
            rest += 1
        if self.peek(rest) not in "\0\r\n\x85\u2028\u2029#":
            raise ScannerError(None, None, "tabs are not allowed as indentation",
                               self.get_mark())

    def _at_document_marker(self) -> bool:
        head = self.prefix(3)
        return head in ("---", "...") and self.peek(3) in "\0 \t\r\n\x85\u2028\u2029"



    def flatten_mapping(self, node: MappingNode) -> None:
        return None  # '<<' is an ordinary key in YAML 1.2

    def construct_yaml_int(self, node: Node) -> int | str:  # type: ignore[override]
        text = str(node.value)
        try:
            if text.startswith("0o"):
                return int(text[2:], 8)
            if text.startswith("0x"):
                return int(text[2:], 16)
            return int(text)
        except ValueError:  # an explicit !!int on text: the gateway keeps the text
            return text

    def construct_yaml_float(self, node: Node) -> float | str:  # type: ignore[override]
        text = str(node.value).lower()
        if text.endswith("inf"):
            return -math.inf if text.startswith("-") else math.inf
        if text.endswith("nan"):
            return math.nan
        try:
            return float(text)
        except ValueError:
            return str(node.value)

    def construct_undefined(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            return self.construct_scalar(node)
        if isinstance(node, SequenceNode):
            return self.construct_sequence(node, deep=True)
        return self.construct_mapping(node, deep=True)  # type: ignore[arg-type]



    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        anchor = getattr(event, "anchor", None)
        if anchor is not None and not isinstance(event, yaml.AliasEvent):
            self.anchors.pop(anchor, None)
        return super().compose_node(parent, index)




_Loader12.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader12.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"))
_Loader12.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+.0123456789"))
_Loader12.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Loader12.add_constructor("tag:yaml.org,2002:int", _Loader12.construct_yaml_int)
_Loader12.add_constructor("tag:yaml.org,2002:float", _Loader12.construct_yaml_float)
_Loader12.add_constructor(None, _Loader12.construct_undefined)


def parse12(block: str) -> tuple[MappingNode | None, dict[Any, Any] | None, YamlError | None]:
    """The block's node tree and data as the gateway reads them, or why it refuses the block."""
    layout = layout_fault(block)
    if layout is not None:
        return None, None, YamlError("syntax", layout.message, layout.index)
    loader: _Loader12 | None = None
    try:
        loader = _Loader12(block)
        root = loader.get_single_node()
        if root is not None:
            check_expansion(root)  # an alias bomb is refused before anything expands it
        if not isinstance(root, MappingNode):
            return None, None, YamlError("root", "the frontmatter is not a 'key: value' mapping", None)
        duplicate = _duplicate_key(loader, root)
        if duplicate is not None:
            return None, None, duplicate
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = str(exc.problem or exc.context or "invalid YAML")
        code = "implicit-key" if "mapping values are not allowed" in problem else "syntax"
        return None, None, YamlError(code, problem, mark.index if mark is not None else None)
    except yaml.YAMLError as exc:
        return None, None, YamlError("syntax", str(exc).split("\n", 1)[0], getattr(exc, "position", None))
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        return None, None, YamlError("syntax", f"invalid value: {exc}", None)
    finally:
        if loader is not None:
            loader.dispose()
    return root, data if isinstance(data, dict) else None, None


def _duplicate_key(loader: _Loader12, node: Node, depth: int = 0) -> YamlError | None:
    """The first key written twice in one mapping, at any depth (the gateway refuses those)."""
    if depth > 64:
        return None
    if isinstance(node, SequenceNode):
        for child in node.value:
            found = _duplicate_key(loader, child, depth + 1)
            if found:
                return found
    if not isinstance(node, MappingNode):
        return None
    seen: set[tuple[str, Any]] = set()
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode):
            key = loader.construct_object(key_node)
            marker = (type(key).__name__ if isinstance(key, bool) else "value", key)
            try:
                if marker in seen:
                    return YamlError("syntax", f"key {key_node.value!r} appears twice",
                                     key_node.start_mark.index)
                seen.add(marker)
            except TypeError:
                pass
        found = _duplicate_key(loader, value_node, depth + 1)
        if found:
            return found
    return None


__all__ = ["YamlError", "parse12"]
