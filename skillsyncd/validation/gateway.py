"""What the gateway itself makes of a SKILL.md: does it load, under which name and description.

The validation gate holds a skill back only when the gateway could not load it
(or it is unsafe), so "can load" must be decided the way OpenClaw decides it,
not by a stricter YAML reading of our own. OpenClaw (2026.9.6) reads a
SKILL.md like this, and this module follows it step by step:

1. a BOM is dropped and CRLF/CR become LF; a file over 256,000 bytes is skipped;
2. frontmatter is the text between a leading ``---`` line and the next ``---``
   line; no opening line means no frontmatter (and so no description), an
   opening line without a closing one is an error;
3. the block is read as YAML 1.2 (core schema: ``yes`` and ``2024-01-01`` are
   text, duplicate keys are an error); when that fails on a top-level
   ``description:`` line (or a ``summary:``/``read_when:`` line holding an
   unquoted ``: ``), the line's value is quoted and the block read again, up to
   three times; an error left after that means the skill is not loaded;
4. every top-level value becomes text: strings trimmed, numbers and booleans
   printed as JavaScript prints them, lists and mappings as JSON (or, for a
   mapping written inline after ``key:``, the line's raw text); a null or
   missing value falls back to a plain ``key: value`` reading of the lines;
5. the name is ``name`` or else the folder's name; a skill without a
   description is not loaded.

YAML is parsed with PyYAML, adjusted to YAML 1.2 where the two disagree on
what a skill author writes (tabs as separators, core-schema scalars, unknown
tags, no merge keys). ``make e2e`` runs the real OpenClaw parser over a
generated corpus and the user's repository and compares every verdict.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.scanner import ScannerError

from skillsyncd.validation.frontmatter import FrontmatterError, check_expansion

MAX_SKILL_MD_BYTES = 256_000  # OpenClaw's skills.limits.maxSkillFileBytes default
RECOVERY_ROUNDS = 3  # one per free-text field the gateway recovers
FREE_TEXT_FIELDS = frozenset({"description", "read_when", "summary"})

# JavaScript's \s without \n: what the gateway's delimiter and line patterns skip.
_JS_SPACE = "\t\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_JS_TRIM = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
_OPENING = re.compile(f"---[{_JS_SPACE}]*\n")
_CLOSING = re.compile(f"(?:^|\n)---[{_JS_SPACE}]*(?:\n|\\Z)")
_LINE_FIELD = re.compile(f"([A-Za-z0-9_-]+):[{_JS_SPACE}]*([^\n\r\u2028\u2029]*)\\Z")
_RECOVERABLE_LINE = re.compile(
    f"(?:([A-Za-z0-9_-]+)|\"([A-Za-z0-9_-]+)\"|'([A-Za-z0-9_-]+)'):[{_JS_SPACE}]*([^\n\r\u2028\u2029]*)\\Z"
)
_BLOCK_SCALAR = re.compile(r"[|>](?:[1-9][+-]?|[+-][1-9]?)?")


def js_trim(text: str) -> str:
    return text.strip(_JS_TRIM)


@dataclass(frozen=True)
class LoadProblem:
    """Why the gateway would not load a SKILL.md: a rule id, a message and the file line."""

    rule: str
    message: str
    line: int | None = None


@dataclass(frozen=True)
class GatewayView:
    """The gateway's reading of one SKILL.md."""

    name: str
    description: str | None
    fields: Mapping[str, str] = field(default_factory=dict)
    problem: LoadProblem | None = None
    recovered_lines: tuple[int, ...] = ()  # file lines the gateway had to quote to read

    @property
    def loads(self) -> bool:
        return self.problem is None


def view(data: bytes, folder: str) -> GatewayView:
    """The gateway's verdict on SKILL.md ``data`` in a folder named ``folder``. Never raises."""
    fallback_name = js_trim(folder)
    if len(data) > MAX_SKILL_MD_BYTES:
        return GatewayView(fallback_name, None, problem=LoadProblem(
            "size.skill-md",
            f"SKILL.md is {len(data):,} bytes; the gateway skips one over {MAX_SKILL_MD_BYTES:,}"))
    text = data.decode("utf-8", "replace")
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    opening = _OPENING.match(text)
    if opening is None:
        fields: dict[str, str] = {}
        problem = LoadProblem(
            "frontmatter.missing",
            "SKILL.md does not start with a '---' line, so the gateway finds no description in it",
            1)
        return GatewayView(fallback_name, None, fields, problem)
    tail = text[opening.end():]
    closing = _CLOSING.search(tail)
    if closing is None:
        return GatewayView(fallback_name, None, problem=LoadProblem(
            "frontmatter.unclosed",
            "the frontmatter opened on line 1 is never closed by a '---' line; the gateway skips it", 1))
    block = tail[:closing.start()]
    recovered: list[int] = []
    fields = {}
    if block:
        try:
            fields, error = _read_block(block, recovered)
        except FrontmatterError as exc:  # the bounds that protect this host: not a gateway verdict
            error = LoadProblem(exc.rule, exc.message, exc.line)
        except RecursionError:
            error = LoadProblem("yaml.limits", "the frontmatter nests too deeply to read", 2)
        if error is not None:
            return GatewayView(fallback_name, None, problem=error, recovered_lines=tuple(recovered))
    name = js_trim(fields.get("name", "")) or fallback_name
    description = js_trim(fields.get("description", "")) or None
    missing: LoadProblem | None = None
    if description is None:
        where = "is empty" if "description" in fields or _mentions(block, "description") else "is missing"
        missing = LoadProblem("field.required",
                              f"description {where}: the gateway skips a skill without one",
                              _key_line(block, "description") or 2)
    return GatewayView(name, description, fields, missing, tuple(recovered))


def _mentions(block: str, key: str) -> bool:
    return _key_line(block, key) is not None


def _key_line(block: str, key: str) -> int | None:
    """File line of a top-level ``key:`` in the block (line 1 of the file is the opening '---')."""
    for n, line in enumerate(block.split("\n"), start=2):
        if line.startswith(f"{key}:"):
            return n
    return None


def line_fields(block: str) -> dict[str, str]:
    """The gateway's plain reading of ``key: value`` lines, used where YAML gives nothing."""
    out: dict[str, str] = {}
    lines = block.split("\n")
    i = 0
    while i < len(lines):
        m = _LINE_FIELD.match(lines[i])
        if m is not None:
            key, value = m.group(1), js_trim(m.group(2))
            if not value and i + 1 < len(lines) and lines[i + 1][:1] in (" ", "\t"):
                gathered = []
                while i + 1 < len(lines) and (lines[i + 1] == "" or lines[i + 1][:1] in (" ", "\t")):
                    gathered.append(lines[i + 1])
                    i += 1
                value = js_trim("\n".join(gathered))
            else:
                value = _strip_quotes(value)
            if value:
                out[key] = value
        i += 1
    return out


def _strip_quotes(value: str) -> str:
    if len(value) >= 1 and value[0] in "\"'" and value[-1] == value[0]:
        return value[1:-1]
    return value


# --- YAML 1.2 through PyYAML --------------------------------------------------------


@dataclass(frozen=True)
class _YamlError:
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


_KEY_ONLY = re.compile(r"( *)[^\s#][^#]*:[ \t]*\Z")
_BLOCK_HEAD = re.compile(r"( *)[^\s#].*:[ \t]+[|>][0-9+-]*[ \t]*(?:#.*)?\Z")
_FLOW_OPEN = re.compile(r"( *)(?:- +)?[^\s#\[{][^#]*?:[ \t]+([\[{])")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _blank(line: str) -> bool:
    return not line.strip(" \t")


def _balance(line: str) -> int:
    return line.count("{") + line.count("[") - line.count("}") - line.count("]")


def _layout_error(block: str) -> _YamlError | None:
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
                    return _YamlError("syntax", "a tab in a block scalar's blank line", offsets[j])
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
                    return _YamlError("syntax", "tabs are not allowed as indentation", offsets[tabbed])
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
                    return _YamlError("syntax", "a flow collection continued without indentation",
                                      offsets[j])
                depth += nxt.count(opener) - nxt.count(closer)
                j += 1
    return None


def _parse12(block: str) -> tuple[MappingNode | None, dict[Any, Any] | None, _YamlError | None]:
    layout = _layout_error(block)
    if layout is not None:
        return None, None, layout
    loader: _Loader12 | None = None
    try:
        loader = _Loader12(block)
        root = loader.get_single_node()
        if root is not None:
            check_expansion(root)  # an alias bomb is refused before anything expands it
        if not isinstance(root, MappingNode):
            return None, None, _YamlError("root", "the frontmatter is not a 'key: value' mapping", None)
        duplicate = _duplicate_key(loader, root)
        if duplicate is not None:
            return None, None, duplicate
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = str(exc.problem or exc.context or "invalid YAML")
        code = "implicit-key" if "mapping values are not allowed" in problem else "syntax"
        return None, None, _YamlError(code, problem, mark.index if mark is not None else None)
    except yaml.YAMLError as exc:
        return None, None, _YamlError("syntax", str(exc).split("\n", 1)[0], getattr(exc, "position", None))
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        return None, None, _YamlError("syntax", f"invalid value: {exc}", None)
    finally:
        if loader is not None:
            loader.dispose()
    return root, data if isinstance(data, dict) else None, None


def _duplicate_key(loader: _Loader12, node: Node, depth: int = 0) -> _YamlError | None:
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
                    return _YamlError("syntax", f"key {key_node.value!r} appears twice",
                                      key_node.start_mark.index)
                seen.add(marker)
            except TypeError:
                pass
        found = _duplicate_key(loader, value_node, depth + 1)
        if found:
            return found
    return None


def _read_block(block: str, recovered: list[int]) -> tuple[dict[str, str], LoadProblem | None]:
    fallback = line_fields(block)
    current = block
    root, data, error = _parse12(current)
    for _ in range(RECOVERY_ROUNDS):
        if error is None:
            break
        fixed, line = _recover(current, error)
        if fixed == current:
            break
        current = fixed
        recovered.append(line + 2)
        root, data, error = _parse12(current)
    if error is not None or root is None or data is None:
        line = current.count("\n", 0, error.index) + 2 if error and error.index is not None else 2
        message = error.message if error else "the frontmatter is not a 'key: value' mapping"
        rule = "yaml.not-mapping" if error and error.code == "root" else "yaml.syntax"
        return {}, LoadProblem(rule, f"the gateway cannot read the frontmatter: {message}", line)
    return _as_text(current, root, data, fallback), None


def _recover(block: str, error: _YamlError) -> tuple[str, int]:
    """Quote the value of a free-text line the gateway would quote, or return the block as is."""
    if error.index is None:
        return block, 0
    pos = min(error.index, len(block))
    start = block.rfind("\n", 0, pos) + 1 if pos > 0 else 0
    if pos < len(block) and block[pos] == "\n" and pos > 0:
        start = block.rfind("\n", 0, pos) + 1
    end = block.find("\n", pos)
    end = len(block) if end == -1 else end
    line = block[start:end]
    m = _RECOVERABLE_LINE.match(line)
    if m is None:
        return block, 0
    key = m.group(1) or m.group(2) or m.group(3)
    raw = js_trim(m.group(4))
    colon_text = error.code == "implicit-key" and ": " in raw
    if (not raw or key not in FREE_TEXT_FIELDS or (key != "description" and not colon_text)
            or _BLOCK_SCALAR.fullmatch(raw)):
        return block, 0
    replacement = f"{key}: {json.dumps(_strip_quotes(raw), ensure_ascii=False)}"
    return block[:start] + replacement + block[end:], block.count("\n", 0, start)


def _as_text(
    block: str, root: MappingNode, data: dict[Any, Any], fallback: Mapping[str, str]
) -> dict[str, str]:
    inline_colon: set[str] = set()
    for key_node, _ in root.value:
        start = key_node.start_mark.index
        end = block.find("\n", start)
        m = _LINE_FIELD.match(block[start: len(block) if end == -1 else end])
        if m is not None and ":" in m.group(2):
            inline_colon.add(m.group(1))
    out: dict[str, str] = {}
    for raw_key, value in data.items():
        key = js_trim(_js_key(raw_key))
        if not key or value is None:
            continue
        if isinstance(value, list | dict):
            if key in inline_colon and key in fallback:
                out[key] = fallback[key]
            else:
                out[key] = _js_json(value)
        elif isinstance(value, str):
            out[key] = js_trim(value)
        else:
            out[key] = _js_scalar(value)
    for key, value in fallback.items():
        out.setdefault(key, value)
    return out


def _js_key(key: Any) -> str:
    if key is None:
        return ""
    if isinstance(key, str):
        return key
    if isinstance(key, list | dict):
        return _js_json(key)
    return _js_scalar(key)


def _js_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return js_number(float(value)) if isinstance(value, float) or abs(value) >= 2**53 else str(value)
    if isinstance(value, bytes):
        return json.dumps({"type": "Buffer", "data": list(value)}, separators=(",", ":"))
    return str(value)


def js_number(x: float) -> str:
    """``String(x)`` in JavaScript: integers without '.0', exponents only from 1e21 or below 1e-6."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    text = repr(x)
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    digits = Decimal(text)
    magnitude = digits.adjusted()
    if -7 < magnitude < 21:
        plain = format(digits, "f")
        if "." in plain:
            plain = plain.rstrip("0").rstrip(".")
        return plain
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    if not exp_text:  # repr gave positional digits: rebuild the exponent form
        sign = "-" if x < 0 else ""
        raw = format(abs(digits), "e")
        mant, _, exp = raw.partition("e")
        mant = mant.rstrip("0").rstrip(".")
        return f"{sign}{mant}e{'+' if int(exp) > 0 else '-'}{abs(int(exp))}"
    return f"{mantissa}e{'+' if exponent > 0 else '-'}{abs(exponent)}"


def _js_json(value: Any) -> str:
    """``JSON.stringify(value)``: JavaScript's number forms, no spaces."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{_js_json(_js_key(k))}:{_js_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_js_json(v) for v in value) + "]"
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "null"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return _js_scalar(value)
    if isinstance(value, bytes):
        return _js_scalar(value)
    return json.dumps(str(value), ensure_ascii=False)


__all__ = ["MAX_SKILL_MD_BYTES", "GatewayView", "LoadProblem", "js_number", "js_trim", "line_fields", "view"]
