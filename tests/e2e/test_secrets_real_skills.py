"""The secret gate measured on real skills, without shipping them: when a folder of real
skill repositories is given (``SKILLSYNC_CORPORA``, or the corpora folder beside the
checkout), every skill in it is validated and the skills held back are counted per
secret rule. Git bundles in the folder are cloned first. Findings are printed by rule,
path and line only (never a value), so the output can be read to tell a false block
from a real credential.

The default suite builds its own harmless corpus (tests/test_secrets_harmless.py).
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from skillsyncd.config import Config
from skillsyncd.model import Severity
from skillsyncd.validation.worktree import validate_path

pytestmark = pytest.mark.e2e

CORPORA = Path(os.environ.get(
    "SKILLSYNC_CORPORA", Path(__file__).resolve().parents[3] / "shared" / "corpora"
))


def _repositories(dest: Path) -> list[Path]:
    """Each bundle cloned into ``dest``, and each folder of the corpora as it is."""
    out = []
    for entry in sorted(CORPORA.iterdir()):
        if entry.suffix == ".bundle":
            clone = dest / entry.stem
            subprocess.run(["git", "clone", "--quiet", str(entry), str(clone)], check=True, timeout=600)
            out.append(clone)
        elif entry.is_dir() and any(entry.rglob("SKILL.md")):
            out.append(entry)
    return out


def _skill_folders(repo: Path) -> list[Path]:
    return sorted({p.parent for p in repo.rglob("SKILL.md") if ".git" not in p.parts and p.is_file()})


def test_blocked_skills_per_secret_rule(tmp_path: Path) -> None:
    if not CORPORA.is_dir():
        pytest.skip(f"no folder of real skills at {CORPORA} (set SKILLSYNC_CORPORA)")
    repos = _repositories(tmp_path)
    if not repos:
        pytest.skip(f"{CORPORA} holds no skill repository or bundle")
    skills = [f for repo in repos for f in _skill_folders(repo)]
    per_rule: Counter[str] = Counter()
    blocked: dict[str, list[str]] = {}
    warned: Counter[str] = Counter()
    for folder in skills:
        report = validate_path(folder, Config())
        rel = str(folder.relative_to(tmp_path if tmp_path in folder.parents else CORPORA))
        for f in report.findings:
            if not f.rule.startswith("secret."):
                continue
            # well-formed: a line in a file of this skill, named by a keyed fingerprint
            assert f.line is not None and f.line >= 1, f
            assert f.path.split("/")[0] == folder.name and "…" in f.message, (f.rule, f.path)
            if f.severity is Severity.ERROR:
                blocked.setdefault(rel, []).append(f"{f.rule} {f.path}:{f.line}")
            else:
                warned[f.rule] += 1
        for rule in {r.split(" ", 1)[0] for r in blocked.get(rel, [])}:
            per_rule[rule] += 1
    share = len(blocked) / max(1, len(skills))
    print(f"\nreal skills: {len(skills)} in {len(repos)} repositories; {len(blocked)} held back for a "
          f"secret ({share:.2%}); skills per rule {dict(per_rule.most_common())}; "
          f"warnings per rule {dict(warned.most_common())}")
    for rel, where in sorted(blocked.items()):
        print(f"  {rel}: {'; '.join(where)}")
    assert skills, f"no SKILL.md under {CORPORA}"
