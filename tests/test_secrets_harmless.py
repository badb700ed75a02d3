"""The whole secret table over a harmless corpus the project builds (tests/secrets_harmless.py):
nothing in it is blocked, in text files or in a SQLite file storing names and values back
to back. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from inmemory import skill_from_files
from secret_samples import SKILL_MD, sqlite_settings
from secrets_harmless import Item, harmless

from skillsyncd.config import Config
from skillsyncd.model import Finding, Severity
from skillsyncd.validation.gate import validate_skill

CORPUS = harmless()


def findings(files: dict[str, str | bytes]) -> tuple[Finding, ...]:
    skill, store = skill_from_files("demo", {"SKILL.md": SKILL_MD, **files})
    return validate_skill(skill, store, Config(), prefix="skills/demo")


def item_placements(item: Item) -> dict[str, dict[str, str | bytes]]:
    name, value = item
    if name is None:
        return {"skill-md": {"SKILL.md": SKILL_MD + "\n" + value + "\n"},
                "code": {"scripts/run.py": value + "\n"},
                "sqlite": {"data/app.db": sqlite_settings((("note", value),))}}
    return {
        "dotenv": {".env": f"{name}={value}\n"},
        "yaml": {"config.yaml": f"service:\n  {name}: \"{value}\"\n"},
        "json": {"config.json": json.dumps({name: value}, indent=2)},
        "python": {"scripts/run.py": f"{name} = {json.dumps(value)}\n"},
        "skill-md": {"SKILL.md": SKILL_MD + f"\nSet `{name}={value}` first.\n"},
        "sqlite": {"data/app.db": sqlite_settings(((name, value),))},
    }


@pytest.mark.parametrize("category", sorted(CORPUS))
def test_nothing_harmless_is_blocked(category: str) -> None:
    blocked: list[tuple[str, str, str]] = []
    warned: Counter[str] = Counter()
    placed = 0
    for item in CORPUS[category]:
        for place, files in item_placements(item).items():
            placed += 1
            for f in findings(files):
                if f.rule.startswith("secret.") and f.severity is Severity.ERROR:
                    blocked.append((f.rule, place, f"{item[0]}={item[1][:24]}"))
                elif f.rule.startswith("secret."):
                    warned[f.rule] += 1
    print(f"\n{category}: {len(CORPUS[category])} items, {placed} placements, {len(blocked)} blocked, "
          f"warnings {dict(warned)}")
    assert placed >= len(CORPUS[category]) * 3
    assert blocked == []


def test_the_corpus_covers_every_category_the_issue_names() -> None:
    assert set(CORPUS) == {"placeholders", "contract addresses", "hashes", "uuids", "base64 images",
                           "public keys", "prose about secrets", "code naming credentials"}
    assert all(len(items) >= 4 for items in CORPUS.values())
