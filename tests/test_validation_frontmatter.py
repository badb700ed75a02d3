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
    FrontmatterError,
    parse,
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
    assert time.monotonic() - start < 1
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
    start = time.monotonic()
    e = err(b"---\n" + b"".join(b"k%d: v\n" % i for i in range(20000)) + b"---\nbody\n")
    assert e.rule == "yaml.limits" and time.monotonic() - start < 0.5


def test_long_body_is_not_parsed_as_yaml() -> None:
    fm = parse(b"---\nname: a\n---\n" + b"text: [\n" * 50000)
    assert fm.data == {"name": "a"}
