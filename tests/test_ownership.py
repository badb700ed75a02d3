"""A root --once (or rollback) refuses a state dir that belongs to the daemon's user.

Otherwise it would leave root-owned folders in the publish dir and the daemon's next
publish would fail with "Permission denied" until someone chowned them.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest
from gitserver import HttpGitServer, RepoBuilder
from test_daemon import SKILLSYNCD, _clean_env

from skillsyncd.sync.user_guard import wrong_user


def test_only_root_on_someone_elses_dir_is_refused(tmp_path: Path) -> None:
    assert wrong_user(tmp_path, euid=1000) is None  # not root: the file system decides
    assert wrong_user(tmp_path / "missing", euid=0) is None  # nothing there yet
    if os.geteuid() == 0:
        assert wrong_user(tmp_path, euid=0) is None  # root's own dir
        nobody = pwd.getpwnam("nobody")
        os.chown(tmp_path, nobody.pw_uid, nobody.pw_gid)
        why = wrong_user(tmp_path, euid=0)
        assert why is not None and "belongs to nobody" in why and "runuser -u nobody" in why


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_root_once_exits_2_and_writes_nothing(
    http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path,
) -> None:
    repo.add_skill("alpha")
    repo.commit("v1")
    nobody = pwd.getpwnam("nobody")
    state, published = tmp_path / "state", tmp_path / "published"
    for d in (state, published):
        d.mkdir()
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
    proc = subprocess.run(
        [SKILLSYNCD, "--once", "--repo", http_git_server.url_for(repo), "--state-dir", str(state)],
        env=_clean_env({"SKILLSYNC_PUBLISH_MODE": "mirror", "SKILLSYNC_PUBLISH_DIR": str(published)}),
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert "belongs to nobody" in line and "runuser -u nobody -- skillsyncd" in line
    assert list(state.iterdir()) == [] and list(published.iterdir()) == []
