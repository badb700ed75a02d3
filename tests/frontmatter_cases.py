"""Generated SKILL.md frontmatter edge cases, for comparing our reading with the gateway's.

A strategy of whole SKILL.md files built from the shapes hand-written skills
take: quoting, ': ' inside values, tabs, BOM, CRLF/CR, missing and duplicate
keys, lists, nesting, flow collections over several lines (closed at the margin or
indented), empty and huge values, block scalars and stray indentation. Used by the
differential test against the real OpenClaw parser (tests/e2e) and by property tests
of our own parser (never raises).
"""

from __future__ import annotations

from hypothesis import strategies as st

KEYS = ("name", "description", "version", "license", "compatibility", "metadata", "summary",
        "read_when", "allowed-tools", "homepage", "x-note")
WORDS = ("review", "Handles the workflow", "deploy", "a", "Use it", "when asked", "über", "日本語",
         "x", "PDF tools", "v2", "emoji 🚀", "C++", "50%", "a-b_c")
SCALARS = ("1.10", "1.0", "2", "1e3", "0x10", "0o17", "017", "+1", ".5", ".inf", "-.INF", ".nan",
           "yes", "no", "on", "off", "true", "False", "null", "~", "Null", "2024-01-31",
           "2024-02-30", "12:30", "1_000", "0b101", "9007199254740993", "1e21", "1e-7",
           "123456789012345678901")
INDICATORS = ("@", "`", "%", "*", "&", "!", "|", ">", "[", "{", "'", '"', "-", "?", "#", ",", "]", "}")


@st.composite
def plain_text(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4))
    sep = draw(st.sampled_from((" ", ": ", " - ", ", ", " # ", ":", " #", "\t", "  ")))
    return sep.join(parts)


@st.composite
def value(draw: st.DrawFn, key: str) -> list[str]:
    """The text after 'key:' on its line, and any lines that belong to it."""
    kind = draw(st.integers(0, 28))  # 15 and up: ordinary text, so about half the values are plain
    if kind == 0:
        return [""]
    if kind == 1:
        return [" " + draw(st.sampled_from(SCALARS))]
    if kind == 2:
        return [" " + draw(st.sampled_from(INDICATORS)) + draw(plain_text())]
    if kind == 3:
        inner = draw(plain_text()).replace('"', "")
        esc = draw(st.sampled_from(("", "\\n", "\\t", "\\\"", "\\u00e9", "\\q")))
        return [f' "{inner}{esc}"' + draw(st.sampled_from(("", "", " # c", "x", " ")))]
    if kind == 4:
        inner = draw(plain_text()).replace("'", "''")
        return [f" '{inner}'" + draw(st.sampled_from(("", "", " # c", "x")))]
    if kind == 5:
        items = draw(st.lists(st.sampled_from(WORDS + SCALARS), min_size=0, max_size=3))
        return [" [" + ", ".join(items) + "]" + draw(st.sampled_from(("", "", " x")))]
    if kind == 6:
        items = draw(st.lists(st.sampled_from(WORDS + SCALARS), min_size=1, max_size=3))
        indent = draw(st.sampled_from(("  ", "", "    ", "\t", " ")))
        return [""] + [f"{indent}- {i}" for i in items]
    if kind == 7:
        subs = draw(st.lists(st.sampled_from(("version", "author", "tags", "name")), min_size=1, max_size=3))
        indent = draw(st.sampled_from(("  ", "  ", "    ", "\t", " ")))
        return [""] + [f"{indent}{s}: {draw(st.sampled_from(WORDS + SCALARS))}" for s in subs]
    if kind == 8:
        head = draw(st.sampled_from(("|", ">", "|-", ">+", "|2", ">-")))
        lines = draw(st.lists(plain_text(), min_size=0, max_size=3))
        indent = draw(st.sampled_from(("  ", "  ", "\t", " ", "")))
        return [" " + head] + [indent + ln for ln in lines]
    if kind == 9:
        first = draw(plain_text())
        more = draw(st.lists(plain_text(), min_size=1, max_size=2))
        indent = draw(st.sampled_from(("  ", " ", "\t", "")))
        return [" " + first] + [indent + m for m in more]
    if kind == 10:
        return [" {" + draw(st.sampled_from(("a: b", "a: b, c: d", "", "a", "a: [1, 2]"))) + "}"]
    if kind == 11:
        return [" " + "x" * draw(st.sampled_from((200, 5_000, 70_000)))]
    if kind == 12:
        tag = draw(st.sampled_from((" &a ", " *a", " !custom ", " !!str ", " !!int ")))
        return [tag + draw(plain_text())]
    if kind == 13:
        return [draw(st.sampled_from(("\t", " \t", "  ", ""))) + draw(plain_text())
                + draw(st.sampled_from(("", " ", "\t", "  # note")))]
    if kind == 14:
        return draw(flow_lines())
    return [" " + draw(plain_text())]


@st.composite
def flow_lines(draw: st.DrawFn) -> list[str]:
    """A flow collection over several lines: 'key: {' then items, its closer at the margin or
    indented, now and then a nested one (``metadata: {`` / ``  "clawdbot": {...}`` / ``}``)."""
    indent = draw(st.sampled_from(("  ",) * 4 + ("    ", "", " ", "\t")))
    if draw(st.booleans()):
        opener, closer = "[", "]"
        words = draw(st.lists(st.sampled_from(WORDS + SCALARS), min_size=1, max_size=3))
        items = [[indent + w] for w in words]
    else:
        opener, closer = "{", "}"
        keys = draw(st.lists(st.sampled_from(("clawdbot", "openclaw", "emoji", "a")), min_size=1,
                             max_size=3, unique=True))
        items = [[f'{indent}"{k}": {draw(st.sampled_from(FLOW_VALUES))}'] for k in keys]
        if draw(st.integers(0, 2)) == 0:  # one value a mapping of its own, over lines too
            inner = draw(st.sampled_from(("  ", "    ", "", "\t")))
            close = draw(st.sampled_from(("  ", "", " ", "\t")))
            items[-1] = [f'{indent}"{keys[-1]}": {{', f'{indent}{inner}"emoji": "x"', close + "}"]
    lines = [line for item in items[:-1] for line in [*item[:-1], item[-1] + ","]]
    lines += [*items[-1][:-1], items[-1][-1] + draw(st.sampled_from(("", "", ",")))]
    if draw(st.integers(0, 4)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(("", "# note", "  # note"))))
    closing = draw(st.sampled_from(("", "", "", "  ", " ", "\t", "    "))) + closer
    return [" " + opener, *lines, closing + draw(st.sampled_from(("",) * 6 + (" ", " # c", "x")))]


FLOW_VALUES = ('"x"', "1", '{"emoji": "🚀"}', "[a, b]", "'it''s'", '"a: b"', "true")


@st.composite
def frontmatter_block(draw: st.DrawFn) -> list[str]:
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=0, max_size=6, unique=True))
    if "description" not in keys and draw(st.integers(0, 3)) > 0:  # most skills have one
        keys.insert(draw(st.integers(0, len(keys))), "description")
    if draw(st.integers(0, 9)) == 0:  # now and then a key twice
        keys.append(draw(st.sampled_from(KEYS)))
    lines: list[str] = []
    for key in keys:
        written = draw(st.sampled_from((key,) * 8 + (f'"{key}"', f"'{key}'", f" {key}", f"\t{key}")))
        val = draw(value(key))
        lines.append(f"{written}:{val[0]}")
        lines.extend(val[1:])
        if draw(st.integers(0, 19)) == 0:
            lines.append(draw(st.sampled_from(("", "# comment", "  ", "\t", "---x", "...", "- stray"))))
    return lines


@st.composite
def skill_md(draw: st.DrawFn) -> bytes:
    lines = draw(frontmatter_block())
    opening = draw(st.sampled_from(("---",) * 6 + ("--- ", "---\t", "----", "")))
    closing = draw(st.sampled_from(("---",) * 6 + ("--- ", "", "----", "...")))
    body = draw(st.sampled_from(("# Title\nbody\n", "", "text: with colon\n", "---\nmore\n")))
    parts = ([opening] if opening else []) + lines + ([closing] if closing else []) + [body]
    text = "\n".join(parts)
    eol = draw(st.sampled_from(("\n", "\n", "\n", "\r\n", "\r")))
    text = text.replace("\n", eol)
    if draw(st.integers(0, 5)) == 0:
        text = "\ufeff" + text
    return text.encode("utf-8")
