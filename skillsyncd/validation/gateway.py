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
what a skill author writes (validation/yaml12.py, with the indentation rules
of validation/yaml_layout.py); values become text as JavaScript prints them
(validation/jstext.py). ``make e2e`` runs the real OpenClaw parser over a
generated corpus and the user's repository and compares every verdict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from yaml.nodes import MappingNode

from skillsyncd.validation.frontmatter import FrontmatterError
from skillsyncd.validation.jstext import JS_SPACE, js_json, js_key, js_scalar, js_trim
from skillsyncd.validation.yaml12 import YamlError, parse12

MAX_SKILL_MD_BYTES = 256_000  # OpenClaw's skills.limits.maxSkillFileBytes default
RECOVERY_ROUNDS = 3  # one per free-text field the gateway recovers
FREE_TEXT_FIELDS = frozenset({"description", "read_when", "summary"})

_OPENING = re.compile(f"---[{JS_SPACE}]*\n")
_CLOSING = re.compile(f"(?:^|\n)---[{JS_SPACE}]*(?:\n|\\Z)")
_LINE_FIELD = re.compile(f"([A-Za-z0-9_-]+):[{JS_SPACE}]*([^\n\r\u2028\u2029]*)\\Z")
_RECOVERABLE_LINE = re.compile(
    f"(?:([A-Za-z0-9_-]+)|\"([A-Za-z0-9_-]+)\"|'([A-Za-z0-9_-]+)'):[{JS_SPACE}]*([^\n\r\u2028\u2029]*)\\Z"
)
_BLOCK_SCALAR = re.compile(r"[|>](?:[1-9][+-]?|[+-][1-9]?)?")


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


# --- YAML 1.2 through PyYAML


def _read_block(block: str, recovered: list[int]) -> tuple[dict[str, str], LoadProblem | None]:
    fallback = line_fields(block)
    current = block
    root, data, error = parse12(current)
    for _ in range(RECOVERY_ROUNDS):
        if error is None:
            break
        fixed, line = _recover(current, error)
        if fixed == current:
            break
        current = fixed
        recovered.append(line + 2)
        root, data, error = parse12(current)
    if error is not None or root is None or data is None:
        line = current.count("\n", 0, error.index) + 2 if error and error.index is not None else 2
        message = error.message if error else "the frontmatter is not a 'key: value' mapping"
        rule = "yaml.not-mapping" if error and error.code == "root" else "yaml.syntax"
        return {}, LoadProblem(rule, f"the gateway cannot read the frontmatter: {message}", line)
    return _as_text(current, root, data, fallback), None


def _recover(block: str, error: YamlError) -> tuple[str, int]:
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
    quoted = 2 if m.group(2) else 3 if m.group(3) else 0
    if quoted and _opens_block(block, start) and not _gateway_sees_mapping(block, start + m.end(quoted) + 1):
        return block, 0
    replacement = f"{key}: {json.dumps(_strip_quotes(raw), ensure_ascii=False)}"
    return block[:start] + replacement + block[end:], block.count("\n", 0, start)


def _opens_block(block: str, start: int) -> bool:
    """The line at ``start`` is the block's first entry (only blank and comment lines before it)."""
    return all(not line.strip(" \t") or line.lstrip(" \t").startswith("#")
               for line in block[:start].split("\n")[:-1])


def _gateway_sees_mapping(block: str, colon: int) -> bool:
    """Whether the gateway's YAML still reads a mapping from a first line like ``'key':value``.

    With no space after the colon, its lexer takes ``:value`` as a plain scalar after the
    quoted one; only when that scalar runs into a ``: `` (on its line or a later one) does
    the document become a mapping, and only a mapping is recovered by quoting the value.
    A comment or the end of the block ends the scalar first.
    """
    if block[colon + 1:colon + 2] in ("", " ", "\t", "\n"):
        return True  # an ordinary 'key: value'
    for i in range(colon + 1, len(block)):
        ch, nxt = block[i], block[i + 1:i + 2]
        if ch == ":" and nxt in ("", " ", "\t", "\n"):
            return True
        if ch in " \t\n" and nxt == "#":
            return False
    return False


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
        key = js_trim(js_key(raw_key))
        if not key or value is None:
            continue
        if isinstance(value, list | dict):
            if key in inline_colon and key in fallback:
                out[key] = fallback[key]
            else:
                out[key] = js_json(value)
        elif isinstance(value, str):
            out[key] = js_trim(value)
        else:
            out[key] = js_scalar(value)
    for key, value in fallback.items():
        out.setdefault(key, value)
    return out


__all__ = ["MAX_SKILL_MD_BYTES", "GatewayView", "LoadProblem", "line_fields", "view"]
