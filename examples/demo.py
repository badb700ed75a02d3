"""`make demo`: sync the example skills from a local git repository, twice.

No network and no Neo4j: the repository is built here from examples/skills,
the state dir is .demo/state (or ``--dir DIR``/state). The second sync changes
one skill and adds one that fails validation, to show an incremental release
and a held-back skill. What is shown is the human side (summaries on stderr,
``status``, ``releases``, ``audit``); the JSON log lines go to ``sync.log`` in
the demo folder. It ends with the next step: the daemon and its dashboard.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DASHBOARD_BIND = "127.0.0.1:18790"  # the daemon's default SKILLSYNC_HTTP_BIND
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Demo",
    "GIT_AUTHOR_EMAIL": "demo@example.invalid",
    "GIT_COMMITTER_NAME": "Demo",
    "GIT_COMMITTER_EMAIL": "demo@example.invalid",
}


class Demo:
    """One demo folder: the skills repository, the state dir and the log file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.repo = folder / "skills-repo"
        self.state = folder / "state"
        self.log = folder / "sync.log"

    def git(self, *args: str) -> None:
        subprocess.run(["git", "-C", str(self.repo), *args], check=True, env=GIT_ENV,
                       stdout=subprocess.DEVNULL)

    def skillsyncd(self, *args: str) -> None:
        """Run one command as a user would type it; its JSON log lines go to sync.log."""
        cmd = [str(BIN / "skillsyncd"), "--repo", str(self.repo), "--state-dir", str(self.state),
               *args]
        print(f"\n$ skillsyncd {' '.join(args)}", flush=True)
        with self.log.open("a", encoding="utf-8") as log:
            # --once logs to stdout and summarises on stderr; the reports print on stdout
            # and log to stderr: keep the human half on the terminal either way.
            once = "--once" in args
            code = subprocess.run(cmd, check=False, stdout=log if once else None,
                                  stderr=None if once else log).returncode
        if code != 0:
            raise SystemExit(f"skillsyncd {args[0]} exited {code} (the log: {self.log})")

    def next_step(self) -> None:
        run = shlex.join([str(BIN / "skillsyncd"), "run", "--repo", str(self.repo),
                          "--state-dir", str(self.state), "--http-bind", DASHBOARD_BIND])
        print(f"\nThe JSON log lines of these runs are in {self.log}.")
        print("\n== next: run the daemon on the same repository and open its dashboard")
        print(f"  {run}")
        print(f"  then open http://{DASHBOARD_BIND}/ (also /status, /metrics, /healthz);")
        print("  commit to the repository above and the daemon deploys it within a minute"
              " (kill -HUP the daemon to sync now); Ctrl-C stops it.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=ROOT / ".demo", help="demo folder (recreated)")
    demo = Demo(parser.parse_args(argv).dir.resolve())
    shutil.rmtree(demo.folder, ignore_errors=True)
    demo.folder.mkdir(parents=True)
    shutil.copytree(ROOT / "examples" / "skills", demo.repo)
    subprocess.run(["git", "init", "-q", "-b", "main", str(demo.repo)], check=True, env=GIT_ENV)
    demo.git("add", "-A")
    demo.git("commit", "-q", "-m", "Add example skills")

    print("== first sync: every skill is new")
    demo.skillsyncd("--once")
    demo.skillsyncd("status")

    print("\n== second sync: one skill changed, one invalid skill added")
    notes = demo.repo / "release-notes" / "SKILL.md"
    notes.write_text(notes.read_text().replace('"2.0.1"', '"2.1.0"'))
    broken = demo.repo / "half-done" / "SKILL.md"
    broken.parent.mkdir()
    broken.write_text("---\nname: half-done\n---\n\nNo description yet.\n")
    demo.git("add", "-A")
    demo.git("commit", "-q", "-m", "Bump release-notes, start half-done")
    demo.skillsyncd("--once")
    demo.skillsyncd("status")
    demo.skillsyncd("releases")
    demo.skillsyncd("audit")
    print(f"\n$ readlink {demo.state / 'current'}\n{os.readlink(demo.state / 'current')}")
    demo.next_step()


if __name__ == "__main__":
    main()
