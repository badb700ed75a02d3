"""The frontmatter parser: what it accepts, what it refuses, and that it only ever
raises FrontmatterError, quickly, whatever bytes it is given."""

from __future__ import annotations

import datetime
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skillsyncd.validation.frontmatter import (
    MAX_ALIASES,
    Frontmatter,
    FrontmatterError,
    parse,
    parse_flat,
    parse_yaml_full,
)


def err(data: bytes) -> FrontmatterError:
    with pytest.raises(FrontmatterError) as info:
        parse(data)
    return info.value


# --- accepted -----------------------------------------------------------------


def test_plain_frontmatter_and_body_line() -> None:
    fm = parse(b"---\nname: pdf\ndescription: Read PDFs\n---\n# PDF\n")
    assert fm.data == {"name": "pdf", "description": "Read PDFs"}
    assert fm.line("description") == 3
    assert fm.body_line == 5


def test_bom_and_crlf_tolerated() -> None:
    fm = parse(b"\xef\xbb\xbf---\r\nname: pdf\r\ndescription: x\r\n---\r\nbody\r\n")
    assert fm.data["name"] == "pdf"
    assert fm.line("description") == 3


def test_json_style_inline_frontmatter() -> None:
    fm = parse(b'---\n{"name": "a", "description": "b", "metadata": {"version": "1.0"}}\n---\n')
    assert fm.text("metadata", "version") == "1.0"


def test_closing_delimiter_may_have_trailing_spaces() -> None:
    assert parse(b"--- \nname: a\n---  \n").data == {"name": "a"}


def test_merge_keys_are_not_duplicates() -> None:
    fm = parse(b"---\nbase: &b {a: 1}\nc:\n  <<: *b\n  a: 2\n---\n")
    assert fm.data["c"] == {"a": 2}


def test_implicit_types_are_recorded_with_the_written_text() -> None:
    fm = parse(b"---\nname: yes\nversion: 1.10\nmetadata:\n  version: 2024-01-15\n---\n")
    assert fm.data["version"] == 1.1
    assert fm.text("version") == "1.10"
    assert fm.text("name") == "yes"
    c = fm.coercion("metadata", "version")
    assert c is not None and c.kind == "a date" and c.line == 5
    assert fm.data["metadata"]["version"] == datetime.date(2024, 1, 15)


def test_quoted_values_are_not_coercions() -> None:
    fm = parse(b'---\nversion: "1.10"\nname: \'yes\'\n---\n')
    assert fm.coercions == ()


# --- refused ------------------------------------------------------------------


def test_missing_opening_delimiter() -> None:
    e = err(b"# Title\n\nname: x\n")
    assert e.rule == "frontmatter.missing" and e.line == 1


def test_frontmatter_must_open_on_line_one() -> None:
    assert err(b"\n---\nname: x\n---\n").rule == "frontmatter.missing"


def test_unclosed_frontmatter() -> None:
    assert err(b"---\nname: x\ndescription: y\n").rule == "frontmatter.unclosed"


def test_nul_byte() -> None:
    e = err(b"---\nname: x\x00\n---\n")
    assert e.rule == "skill-md.nul" and e.line == 2


def test_not_utf8_names_the_line() -> None:
    e = err(b"---\nname: x\ndescription: caf\xe9\n---\n")
    assert e.rule == "skill-md.encoding" and e.line == 3


def test_duplicate_key_names_both_lines() -> None:
    e = err(b"---\nname: a\ndescription: d\nname: b\n---\n")
    assert e.rule == "yaml.duplicate-key" and e.line == 4 and "line 2" in e.message


def test_duplicate_key_in_flow_mapping_and_nested() -> None:
    assert err(b"---\n{a: 1, a: 2}\n---\n").rule == "yaml.duplicate-key"
    assert err(b"---\nmetadata:\n  v: 1\n  v: 2\n---\n").rule == "yaml.duplicate-key"


def test_unquoted_colon_in_description_gets_a_quoting_hint() -> None:
    e = err(b"---\nname: a\ndescription: Use this: when asked\n---\n")
    assert e.rule == "yaml.syntax" and e.line == 3 and "quoted" in e.message


def test_tabs_get_a_hint() -> None:
    assert "spaces" in err(b"---\nmetadata:\n\tversion: 1\n---\n").message


def test_python_tags_refused() -> None:
    e = err(b"---\nx: !!python/object/apply:os.system [ls]\n---\n")
    assert e.rule == "yaml.syntax"


def test_top_level_must_be_mapping() -> None:
    assert err(b"---\n- a\n- b\n---\n").rule == "yaml.not-mapping"
    assert err(b"---\njust text\n---\n").rule == "yaml.not-mapping"
    assert err(b"---\n---\n").rule == "yaml.not-mapping"


def test_impossible_date_is_a_syntax_error_not_a_crash() -> None:
    assert err(b"---\nupdated: 2024-02-30\n---\n").rule == "yaml.syntax"


def test_alias_bomb_fails_fast() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    start = time.monotonic()
    e = err(("---\n" + "\n".join(lines) + "\n---\n").encode())
    assert time.monotonic() - start < 30  # a hang, not a speed target: the bomb expands to 9**9 nodes
    assert e.rule == "yaml.limits" and "alias" in e.message


def test_too_many_aliases() -> None:
    body = "a: &a x\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    e = err(("---\n" + body + "---\n").encode())
    assert e.rule == "yaml.limits" and "aliases" in e.message


def test_recursive_alias() -> None:
    assert err(b"---\na: &a [*a]\n---\n").rule == "yaml.limits"


def test_deep_nesting() -> None:
    e = err(b"---\na: " + b"[" * 5000 + b"\n---\n")
    assert e.rule == "yaml.limits"


def test_a_few_aliases_are_fine() -> None:
    fm = parse(b"---\nbase: &b {x: 1}\none: *b\ntwo: *b\n---\n")
    assert fm.data["two"] == {"x": 1}


# --- properties -----------------------------------------------------------------

YAMLISH = st.lists(
    st.sampled_from([
        "---", "\n", "\r\n", ": ", "- ", "&a ", "*a", "[", "]", "{", "}", ",", "!!", "!x ",
        "? ", "|", ">", "'", '"', "#", "<<: ", "name", "description", "1.10", "yes", "~",
        "2024-02-30", "  ", "\t", "\x00", "\xef\xbb\xbf", "\\", "%YAML 1.1", "...",
    ]),
    max_size=60,
).map("".join)


def _parse_only_fails_cleanly(data: bytes) -> None:
    try:
        parse(data)
    except FrontmatterError as exc:
        assert exc.rule and exc.message


@settings(deadline=2000, max_examples=300)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_raise_frontmatter_error(data: bytes) -> None:
    _parse_only_fails_cleanly(data)


@settings(deadline=2000, max_examples=300)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_after_an_opening_line(data: bytes) -> None:
    _parse_only_fails_cleanly(b"---\n" + data + b"\n---\n")


@settings(deadline=2000, max_examples=500)
@given(YAMLISH)
def test_yaml_shaped_noise_only_raises_frontmatter_error(text: str) -> None:
    _parse_only_fails_cleanly(("---\n" + text + "\n---\n").encode("utf-8", "surrogatepass"))


def test_oversized_frontmatter_is_refused_before_parsing() -> None:
    """Past 256,000 characters (the gateway's whole-file cap) the YAML is not even scanned."""
    e = err(b"---\n" + b"".join(b"k%d: v\n" % i for i in range(40000)) + b"---\nbody\n")
    assert e.rule == "yaml.limits" and "256,000" in e.message


def test_long_body_is_not_parsed_as_yaml() -> None:
    fm = parse(b"---\nname: a\n---\n" + b"text: [\n" * 50000)
    assert fm.data == {"name": "a"}


# --- the flat fast path ---------------------------------------------------------------
#
# parse_flat may decline anything, but what it returns must be exactly what the full
# PyYAML parser returns for the same text: data, key lines and (no) coercions.

_KEYS = ["name", "description", "metadata", "version", "allowed-tools", "a_b", "on", "yes",
         "null", "Name", "x", "_", "1a", "<<", "k" * 130]
_VALUES = [
    "pdf", "Read PDF files.", "Use it: now", "Use it:now", "C# and F#", "a #b", "x:", "1.10",
    "1.0.0", "2024-01-15", "2024-02-30", "yes", "no", "~", "null", "=", "0x1F", "1_000", ".inf",
    "'q''s'", "'a'b'", "''", '""', '"dq"', '"a\\"b"', '"a\\\\b"', "\"x\" y", "'x' # c", "é ünï",
    "\xa0x", "-x", "- x", "?x", "*a", "&a x", "!!str x", "[a, b]", "{a: b}", "|", ">", "%x", "@x",
    "`x`", "say \"hi\"", "back\\slash", "...", "--- x", "a   b", "Bash(curl:*)", "x  ", "#c",
]
_TEXT_KEYS = ["name", "description", "metadata", "version", "allowed-tools", "a_b", "Name", "x", "_",
              "license", "On-call", "k" * 128]
_TEXT = ["pdf", "Read PDF files.", "Use it:now", "C# and F#", "1.0.0", "'q''s'", "'it''s: ok'", "''",
         '""', '"dq: # x"', "é ünï", "\xa0x", "say \"hi\"", "back\\slash", "...", "--- x", "a   b",
         "Bash(curl:*)", "x  ", "x=y", "v1", "a.b.c", "Yes please", "on-call", "null-safe", "1.0a"]
_INDENTS = ["", " ", "  ", "   ", "    "]
_SEPS = [": ", ":", ":  ", " : ", ":\t"]


@st.composite
def _flat_like(draw: st.DrawFn) -> str:
    out = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["kv", "kv", "kv", "parent", "item", "sub", "blank", "comment", "raw"]))
        indent = draw(st.sampled_from(_INDENTS))
        key, value = draw(st.sampled_from(_KEYS)), draw(st.sampled_from(_VALUES))
        if kind == "kv":
            out.append(f"{key}{draw(st.sampled_from(_SEPS))}{value}")
        elif kind == "parent":
            out.append(f"{key}:" + draw(st.sampled_from(["", "  "])))
        elif kind == "item":
            out.append(f"{indent}-{draw(st.sampled_from([' ', '  ', '']))}{value}")
        elif kind == "sub":
            out.append(f"{indent}{key}{draw(st.sampled_from(_SEPS))}{value}")
        elif kind == "blank":
            out.append(indent)
        elif kind == "comment":
            out.append(f"{indent}# note: {value}")
        else:
            out.append(draw(st.sampled_from(["---", "...", "%YAML 1.1", "\tx: y", "x: y\r", "x: \u2028y",
                                             "x: y\x85", "\ufeffx: y", "x: \x07"])))
    return "\n".join(out) + draw(st.sampled_from(["", "\n", "\n\n"]))


@st.composite
def _mostly_flat(draw: st.DrawFn) -> str:
    """Well-formed flat frontmatter with distinct keys, often with one line of _flat_like noise."""
    keys = draw(st.lists(st.sampled_from(_TEXT_KEYS), min_size=1, max_size=6, unique=True))
    out = []
    for key in keys:
        shape = draw(st.sampled_from(["kv", "kv", "map", "list"]))
        if shape == "kv":
            out.append(f"{key}: {draw(st.sampled_from(_TEXT))}")
            continue
        indent = draw(st.sampled_from(_INDENTS[1:]))
        out.append(f"{key}:")
        subs = draw(st.lists(st.sampled_from(_TEXT_KEYS), min_size=1, max_size=3,
                             unique=shape == "map"))
        for sub in subs:
            value = draw(st.sampled_from(_TEXT))
            out.append(f"{indent}- {value}" if shape == "list" else f"{indent}{sub}: {value}")
    if draw(st.booleans()):
        noise = draw(_flat_like()).split("\n")[0]
        out.insert(draw(st.integers(0, len(out))), noise)
    return "\n".join(out) + "\n"


def _full(source: str) -> Frontmatter | str:
    try:
        return parse_yaml_full(source)
    except FrontmatterError as exc:
        return exc.rule


@settings(deadline=2000, max_examples=800)
@given(st.one_of(_flat_like(), _mostly_flat()))
def test_fast_path_answers_only_what_pyyaml_would(source: str) -> None:
    fast = parse_flat(source)
    if fast is not None:
        assert fast == _full(source), source


@pytest.mark.parametrize("source", [
    "name: pdf\ndescription: Read PDF files. Use when asked.\nlicense: MIT\n",
    'name: a\ndescription: "Quoted: with a colon"\nmetadata:\n  version: "1.0"\n  author: me\n',
    "name: a\n# comment\n\ndescription: 'it''s'\nallowed-tools:\n  - Bash(curl:*)\n  - Read\n",
    "name: a\ndescription: é ünï — C# and \"quotes\"   \n",
])
def test_common_frontmatter_takes_the_fast_path(source: str) -> None:
    fast = parse_flat(source)
    assert fast is not None and fast == parse_yaml_full(source)


@pytest.mark.parametrize("source", [
    "name: a\nname: b\n",  # duplicate: the full parser names both lines
    "name: a\nversion: 1.10\n",  # implicit type: recorded as a coercion
    "name: yes\n",
    "a: &x y\nb: *x\n",  # aliases and their bounds
    "description: |\n  block\n",
    "description: Use it: now\n",
    "name: a\n\tb: c\n",
    "metadata:\n",
    "name: a\n  more\n",  # a continued plain scalar
])
def test_anything_unusual_goes_to_the_full_parser(source: str) -> None:
    assert parse_flat(source) is None


def test_parse_uses_the_fast_path_result() -> None:
    fm = parse(b"---\nname: a\nmetadata:\n  version: \"2\"\n---\nbody\n")
    assert fm == Frontmatter({"name": "a", "metadata": {"version": "2"}},
                             {"name": 2, "metadata": 3, "metadata.version": 4}, (), 6)
