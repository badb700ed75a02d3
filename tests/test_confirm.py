"""The comparison of a release with the gateway's skills.status answer (pure: no I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skillsyncd.release.manifest import Manifest, SkillRecord
from skillsyncd.sync.confirm import (
    CONFIRMED,
    UNREACHABLE,
    Confirmation,
    Expected,
    Gap,
    GatewaySkill,
    blamed,
    compare,
    expected_of,
    from_json,
    gap_of,
    gateway_skills,
    settled,
)

PUB = "/data/skillsync/releases/r1"


def status_entry(name: str, base: str | None = None, **over: Any) -> dict[str, Any]:
    """One skill as skills.status lists it (the fields OpenClaw 2026.9.6 sends)."""
    entry: dict[str, Any] = {
        "name": name, "description": f"{name} does things", "source": "openclaw-extra",
        "baseDir": base or f"{PUB}/{name}", "eligible": True, "disabled": False,
        "blockedByAllowlist": False, "blockedByAgentFilter": False,
        "missing": {"bins": [], "anyBins": [], "env": [], "config": [], "os": []},
    }
    entry.update(over)
    return entry


def parse(*entries: dict[str, Any]) -> tuple[GatewaySkill, ...]:
    return gateway_skills({"skills": list(entries)}, lambda base: base.startswith(PUB + "/"))


def exp(name: str, changed: bool = False) -> Expected:
    return Expected(name=name, folder=name, description=f"{name} does things", changed=changed)


def test_every_skill_usable_is_n_of_n() -> None:
    seen, gaps = compare([exp("a"), exp("b")], parse(status_entry("a"), status_entry("b")))
    assert (seen, gaps) == (2, ())
    conf = Confirmation("r1", "c", CONFIRMED, expected=2, seen=2)
    assert conf.summary() == "the gateway sees 2 of 2 skills"


def test_missing_binary_is_named_with_its_fix() -> None:
    answer = parse(status_entry("jqtool", eligible=False,
                                missing={"bins": ["jq"], "anyBins": [], "env": ["API_KEY"]}))
    gap = gap_of(exp("jqtool"), {s.name: s for s in answer})
    assert gap is not None and gap.reason == "ineligible"
    assert gap.missing == {"bins": ("jq",), "env": ("API_KEY",)}
    assert "bins jq (install it in the gateway's image" in gap.detail
    assert "env API_KEY (set it in the gateway's environment" in gap.detail


@pytest.mark.parametrize(("entry", "reason", "words"), [
    (None, "not_loaded", "not loaded by the gateway"),
    (status_entry("x", base="/data/workspace/skills/x", source="openclaw-workspace"), "shadowed",
     "shadowed by the openclaw-workspace skill of the same name at /data/workspace/skills/x"),
    (status_entry("x", disabled=True, eligible=False), "disabled", "enabled: false"),
    (status_entry("x", blockedByAllowlist=True, eligible=False), "blocked_by_allowlist",
     "skills.allowBundled"),
    (status_entry("x", blockedByAgentFilter=True), "blocked_by_agent_filter", "allow-list"),
    (status_entry("x", eligible=False, missing={"os": ["darwin"]}), "ineligible", "os darwin"),
])
def test_each_difference_has_its_reason(entry: dict[str, Any] | None, reason: str, words: str) -> None:
    answer = parse(entry) if entry else parse(status_entry("other"))
    seen, gaps = compare([exp("x")], answer)
    assert seen == 0
    assert [g.reason for g in gaps] == [reason]
    assert words in gaps[0].detail


def test_a_name_listed_twice_counts_the_published_one() -> None:
    answer = parse(status_entry("x", base="/elsewhere/x", source="openclaw-bundled"), status_entry("x"))
    assert compare([exp("x")], answer) == (1, ())


def test_summary_names_each_difference() -> None:
    gaps = tuple(Gap(f"s{i}", "not_loaded", "not loaded") for i in range(7))
    conf = Confirmation("r1", "c", CONFIRMED, expected=9, seen=2, gaps=gaps)
    assert conf.summary().startswith("the gateway sees 2 of 9 skills: s0: not loaded; s1: not loaded")
    assert conf.summary().endswith("; and 2 more")
    down = Confirmation("r1", "c", UNREACHABLE, expected=9, error="connection refused")
    assert down.summary() == "the gateway could not be asked (unreachable): connection refused"


def test_blame_only_what_this_commit_broke() -> None:
    before = [exp("a"), exp("b"), exp("c")]
    before_gaps = (Gap("c", "ineligible", "missing jq"),)
    after = [exp("a", changed=True), exp("b"), exp("c", changed=True), exp("d", changed=True)]
    after_gaps = (Gap("a", "ineligible", "missing jq"),  # changed, usable before: blamed
                  Gap("b", "ineligible", "missing env"),  # unchanged: the environment moved
                  Gap("c", "ineligible", "missing jq"),  # was not usable before either
                  Gap("d", "ineligible", "missing jq"))  # new: reported, not blamed
    assert blamed(before, before_gaps, after, after_gaps) == ("a",)


def test_settled_waits_for_the_release_to_be_loaded() -> None:
    expected = [exp("a"), exp("b")]
    assert not settled(expected, parse(status_entry("a")))  # b not picked up yet
    assert not settled(expected, parse(status_entry("a"), status_entry("b", description="old")))
    assert not settled([exp("a")], parse(status_entry("a"), status_entry("gone")))  # removed, still listed
    assert settled(expected, parse(status_entry("a"), status_entry("b", description="b  does\nthings")))
    shadow = status_entry("b", base="/ws/skills/b", source="openclaw-workspace", description="other")
    assert settled(expected, parse(status_entry("a"), shadow))  # shadowing is an answer, not a lag


def test_expected_uses_the_frontmatter_name_and_the_change() -> None:
    manifest = Manifest(release="r1", commit="c" * 40, skills=(
        SkillRecord(name="group/pdf", effective_name="pdf-tools", change="changed", description="d"),
        SkillRecord(name="plain", change="unchanged"),
        SkillRecord(name="held", live=False, status="held_back"),
        # held back, its last good version serves: this commit did not change what serves
        SkillRecord(name="kept", status="held_back", change="changed"),
    ))
    assert expected_of(manifest) == (Expected("pdf-tools", "group/pdf", "d", True),
                                     Expected("plain", "plain", None, False),
                                     Expected("kept", "kept", None, False))


def test_record_round_trips() -> None:
    conf = Confirmation("r1", "c", CONFIRMED, expected=3, seen=2, at="2026-12-08T00:00:00Z",
                        gaps=(Gap("jqtool", "ineligible", "missing jq", missing={"bins": ("jq",)}),),
                        blamed=("jqtool",), settled=False)
    raw = conf.to_json()
    assert raw["summary"] == conf.summary()
    assert from_json(raw) == conf
    assert from_json(json.loads(conf.encode())) == conf  # as gateway.json holds it


def test_an_answer_without_skills_is_refused() -> None:
    with pytest.raises(ValueError, match="without a 'skills' list"):
        gateway_skills({"error": "x"}, lambda _b: True)
