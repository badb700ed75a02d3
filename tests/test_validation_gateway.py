"""What the gateway makes of a flow collection continued over several lines (issue 29 item 18).

The gateway's ``yaml`` (2.9.0, in OpenClaw 2026.9.6) lets the outermost ']' or '}' stand at
its key's own column, so ``metadata: {`` ... ``}`` at the margin loads, while content at or
left of the key's column, an inner bracket there, or a quoted value continued there does
not. Each verdict here is what the real parser said for the same text;
tests/e2e/test_openclaw_parser.py compares generated cases with it directly.
"""

from __future__ import annotations

import pytest

from skillsyncd.config import Config
from skillsyncd.model import Severity
from skillsyncd.validation.gate import check_skill_md
from skillsyncd.validation.gateway import view

HEAD = "---\nname: flow\ndescription: Reads flow metadata.\n"

LOADS = {
    "closing brace at the margin": ('metadata: {\n  "clawdbot": {"emoji": "x"}\n}\n',
                                    '{"clawdbot":{"emoji":"x"}}'),
    "closing bracket at the margin": ("metadata: [\n  a,\n]\n", '["a"]'),
    "closer after a tab": ('metadata: {\n  "a": 1\n\t}\n', '{"a":1}'),
    "nested, inner closer indented": ('metadata: {\n  "a": {\n  "b": 1\n  }\n}\n', '{"a":{"b":1}}'),
    "under a nested key, closer at its column": ("metadata:\n  k: {\n    a: 1\n  }\n",
                                                 '{"k":{"a":1}}'),
    "a comment line at the margin": ('metadata: {\n  "a": 1,\n# note\n  "b": 2\n}\n',
                                     '{"a":1,"b":2}'),
    "brackets inside a quoted value": ('metadata: {\n  "a": "x}",\n}\n', '{"a":"x}"}'),
    "a quoted value continued, indented": ('metadata: {\n  "a": "multi\n  line"\n}\n',
                                           '{"a":"multi line"}'),
    "blank lines inside": ('metadata: {\n\n  "a": 1\n\n}\n', '{"a":1}'),
    "an indented comment after a value": ('metadata: {\n  "a": 1\n  # note\n}\n', '{"a":1}'),
    "a comment at the margin in a sequence": ("metadata: [\n  1\n# note\n]\n", "[1]"),
}

REFUSED = {
    "content at the margin": 'metadata: {\n"clawdbot": {"emoji": "x"}\n}\n',
    "an inner closer at the margin": 'metadata: {\n  "a": {\n  "b": 1\n}\n}\n',
    "a closer left of a nested key": "metadata:\n  k: {\n    a: 1\n}\n",
    "a closer one short of a nested key": "metadata:\n  k: {\n    a: 1\n }\n",
    "content after a tab": 'metadata: {\n\t"a": 1\n}\n',
    "a quoted value continued at the margin": 'metadata: {\n  "a": "multi\nline"\n}\n',
    "a sequence item at the margin": "metadata: [\na,\n]\n",
    "an inner list closed at the margin": "metadata: [1, [2,\n  3\n]]\n",
    "a comment at the margin right after a value": 'metadata: {\n  "a": 1\n# note\n}\n',
    "the same after an inner mapping": 'metadata: {\n  "a": {\n    "b": 1\n  }\n# note\n}\n',
}


@pytest.mark.parametrize("case", sorted(LOADS))
def test_a_flow_collection_the_gateway_reads_loads(case: str) -> None:
    block, metadata = LOADS[case]
    seen = view((HEAD + block + "---\nbody\n").encode(), "flow")
    assert seen.loads, seen.problem
    assert seen.description == "Reads flow metadata." and seen.fields["metadata"] == metadata


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_flow_collection_the_gateway_refuses_is_refused(case: str) -> None:
    seen = view((HEAD + REFUSED[case] + "---\nbody\n").encode(), "flow")
    assert not seen.loads
    assert seen.problem is not None and seen.problem.rule == "yaml.syntax"


def test_the_three_public_skills_shape_is_live_with_its_metadata() -> None:
    """The shape avatarneil/discord-voice and two other public skills use, as validation sees it."""
    data = (HEAD + 'metadata: {\n  "clawdbot": {"emoji": "x", "requires": {"bins": ["ffmpeg"]}}\n}\n'
            "---\n# Voice\n").encode()
    findings = check_skill_md(data, "flow", Config(), "flow/SKILL.md")
    assert [f.rule for f in findings if f.severity is Severity.ERROR] == []


@pytest.mark.parametrize(("block", "description"), [
    ("'description':deploy #x #y \nversion: C++  50%\n", None),  # a comment ends ':deploy' first
    ("'description':deploy\n", None),  # so does the end of the block
    ("'description':deploy\nversion: C++  50%\n", "deploy"),  # ': ' ahead: a mapping, recovered
    ("name: a\n\"description\":deploy\n", "deploy"),  # not the first line: a mapping already
])
def test_a_quoted_first_key_glued_to_its_value_is_recovered_only_as_the_gateway_does(
    block: str, description: str | None,
) -> None:
    """``'description':value`` (no space after the colon) as the block's first entry: the
    gateway's YAML reads a mapping, and so quotes the value and loads the skill, only when
    the text after the colon runs into a ``: `` (verdicts of the real parser)."""
    seen = view(("---\n" + block + "---\nbody\n").encode(), "flow")
    assert seen.description == description
    assert seen.loads is (description is not None)
