"""SIGKILL the real CLI in the middle of a mirror publish, then run it again.

The in-process test in test_publish.py cuts every file system operation of
Mirror.sync; this one kills a whole `skillsyncd --once` process (so nothing
in it gets to clean up) and lets the next process repair things the way the
daemon does on start: publish `current` again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from skillsyncd.config import Config, load_config
from skillsyncd.publish.publisher import verify_published
from skillsyncd.release.releases import Releases
from skillsyncd.sync.assembly import build_syncer
from skillsyncd.sync.state import load_state

# Dies at the N-th os.replace into the publish dir: after the flip, mid-publish.
KILLER = textwrap.dedent("""
    import os, signal, sys
    n, pub = int(sys.argv[1]), os.path.realpath(sys.argv[2])
    real = os.replace
    seen = [0]
    def replace(src, dst, *a, **k):
        if os.path.realpath(os.fsdecode(dst)).startswith(pub + os.sep):
            if seen[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
            seen[0] += 1
        return real(src, dst, *a, **k)
    os.replace = replace
    from skillsyncd.cli import main
    sys.exit(main(["--once"]))
""")


def cfg_env(cfg: Config) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSYNC_")}
    env.update(SKILLSYNC_REPO=str(cfg.repo), SKILLSYNC_STATE_DIR=str(cfg.state_dir),
               SKILLSYNC_PUBLISH_MODE="mirror", SKILLSYNC_PUBLISH_DIR=str(cfg.publish_dir))
    return env


@pytest.mark.parametrize("kill_at", [0, 1, 3])
def test_sigkill_mid_publish_then_next_run_converges(repo: Any, tmp_path: Path, kill_at: int) -> None:
    for name in ("alpha", "beta", "gamma"):
        repo.add_skill(name, description=f"{name} v1.", extra_files={"ref/a.md": f"{name} 1\n"})
    repo.commit("v1")
    cfg = load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "state"),
                             "publish_mode": "mirror", "publish_dir": str(tmp_path / "skills")},
                      env={})
    assert build_syncer(cfg).sync().status == "deployed"
    repo.add_skill("alpha", description="alpha v2.", extra_files={"ref/a.md": "alpha 2\n"})
    repo.remove("beta")
    repo.add_skill("delta", description="delta v2.", extra_files={"ref/a.md": "delta 2\n"})
    head = repo.commit("v2")

    killed = subprocess.run([sys.executable, "-c", KILLER, str(kill_at), str(cfg.publish_dir)],
                            env=cfg_env(cfg), capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-2000:]
    releases = Releases(cfg.state_dir)
    assert releases.current() is not None and releases.current().endswith(head[:12])  # type: ignore[union-attr]

    again = build_syncer(cfg).sync()  # a new process starts: publish `current` again
    current = releases.current()
    assert current is not None
    assert verify_published(cfg, current) == []
    assert cfg.publish_dir is not None
    live = {s["name"] for s in releases.manifest(current).to_dict()["skills"] if s.get("live")}
    assert {p.parent.name for p in cfg.publish_dir.glob("*/SKILL.md")} == live
    # the commit was good: the interrupted publish must not get it rolled back and marked bad
    assert again.status in ("no_change", "deployed"), again
    assert current.endswith(head[:12])
    assert head not in load_state(cfg.state_file).bad_commits
