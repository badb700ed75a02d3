"""Upgrading a state dir written by 0.1.0 in place: the real 0.1.0 code writes it.

0.1.0's releases are complete folder trees; 0.2.0 keeps skill versions once in
``store/`` and links to them. The 0.1.0 package is taken from this repository's
own history (``git archive``), run as a real process, then today's code takes
over the same state dir while a reader keeps opening every live SKILL.md
through ``current``: not one read may fail, and the old release stays valid.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import threading
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from skillsyncd.config import load_config
from skillsyncd.release.releases import Releases
from skillsyncd.release.verify import verify_release
from skillsyncd.sync.assembly import build_syncer

ROOT = Path(__file__).resolve().parent.parent
V010 = "01bc92a8a8d06151a4880b397ab532ed3b4d6c19"  # the last commit of the 0.1.0 layout


def _old_package(dest: Path) -> Path | None:
    """The 0.1.0 package from git history, or None where the clone lacks that commit."""
    try:
        tar = subprocess.run(["git", "-C", str(ROOT), "archive", V010, "skillsyncd"],
                             capture_output=True, check=True, timeout=60).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None
    with tarfile.open(fileobj=BytesIO(tar)) as archive:
        archive.extractall(dest, filter="data")
    return dest


@pytest.fixture
def old_code(tmp_path: Path) -> Path:
    found = _old_package(tmp_path / "v010")
    if found is None:
        pytest.skip(f"this clone has no commit {V010[:12]} (a shallow clone): cannot run 0.1.0")
    return found


def run_old(old: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSYNC_")} | env
    env["PYTHONPATH"] = str(old)
    return subprocess.run([sys.executable, "-m", "skillsyncd", *args], env=env,
                          capture_output=True, text=True, timeout=120, cwd=old)


class Reader(threading.Thread):
    """Reads every live SKILL.md through ``current`` until stopped; counts what failed."""

    def __init__(self, current: Path, names: list[str]) -> None:
        super().__init__(daemon=True)
        self.current, self.names = current, names
        self.stop = threading.Event()
        self.reads = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for name in self.names:
                try:
                    (self.current / name / "SKILL.md").read_bytes()
                    self.reads += 1
                except OSError as exc:
                    self.failures.append(f"{name}: {exc}")


@pytest.mark.parametrize("mode", ["link", "mirror"])
def test_a_0_1_0_state_dir_upgrades_in_place_without_a_gap(
    mode: str, old_code: Path, repo: Any, tmp_path: Path
) -> None:
    repo.add_skill("alpha", description="one", extra_files={"scripts/run.sh": "echo hi\n"})
    repo.add_skill("beta", description="one")
    repo.add_skill("tools/gamma", description="grouped")
    repo.commit("v1")
    state = tmp_path / "state"
    publish = {"SKILLSYNC_PUBLISH_MODE": mode} | (
        {"SKILLSYNC_PUBLISH_DIR": str(tmp_path / "pub")} if mode == "mirror" else {})
    done = run_old(old_code, "--once", "--repo", str(repo.path), "--state-dir", str(state), env=publish)
    assert done.returncode == 0, done.stderr[-2000:]
    releases = Releases(state)
    old = releases.current()
    assert old is not None and not (releases.dir(old) / "alpha").is_symlink()  # a 0.1.0 tree
    assert not releases.store.root.exists()

    reader = Reader(releases.current_link, ["alpha", "beta", "tools/gamma"])
    reader.start()
    try:
        cfg = load_config(flags={"repo": str(repo.path), "state_dir": str(state), "publish_mode": mode,
                                 **({"publish_dir": str(tmp_path / "pub")} if mode == "mirror" else {})},
                          env={})
        syncer = build_syncer(cfg)
        first = syncer.sync()  # the same commit: nothing to do, or a re-deploy, never a gap
        assert first.status in ("no_change", "deployed")
        repo.add_skill("beta", description="two")
        head = repo.commit("v2")
        out = syncer.sync()
        deadline = time.monotonic() + 60
        while reader.reads < 100 and reader.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)  # the reader ran across both syncs and a little after
    finally:
        reader.stop.set()
        reader.join(10)
    assert reader.failures == []
    assert out.status == "deployed" and out.commit == head
    new = releases.current()
    assert new is not None and new != old
    if mode == "mirror":  # one link per skill into the store
        assert os.readlink(releases.dir(new) / "alpha").startswith("../../store/")
        assert os.readlink(releases.dir(new) / "tools" / "gamma").startswith("../../../store/")
    else:  # real folders the gateway reads through `current`: files linked from the store
        alpha = releases.dir(new) / "alpha"
        assert not alpha.is_symlink() and os.stat(alpha / "SKILL.md").st_nlink == 1
        assert os.stat(alpha / "scripts" / "run.sh").st_nlink == 2
    assert "two" in (releases.current_link / "beta" / "SKILL.md").read_text()
    assert verify_release(releases, new) == []
    assert releases.store.shas() == set(releases.manifest(new).live_shas().values())
    assert verify_release(releases, old) == []  # the 0.1.0 release is untouched
    assert os.stat(releases.dir(old) / "alpha" / "SKILL.md").st_nlink == 1
    # and it is still a rollback target
    back = syncer.rollback(to=old)
    assert back.release == old and releases.current() == old
    assert "one" in (releases.current_link / "beta" / "SKILL.md").read_text()
