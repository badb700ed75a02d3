"""Split SKILL.md into frontmatter and body, and parse the YAML safely.

The parser is the one place that touches untrusted YAML, so it is defensive:
a SafeLoader subclass (no Python tags), duplicate keys refused, aliases,
nodes, nesting and alias *expansion* bounded so an alias bomb fails in
milliseconds, and every failure surfaces as :class:`FrontmatterError` (the
only exception :func:`parse` raises). It also records which plain scalars
YAML 1.1 silently turned into numbers, bools or dates: the gateway reads
YAML 1.2, where ``name: yes`` is a string, and ``version: 1.10`` must not
become ``1.1`` in a manifest.

PyYAML's pure-Python scanner costs ~0.2 ms per SKILL.md, most of a first
sync's validation. Nearly all frontmatter is a handful of ``key: text`` lines,
so :func:`parse_flat` reads that shape directly and answers only when the
result is certain to be what PyYAML gives (all values text, no duplicate,
alias, tag, block scalar or escape); anything else, including every error, goes
through the full parser. libyaml (``CSafeLoader``) is not used: it accepts
tabs and other input the pure parser refuses, so its answers would differ.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

MAX_ALIASES = 1_000
MAX_NODES = 100_000
MAX_DEPTH = 64
MAX_EXPANDED = 100_000  # nodes after expanding every alias
MAX_CHARS = 256_000  # the gateway reads frontmatter up to its SKILL.md cap; so do we

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_IMPLICIT = {
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a float",
    "tag:yaml.org,2002:timestamp": "a date",
}


class FrontmatterError(Exception):
    """SKILL.md cannot be read as frontmatter + body; carries the rule id and file line."""

    def __init__(self, rule: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.line = line


@dataclass(frozen=True)
class Coercion:
    """A plain scalar YAML read as another type; ``text`` is what the author wrote."""

    key: tuple[str, ...]
    text: str
    kind: str
    line: int


@dataclass(frozen=True)
class Frontmatter:
    data: Mapping[Any, Any]
    lines: Mapping[str, int] = field(default_factory=dict)  # "name", "metadata.version" -> line
    coercions: tuple[Coercion, ...] = ()
    body_line: int = 1

    def coercion(self, *key: str) -> Coercion | None:
        return next((c for c in self.coercions if c.key == key), None)

    def text(self, *key: str) -> Any:
        """The value at ``key`` as the author wrote it: a coerced scalar comes back as its text."""
        c = self.coercion(*key)
        if c is not None:
            return c.text
        value: Any = self.data
        for part in key:
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
        return value

    def line(self, *key: str) -> int | None:
        return self.lines.get(".".join(key))


def decode(data: bytes) -> str:
    """SKILL.md bytes to text: UTF-8, a BOM and CRLF tolerated, NUL refused."""
    nul = data.find(b"\0")
    if nul >= 0:
        raise FrontmatterError(
            "skill-md.nul", "SKILL.md contains a NUL byte: it is binary, not markdown",
            data.count(b"\n", 0, nul) + 1,
        )
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrontmatterError(
            "skill-md.encoding",
            f"SKILL.md is not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "re-save it as UTF-8",
            data.count(b"\n", 0, exc.start) + 1,
        ) from None
    return text.replace("\r\n", "\n")


def split(text: str) -> tuple[str, int]:
    """The YAML between the opening and closing '---' lines, and the body's first line."""
    lines = text.split("\n")
    if lines[0].rstrip(" \t\r") != "---":
        raise FrontmatterError(
            "frontmatter.missing",
            "SKILL.md must start with a '---' line opening the YAML frontmatter "
            "(name, description); the gateway skips a skill without it",
            1,
        )
    for i in range(1, len(lines)):
        if lines[i].rstrip(" \t\r") == "---":
            return "\n".join(lines[1:i]), i + 2
    raise FrontmatterError(
        "frontmatter.unclosed", "the frontmatter opened on line 1 is never closed by a '---' line", 1
    )


class _Loader(yaml.SafeLoader):
    """SafeLoader that counts what it composes, so hostile YAML stops early."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.nodes = 0
        self.depth = 0

    def _mark(self) -> Any:
        return self.peek_event().start_mark  # type: ignore[no-untyped-call]

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _limit(f"more than {MAX_ALIASES} aliases", self._mark())
        else:
            self.nodes += 1
            if self.nodes > MAX_NODES:
                raise _limit(f"more than {MAX_NODES} YAML nodes", self._mark())
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _limit(f"nesting deeper than {MAX_DEPTH} levels", self._mark())
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_FIRST_LINE = 2  # YAML line 0 is file line 2 (line 1 is the opening '---')


def _limit(what: str, mark: Any = None) -> FrontmatterError:
    line = mark.line + _FIRST_LINE if mark is not None else None
    return FrontmatterError(
        "yaml.limits", f"frontmatter has {what}; refusing it (an alias bomb or generated YAML?)", line
    )


def _children(node: Node) -> Iterator[Node]:
    if isinstance(node, SequenceNode):
        yield from node.value
    elif isinstance(node, MappingNode):
        for k, v in node.value:
            yield k
            yield v


def check_expansion(root: Node) -> None:
    """Size of the document with every alias expanded, computed without expanding it."""
    size: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if done:
            open_.discard(nid)
            size[nid] = min(MAX_EXPANDED + 1, 1 + sum(size[id(c)] for c in _children(node)))
            continue
        if nid in size:
            continue
        open_.add(nid)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_:
                raise _limit("a recursive alias (a node containing itself)", child.start_mark)
            if id(child) not in size:
                stack.append((child, False))
    if size[id(root)] > MAX_EXPANDED:
        raise _limit(f"more than {MAX_EXPANDED} nodes once aliases are expanded")


def _check_duplicates(loader: _Loader, root: Node) -> None:
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        stack.extend(_children(node))
        if not isinstance(node, MappingNode):
            continue
        keys: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE:
                continue
            key = loader.construct_object(key_node)
            try:
                first = keys.get(key)
            except TypeError:
                continue
            if first is None:
                keys[key] = key_node.start_mark.line
            else:
                raise FrontmatterError(
                    "yaml.duplicate-key",
                    f"key {key_node.value!r} appears twice (first on line {first + _FIRST_LINE}); "
                    "YAML keeps only the last one, so one of them is silently lost",
                    key_node.start_mark.line + _FIRST_LINE,
                )


def _plain_coercion(path: tuple[str, ...], node: Node) -> Coercion | None:
    if isinstance(node, ScalarNode) and node.style is None and node.tag in _IMPLICIT:
        return Coercion(path, node.value, _IMPLICIT[node.tag], node.start_mark.line + _FIRST_LINE)
    return None


def _survey(root: MappingNode) -> tuple[dict[str, int], list[Coercion]]:
    """Lines of top-level keys and of keys one level below, and coerced plain scalars there."""
    lines: dict[str, int] = {}
    coercions: list[Coercion] = []
    for key_node, value_node in root.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
            continue
        key = key_node.value
        lines.setdefault(key, key_node.start_mark.line + _FIRST_LINE)
        c = _plain_coercion((key,), value_node)
        if c:
            coercions.append(c)
        if isinstance(value_node, MappingNode):
            for sub_key, sub_value in value_node.value:
                if not isinstance(sub_key, ScalarNode) or sub_key.tag != _STR:
                    continue
                lines.setdefault(f"{key}.{sub_key.value}", sub_key.start_mark.line + _FIRST_LINE)
                c = _plain_coercion((key, sub_key.value), sub_value)
                if c:
                    coercions.append(c)
    return lines, coercions


def _hint(problem: str) -> str:
    if "mapping values are not allowed" in problem:
        return "; a value containing ': ' must be quoted, e.g. description: \"Use it: when ...\""
    if "'\\t'" in problem:
        return "; YAML indentation must use spaces, not tabs"
    if "could not determine a constructor" in problem:
        return "; custom YAML tags (!...) are not allowed"
    return ""


def parse_yaml(source: str) -> Frontmatter:
    """Parse frontmatter YAML (no '---' lines); file lines assume it starts on line 2."""
    if len(source) > MAX_CHARS:
        raise _limit(f"{len(source):,} characters of YAML (more than {MAX_CHARS:,})")
    fast = parse_flat(source)
    return fast if fast is not None else parse_yaml_full(source)


# --- the fast path ------------------------------------------------------------------
#
# Accepted: top-level ``key: value`` lines at column 0; a ``key:`` line followed by
# equally indented ``sub: value`` lines (one level) or ``- value`` lines; blank and
# comment lines. A value is single-line plain text that YAML 1.1 resolves to a
# string, or a quoted string without escapes. Everything else returns None.

# Characters PyYAML's reader accepts, minus the ones with a meaning this path does
# not model: tab, CR, NEL, LS, PS (line breaks or separators) and a BOM.
_FLAT_UNSAFE = re.compile(
    "[^\n\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029\ufeff]"
)
_FLAT_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_-]{0,127}):(?: +(.*))?")
_FLAT_ITEM = re.compile(r"- +(.*)")
_PLAIN_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_RESOLVER = Resolver()


def _plain_is_text(value: str) -> bool:
    return bool(_RESOLVER.resolve(ScalarNode, value, (True, False)) == _STR)  # type: ignore[no-untyped-call]


def _flat_scalar(raw: str | None) -> str | None:
    """One-line value as PyYAML reads it, or None when it is not certainly a plain string."""
    if raw is None:
        return None
    text = raw.rstrip(" ")
    if not text:
        return None
    first = text[0]
    if first == '"':
        inner = text[1:-1]
        ok = len(text) >= 2 and text[-1] == '"' and '"' not in inner and "\\" not in inner
        return inner if ok else None
    if first == "'":
        inner = text[1:-1]
        ok = len(text) >= 2 and text[-1] == "'" and "'" not in inner.replace("''", "")
        return inner.replace("''", "'") if ok else None
    if first in _PLAIN_INDICATORS or ": " in text or text[-1] == ":" or " #" in text:
        return None
    return text if _plain_is_text(text) else None


def _flat_key(line: str) -> tuple[str, str | None] | None:
    m = _FLAT_KEY.fullmatch(line)
    if m is None or not _plain_is_text(m.group(1)):
        return None
    return m.group(1), m.group(2)


class _FlatReader:
    """The state of :func:`parse_flat` line by line; each step answers False to give up."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.lines: dict[str, int] = {}
        self.parent: str | None = None  # a top-level key whose value is the indented block below it
        self.block: dict[str, Any] | list[Any] | None = None
        self.indent = 0

    def top(self, line: str, n: int) -> bool:
        """A 'key: value' or bare 'key:' line at the left margin."""
        if self.parent is not None and self.block is None:
            return False  # 'key:' with nothing under it is null, not text
        self.parent, self.block = None, None
        kv = _flat_key(line)
        if kv is None or kv[0] in self.data:
            return False
        key, raw = kv
        self.lines[key] = n
        if raw is None or not raw.strip(" "):
            self.parent = key
            return True
        value = _flat_scalar(raw)
        if value is None:
            return False
        self.data[key] = value
        return True

    def nested(self, body: str, depth: int, n: int) -> bool:
        """An indented line: one item or 'key: value' of the block under the last bare key."""
        if self.parent is None:
            return False  # an indented line that continues a value or opens a deeper level
        if self.block is None:
            self.indent = depth
            self.block = [] if body.startswith("-") else {}
            self.data[self.parent] = self.block
        elif depth != self.indent:
            return False
        if isinstance(self.block, list):
            m = _FLAT_ITEM.fullmatch(body)
            item = _flat_scalar(m.group(1)) if m else None
            if item is not None:
                self.block.append(item)
            return item is not None
        kv = _flat_key(body)
        if kv is None or kv[0] in self.block:
            return False
        sub, raw = kv
        value = _flat_scalar(raw)
        if value is None:
            return False
        self.block[sub] = value
        self.lines[f"{self.parent}.{sub}"] = n
        return True

    def result(self) -> Frontmatter | None:
        if not self.data or (self.parent is not None and self.block is None):
            return None
        return Frontmatter(data=self.data, lines=self.lines)


def parse_flat(source: str) -> Frontmatter | None:
    """The common flat frontmatter without PyYAML, or None to use :func:`parse_yaml_full`.

    When this returns a Frontmatter it equals what :func:`parse_yaml_full` returns
    for the same text (tests/test_validation_frontmatter.py checks this property).
    """
    if _FLAT_UNSAFE.search(source):
        return None
    reader = _FlatReader()
    for n, line in enumerate(source.split("\n"), start=_FIRST_LINE):
        body = line.lstrip(" ")
        if not body or body[0] == "#":
            continue  # blank or comment line
        depth = len(line) - len(body)
        if not (reader.top(line, n) if depth == 0 else reader.nested(body, depth, n)):
            return None
    return reader.result()


def parse_yaml_full(source: str) -> Frontmatter:
    """Any frontmatter YAML, through PyYAML's pure-Python SafeLoader and every bound above."""
    if len(source) > MAX_CHARS:
        raise _limit(f"{len(source):,} characters of YAML (more than {MAX_CHARS:,})")
    loader: _Loader | None = None
    try:
        loader = _Loader(source)  # the reader already rejects control characters here
        root = loader.get_single_node()
        if root is None:
            raise FrontmatterError("yaml.not-mapping", "the frontmatter is empty", 1)
        check_expansion(root)
        _check_duplicates(loader, root)
        if not isinstance(root, MappingNode):
            raise FrontmatterError(
                "yaml.not-mapping",
                "the frontmatter must be a mapping of 'key: value' lines, not "
                + ("a list" if isinstance(root, SequenceNode) else "a single value"),
                root.start_mark.line + _FIRST_LINE,
            )
        lines, coercions = _survey(root)
        data = loader.construct_document(root)
    except FrontmatterError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = str(exc.problem or exc.context or "invalid YAML")
        raise FrontmatterError(
            "yaml.syntax", f"invalid YAML: {problem}{_hint(problem)}",
            mark.line + _FIRST_LINE if mark is not None else None,
        ) from None
    except yaml.reader.ReaderError as exc:
        raise FrontmatterError(
            "yaml.syntax",
            f"invalid YAML: control character #x{exc.character:04x} is not allowed; remove it",
            source.count("\n", 0, exc.position) + _FIRST_LINE,
        ) from None
    except yaml.YAMLError as exc:
        raise FrontmatterError("yaml.syntax", f"invalid YAML: {exc}") from None
    except (ValueError, TypeError, OverflowError) as exc:
        # e.g. a date that matches the timestamp pattern but does not exist (2024-02-30)
        raise FrontmatterError("yaml.syntax", f"invalid YAML value: {exc}") from None
    except RecursionError:
        raise _limit("structure too deep to construct") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict):  # pragma: no cover - root is a MappingNode
        raise FrontmatterError("yaml.not-mapping", "the frontmatter must be a mapping", 2)
    return Frontmatter(data=data, lines=lines, coercions=tuple(coercions))


def parse(data: bytes) -> Frontmatter:
    """SKILL.md bytes to a Frontmatter; raises only FrontmatterError."""
    try:
        source, body_line = split(decode(data))
        fm = parse_yaml(source)
    except FrontmatterError:
        raise
    except RecursionError:
        raise _limit("structure too deep to parse") from None
    return Frontmatter(fm.data, fm.lines, fm.coercions, body_line)
