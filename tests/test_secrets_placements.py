"""Issue 25: every rule of the secret table, with a value generated from the rule's own
description, gets the same verdict in every placement: text in any encoding, a SQLite
row whose name and value sit back to back, a string split over two lines of code.

Run ``pytest -q -s tests/test_secrets_placements.py`` to see the figures printed.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inmemory import skill_from_files
from secret_samples import (
    FORMAT_RULES,
    RULE_IDS,
    SKILL_MD,
    Sample,
    name_for,
    placements,
    samples,
    sqlite_settings,
    text_of,
    value_of,
)

from skillsyncd.config import Config
from skillsyncd.model import Finding, Severity
from skillsyncd.validation.gate import validate_skill
from skillsyncd.validation.rules import RULES
from skillsyncd.validation.secret_rules import SECRET_RULES
from skillsyncd.validation.secrets.decode import scan_bytes
from skillsyncd.validation.secrets.scan import scan_text

CFG = Config()
PLACEMENT_NAMES = tuple(placements(Sample("secret.named-credential", "API_KEY", "v")))
# Placements a rule cannot support, and why (docs/validation.md says the same).
UNSUPPORTED = {
    ("secret.generic", "sqlite-glued"): "a vague name goes on after its credential word "
    "(token_cache_seed) and, glued to the value, no format says where the name ends",
}


def findings(files: dict[str, str | bytes]) -> tuple[Finding, ...]:
    skill, store = skill_from_files("demo", {"SKILL.md": SKILL_MD, **files})
    return validate_skill(skill, store, CFG, prefix="skills/demo")


def reported(rule_id: str, found: tuple[Finding, ...]) -> bool:
    """An error rule blocks (some secret error); a warning rule is reported as itself."""
    if RULES[rule_id].default is Severity.ERROR:
        return any(f.severity is Severity.ERROR and f.rule.startswith("secret.") for f in found)
    return any(f.rule == rule_id and f.severity is Severity.WARNING for f in found)


def assert_not_echoed(s: Sample, found: tuple[Finding, ...]) -> None:
    for f in found:
        assert s.hidden not in str(f) and s.hidden[-12:] not in f.message


def test_every_rule_of_the_table_has_a_generator() -> None:
    """A new structural row without a generator fails here (samples raises KeyError)."""
    rng = random.Random(0)
    assert set(RULE_IDS) == {r.id for r in SECRET_RULES}
    assert all(len(samples(r, rng)) >= 1 for r in RULE_IDS)


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_a_value_from_the_rules_description_is_reported_by_that_rule(rule_id: str) -> None:
    """The structural check against regressions: each rule finds its own values, at its
    severity (a row shadowed by an earlier one, or a format the regex lost, fails here)."""
    for seed in (1, 2, 3):
        for s in samples(rule_id, random.Random(seed)):
            hits = scan_text(text_of(s))
            assert rule_id in {h.rule for h in hits}, (s.value[:8], [h.rule for h in hits])
            assert all(s.hidden not in h.label for h in hits)


@pytest.mark.parametrize("rule_id", RULE_IDS)
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), at=st.floats(0.05, 0.95))
def test_every_placement_of_every_rule_is_blocked(rule_id: str, seed: int, at: float) -> None:
    """Placement independence as a property: a fresh value of the rule (hypothesis picks
    the seed and where a split string is cut) is blocked in each placement."""
    for s in samples(rule_id, random.Random(seed)):
        for place, files in placements(s, at).items():
            if (rule_id, place) in UNSUPPORTED:
                continue
            found = findings(files)
            assert reported(rule_id, found), (place, s.value[:8], [f.rule for f in found])
            assert_not_echoed(s, found)


def test_placement_figures() -> None:
    """One sweep over the whole table, printed: rules, placements, misses."""
    rng = random.Random(25)
    total, missed = 0, Counter[str]()
    for rule_id in RULE_IDS:
        for s in samples(rule_id, rng):
            for place, files in placements(s, rng.random()).items():
                if (rule_id, place) in UNSUPPORTED:
                    continue
                total += 1
                if not reported(rule_id, findings(files)):
                    missed[f"{rule_id}@{place}"] += 1
    print(f"\nplacements: {total - sum(missed.values())}/{total} reported, {len(RULE_IDS)} rules, "
          f"{len(PLACEMENT_NAMES)} placements ({', '.join(PLACEMENT_NAMES)}); not supported "
          f"{sorted(UNSUPPORTED)}; missed {dict(missed)}")
    assert total >= len(RULE_IDS) * len(PLACEMENT_NAMES)
    assert not missed


def test_a_sqlite_settings_table_holding_a_github_token_is_blocked() -> None:
    """The issue's case: settings(key TEXT, value TEXT) with ('GITHUB_TOKEN', 'ghp_…')
    stores GITHUB_TOKENghp_… back to back."""
    rng = random.Random(7)
    token = "gh" + "p_" + "".join(rng.choice("ABCDEFGHJKMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789")
                                  for _ in range(36))
    data = sqlite_settings((("GITHUB_TOKEN", token),))
    assert b"GITHUB_TOKEN" + token.encode() in data  # the bytes really are glued
    assert [h.rule for h in scan_bytes(data)] == ["secret.github-pat"]


def test_every_format_stored_in_a_sqlite_row_is_its_rule() -> None:
    """Every token and keyed format, stored as (its usual name, value): found as its own
    rule, though no punctuation stands between the name and the value."""
    rng = random.Random(93)
    wrong = []
    formats = 0
    for rule in FORMAT_RULES:
        for fmt in rule.formats:
            formats += 1
            value = value_of(fmt, rng)
            data = sqlite_settings(((name_for(rule), value),))
            rules = [h.rule for h in scan_bytes(data)]
            if rule.id not in rules:
                wrong.append((rule.id, value[:6], rules))
    print(f"\nsqlite rows: {formats - len(wrong)}/{formats} formats found as their rule")
    assert wrong == []


def test_a_quote_before_a_long_run_of_binary_scans_in_linear_time() -> None:
    """A binary's non-printable bytes become spaces; between two quotes they made the
    split-string view try every way to cut the run (hours on a 100 kB SQLite page)."""
    data = b"SQLite format 3\x00'" + b"\x00" * 100_000 + b"'\x00" * 50 + b"\"" + b"\x00" * 100_000 + b"\""
    start = time.monotonic()
    assert list(scan_bytes(data)) == []
    assert time.monotonic() - start < 60  # a liveness bound; backtracking took hours

