"""`make demo`: sync the example skills from a local git repository, twice.

No network and no Neo4j: the repository is built here from examples/skills,
the state dir is .demo/state. The second sync changes one skill and adds one
that fails validation, to show an incremental release and a held-back skill.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
REPO = DEMO / "skills-repo"
STATE = DEMO / "state"
BIN = Path(sys.executable).parent
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Demo",
    "GIT_AUTHOR_EMAIL": "demo@example.invalid",
    "GIT_COMMITTER_NAME": "Demo",
    "GIT_COMMITTER_EMAIL": "demo@example.invalid",
}


def git(*args: str) -> None:
    subprocess.run(["git", "-C", str(REPO), *args], check=True, env=GIT_ENV,
                   stdout=subprocess.DEVNULL)


def skillsyncd(*args: str) -> None:
    cmd = [str(BIN / "skillsyncd"), *args, "--repo", str(REPO), "--state-dir", str(STATE)]
    print(f"\n$ skillsyncd {' '.join(args)}", flush=True)
    code = subprocess.run(cmd, check=False).returncode
    if code != 0:
        raise SystemExit(f"skillsyncd {args[0]} exited {code}")


def main() -> None:
    shutil.rmtree(DEMO, ignore_errors=True)
    shutil.copytree(ROOT / "examples" / "skills", REPO)
    subprocess.run(["git", "init", "-q", "-b", "main", str(REPO)], check=True, env=GIT_ENV)
    git("add", "-A")
    git("commit", "-q", "-m", "Add example skills")

    print("== first sync: every skill is new")
    skillsyncd("--once")
    skillsyncd("status")

    print("\n== second sync: one skill changed, one invalid skill added")
    notes = REPO / "release-notes" / "SKILL.md"
    notes.write_text(notes.read_text().replace('"2.0.1"', '"2.1.0"'))
    broken = REPO / "half-done" / "SKILL.md"
    broken.parent.mkdir()
    broken.write_text("---\nname: half-done\n---\n\nNo description yet.\n")
    git("add", "-A")
    git("commit", "-q", "-m", "Bump release-notes, start half-done")
    skillsyncd("--once")
    skillsyncd("status")
    skillsyncd("releases")
    skillsyncd("audit")
    print(f"\n$ readlink {STATE / 'current'}\n{os.readlink(STATE / 'current')}")


if __name__ == "__main__":
    main()
