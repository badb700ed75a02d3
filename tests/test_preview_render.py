"""The preview's exit code and its renderers on values no small repository produces cheaply:
hundreds of changed skills, and a gateway-cap finding made an error by policy (pure)."""

from __future__ import annotations

import json

from skillsyncd.errors import EXIT_OK, EXIT_REJECTED
from skillsyncd.model import Finding, Severity, Status
from skillsyncd.release.manifest import Manifest
from skillsyncd.sync.preview import Facts, LiveView, Preview, SkillPreview, Target
from skillsyncd.sync.preview_render import MARKDOWN_ROWS, render

TARGET = Target(commit="c" * 40, ref="main", source="https://example.invalid/skills.git")
LIVE = LiveView(manifest=Manifest(release="20261208T000000Z-aaaaaaaaaaaa", commit="a" * 40),
                against="state dir /data/skillsync")


def _added(n: int) -> SkillPreview:
    return SkillPreview(name=f"skill-{n:04d}", change="added", before=None,
                        after=Facts(name=f"skill-{n:04d}", files=1, bytes=100))


def test_markdown_lists_at_most_its_row_limit_and_counts_the_rest() -> None:
    many = Preview(TARGET, LIVE, Status.DEPLOYED, tuple(_added(n) for n in range(MARKDOWN_ROWS + 7)),
                   unchanged=0, live_after=MARKDOWN_ROWS + 7)
    md = render(many, "markdown")
    assert sum(1 for line in md.splitlines() if line.startswith("| `skill-")) == MARKDOWN_ROWS
    assert "… and 7 more (`skillsyncd plan --format json` lists all)" in md
    assert len(json.loads(render(many, "json"))["skills"]) == MARKDOWN_ROWS + 7
    assert many.exit_code == EXIT_OK


def test_the_gateway_cap_fails_the_plan_only_when_policy_makes_it_an_error() -> None:
    def with_cap(severity: Severity) -> Preview:
        cap = Finding("layout.gateway-cap", severity, ".", "it will not load 1: skill-0002")
        over = SkillPreview(name="skill-0002", change="added", before=None,
                            after=Facts(files=1, bytes=1), not_loaded=True)
        return Preview(TARGET, LIVE, Status.DEPLOYED, (over,), unchanged=2, live_after=3, cap=cap)

    warned, refused = with_cap(Severity.WARNING), with_cap(Severity.ERROR)
    assert warned.exit_code == EXIT_OK and refused.exit_code == EXIT_REJECTED
    assert "not loaded: over the gateway's caps" in render(warned)
    assert "**not loaded** (over the gateway's caps)" in render(warned, "markdown")
    assert "gateway caps: it will not load 1: skill-0002" in render(refused)
