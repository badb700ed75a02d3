"""skillsyncd's "can the gateway load it" equals the real OpenClaw's, file by file.

The real package's own frontmatter parser (run by openclaw_verdict.mjs, with
the loader's name fallback, description rule and size cap) judges the same
SKILL.md bytes as skillsyncd.validation.gateway: a generated corpus of
frontmatter edge cases, hand-picked cases, and the user's repository when its
bundle is present. Verdict, effective name and description must all agree.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest
from frontmatter_cases import skill_md
from hypothesis import HealthCheck, given, settings
from openclaw_peer import Install, verdicts

from skillsyncd.config import load_config
from skillsyncd.release.releases import Releases
from skillsyncd.sync.assembly import build_syncer
from skillsyncd.validation import gateway

pytestmark = pytest.mark.e2e

GENERATED = 3000
BUNDLE = Path(os.environ.get(
    "SKILLSYNC_CORPORA", Path(__file__).resolve().parents[3] / "shared" / "corpora"
)) / "kurultai-skills.bundle"

HAND_PICKED = [
    b"---\ndescription: Run critical review\n---\nbody\n",
    b"---\nname: d\ndescription: Handles the workflow: checking branch status\n---\nbody\n",
    b"---\nname: c\ndescription: c\ncompatibility: [claude, openclaw]\n---\n",
    b"---\nname: a\nname: b\ndescription: x\n---\n",
    b"---\nname: a: b\ndescription: x\n---\n",
    b"---\nname: a\nsummary: x: y\ndescription: ok\n---\n",
    b"---\nname: a\ndescription: {a: b}\n---\n",
    b"---\nname: a\ndescription:\n---\n",
    b"---\nname: a\ndescription: null\n---\n",
    b"---\nname: 1e3\ndescription: 0x10\n---\n",
    b"---\nname: yes\ndescription: 2024-02-30\n---\n",
    b"---\n\tname: a\ndescription: x\n---\n",
    b"---\nname:\ta\ndescription: x\n---\n",
    b"---\nname: a\ndescription: \"unterminated\n---\n",
    b"---\nname: a\ndescription: *undefined\n---\n",
    b"---\nname: a\ndescription: x\n----\n",
    b"\xef\xbb\xbf---\r\nname: a\r\ndescription: x\r\n---\r\n",
    b"---\rname: a\rdescription: x\r---\r",
    b"---\nname: [a,\nb]\ndescription: x\n---\n",
    b"---\nname: |\n  a\n\t\ndescription: x\n---\n",
    # A flow mapping continued over lines, closed at the margin (issue 29 item 18), and its kin.
    b'---\nname: a\ndescription: x\nmetadata: {\n  "clawdbot": {"emoji": "x"}\n}\n---\n',
    b'---\nname: a\nmetadata: {\n  "openclaw": {\n    "emoji": "x"\n  }\n}\ndescription: x\n---\n',
    b'---\nname: a\nmetadata: {\n"clawdbot": {"emoji": "x"}\n}\ndescription: x\n---\n',
    b'---\nname: a\nmetadata: {\n  "a": {\n  "b": 1\n}\n}\ndescription: x\n---\n',
    b"---\nname: a\nmetadata:\n  k: [\n    1\n  ]\ndescription: x\n---\n",
    b"---\nname: a\ndescription: caf\xe9\n---\n",
    b"---\nname: a\ndescription: x\n---\nbody \x00\n",
    b"# no frontmatter\n",
    b"---\nname: big\ndescription: big one\n---\n" + (b"x" * 99 + b"\n") * 1100,
    b"---\nname: big\ndescription: big one\n---\n" + b"x" * (256_000 - 38),
    b"---\nname: big\ndescription: big one\n---\n" + b"x" * (256_000 - 37),
]


def assert_same(inst: Install, cases: Iterable[tuple[bytes, str]]) -> int:
    """Every case judged alike by both; returns how many the gateway loads."""
    cases = list(cases)
    theirs = verdicts(inst, cases)
    wrong = []
    for (data, folder), oc in zip(cases, theirs, strict=True):
        seen = gateway.view(data, folder)
        ours = (seen.loads, seen.name if seen.loads else None, seen.description if seen.loads else None)
        want = (oc["loads"], oc.get("name"), oc.get("description"))
        if ours != want:
            wrong.append(f"{data[:200]!r} in {folder!r}: ours {ours} ({seen.problem}), "
                         f"OpenClaw {want} ({oc.get('reason')})")
    assert not wrong, f"{len(wrong)} of {len(cases)} verdicts differ:\n" + "\n".join(wrong[:20])
    return sum(1 for oc in theirs if oc["loads"])


def test_hand_picked_cases_match_openclaw(openclaw: Install) -> None:
    loaded = assert_same(openclaw, [(c, "fold") for c in HAND_PICKED])
    assert 0 < loaded < len(HAND_PICKED)


def test_generated_frontmatter_matches_openclaw(openclaw: Install) -> None:
    samples: list[bytes] = []

    @settings(max_examples=GENERATED, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(skill_md())
    def collect(data: bytes) -> None:
        samples.append(data)

    collect()
    loaded = assert_same(openclaw, [(s, "gen-skill") for s in samples])
    # The corpus exercises both sides of the rule, not only one.
    assert len(samples) * 0.1 < loaded < len(samples) * 0.9


@pytest.fixture(scope="module")
def users_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BUNDLE.is_file():
        pytest.skip(f"the user's repository bundle is not at {BUNDLE} (set SKILLSYNC_CORPORA)")
    dest = tmp_path_factory.mktemp("corpus") / "kurultai-skills"
    subprocess.run(["git", "clone", "--quiet", str(BUNDLE), str(dest)], check=True)
    return dest


def test_users_repository_matches_openclaw(openclaw: Install, users_repository: Path) -> None:
    files = sorted(p for p in users_repository.rglob("SKILL.md") if ".git" not in p.parts)
    assert len(files) > 100
    assert_same(openclaw, [(p.read_bytes(), p.parent.name) for p in files])


def test_users_repository_deploys_every_top_level_skill_openclaw_loads(
    openclaw: Install, users_repository: Path, tmp_path: Path
) -> None:
    tops = sorted(p for p in users_repository.glob("*/SKILL.md") if p.is_file())
    theirs = verdicts(openclaw, [(p.read_bytes(), p.parent.name) for p in tops])
    loadable = {p.parent.name for p, oc in zip(tops, theirs, strict=True) if oc["loads"]}
    assert len(loadable) >= 61

    cfg = load_config(flags={"repo": str(users_repository), "state_dir": str(tmp_path / "state")}, env={})
    outcome = build_syncer(cfg).sync()
    assert outcome.status == "deployed", outcome.reason
    releases = Releases(cfg.state_dir)
    current = releases.current()
    assert current is not None
    manifest = releases.manifest(current).to_dict()
    live = {s["name"] for s in manifest["skills"] if s.get("live")}
    assert loadable <= live, f"held back although OpenClaw loads them: {sorted(loadable - live)}"
    for record in manifest["skills"]:
        if record.get("live"):
            assert record.get("effective_name"), record["name"]
    # Every top-level folder that is not live is named: held back with findings, or in layout.
    said = {s["name"] for s in manifest["skills"] if not s.get("live") and s.get("findings")}
    said |= {f["path"].split("/", 1)[0] for f in manifest["layout"]}
    folders = {p.name for p in users_repository.iterdir() if p.is_dir() and p.name != ".git"}
    assert folders - {n.split("/", 1)[0] for n in live} - said == set(), "left out in silence"
