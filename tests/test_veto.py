"""SKILLSYNC_PRE_FLIP_COMMAND with real commands: a script that refuses a word, one that hangs.

Each sync is a real ``skillsyncd --once`` against a real git server on 127.0.0.1;
the command is a real shell script that reads the staged release and its stdin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gitserver import HttpGitServer, RepoBuilder
from polling import wait_for

from skillsyncd.audit.events import Rejected
from skillsyncd.audit.journal import Journal
from skillsyncd.errors import EXIT_OK, EXIT_REJECTED
from skillsyncd.release.releases import Releases

SKILLSYNCD = str(Path(sys.executable).parent / "skillsyncd")
TOKEN = "ghp_canaryTokenForVetoTests0123456789"
WEBHOOK = "webhook-canary-secret-42"
NEO4J = "neo4j-canary-password-77"
HTTP_TOKEN = "http-canary-token-veto-99"
NOTIFY = "json://127.0.0.1:9/notify-canary"

# Refuses a release whose SKILL.md says FORBIDDEN; keeps what it was given for the test.
WORD = """#!/bin/sh
cat > "$OUT/stdin.json"
env > "$OUT/env.txt"
pwd > "$OUT/cwd.txt"
if grep -l FORBIDDEN "$SKILLSYNC_RELEASE_PATH"/*/SKILL.md; then
  echo "checking $SKILLSYNC_COMMIT"
  echo "policy: the word FORBIDDEN is not allowed in a skill" >&2
  exit 3
fi
exit 0
"""

# Starts a helper in its own process group, then hangs.
HANG = """#!/bin/sh
sleep 600 &
echo $! > "$OUT/helper.pid"
echo "hanging now"
sleep 600
"""


def _script(tmp: Path, name: str, body: str) -> Path:
    path = tmp / name
    path.write_text(body)
    path.chmod(0o755)
    return path


class Once:
    def __init__(self, url: str, state: Path, out: Path) -> None:
        self.url, self.state, self.out = url, state, out

    def __call__(self, command: Path, *args: str, timeout: str = "30",
                 **env: str) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("SKILLSYNC_", "GITHUB_", "NEO4J_", "POLLING_"))}
        full = {**base, "OUT": str(self.out), "SKILLSYNC_PRE_FLIP_COMMAND": str(command),
                "SKILLSYNC_PRE_FLIP_TIMEOUT": timeout, **env}
        return subprocess.run([SKILLSYNCD, "--once", *args, "--repo", self.url, "--state-dir",
                               str(self.state)], env=full, capture_output=True, text=True,
                              timeout=120)

    def rejected(self) -> list[Rejected]:
        return [e for e in Journal(self.state / "journal.jsonl").read() if isinstance(e, Rejected)]


@pytest.fixture
def once(http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path) -> Once:
    out = tmp_path / "out"
    out.mkdir()
    return Once(http_git_server.url_for(repo), tmp_path / "state", out)


def test_a_command_that_refuses_a_word_keeps_the_commit_from_going_live(
        repo: RepoBuilder, once: Once, tmp_path: Path) -> None:
    word = _script(tmp_path, "word.sh", WORD)
    repo.add_skill("alpha", description="fine")
    first = repo.commit("v1")
    assert once(word).returncode == EXIT_OK
    live = Releases(once.state).current()
    doc: dict[str, Any] = json.loads((once.out / "stdin.json").read_text())
    assert doc["commit"] == first and doc["plan"]["added"] == ["alpha"]
    assert doc["release_path"] == (once.out / "cwd.txt").read_text().strip()
    assert doc["previous_release"] is None

    repo.add_skill("beta", description="says FORBIDDEN here")
    second = repo.commit("v2")
    done = once(word)
    assert done.returncode == EXIT_REJECTED, done.stderr
    assert Releases(once.state).current() == live
    assert Releases(once.state).complete() == [live]  # the refused release is not kept
    doc = json.loads((once.out / "stdin.json").read_text())
    assert doc["commit"] == second and doc["plan"]["added"] == ["beta"]
    assert doc["previous_release"] == live and doc["previous_commit"] == first
    [event] = once.rejected()
    assert event.commit == second and event.policy == "veto"
    reason = str(event.findings[0]["message"])
    assert "exited 3" in reason and "the word FORBIDDEN is not allowed" in reason
    assert f"checking {second}" in reason and "beta/SKILL.md" in reason
    assert "the word FORBIDDEN is not allowed" in done.stderr

    status = json.loads(subprocess.run([SKILLSYNCD, "status", "--json", "--state-dir",
                                        str(once.state)], capture_output=True, text=True,
                                       check=True).stdout)
    assert status["deployed_commit"] == first and status["behind_upstream"] is True
    assert once(word).returncode == EXIT_REJECTED and len(once.rejected()) == 1  # not re-run
    repo.add_skill("beta", description="fixed")
    third = repo.commit("v3")
    assert once(word).returncode == EXIT_OK
    assert Releases(once.state).manifest(Releases(once.state).current() or "").commit == third


def test_a_hanging_command_is_killed_with_its_process_group_and_refuses(
        repo: RepoBuilder, once: Once, tmp_path: Path) -> None:
    hang = _script(tmp_path, "hang.sh", HANG)
    repo.add_skill("alpha", description="v1")
    head = repo.commit("v1")
    done = once(hang, timeout="1")
    assert done.returncode == EXIT_REJECTED, done.stderr
    assert Releases(once.state).current() is None
    [event] = once.rejected()
    reason = str(event.findings[0]["message"])
    assert event.commit == head and "timed out after 1s" in reason and "hanging now" in reason
    helper = int((once.out / "helper.pid").read_text())
    wait_for(lambda: not _alive(helper), timeout=10, what=f"helper {helper} gone")


def test_the_command_never_sees_our_secrets(repo: RepoBuilder, once: Once, tmp_path: Path) -> None:
    word = _script(tmp_path, "word.sh", WORD)
    repo.add_skill("alpha", description="v1")
    head = repo.commit("v1")
    secret_file = tmp_path / "neo4j-password"
    secret_file.write_text(NEO4J)
    done = once(word, GITHUB_TOKEN=TOKEN, SKILLSYNC_WEBHOOK_SECRET=WEBHOOK,
                NEO4J_PASSWORD_FILE=str(secret_file), SKILLSYNC_HTTP_TOKEN=HTTP_TOKEN,
                SKILLSYNC_NOTIFY=NOTIFY, SOME_TOOL_AUTH=f"Bearer {TOKEN}", KEEP_ME="yes")
    assert done.returncode == EXIT_OK, done.stderr
    env = (once.out / "env.txt").read_text()
    for secret in (TOKEN, WEBHOOK, HTTP_TOKEN, NOTIFY, str(secret_file), NEO4J):
        assert secret not in env
    lines = dict(line.split("=", 1) for line in env.splitlines() if "=" in line)
    assert lines["SKILLSYNC_COMMIT"] == head and lines["SKILLSYNC_EVENT"] == "pre_flip"
    assert Path(lines["SKILLSYNC_RELEASE_PATH"]).name == lines["SKILLSYNC_RELEASE"]
    assert lines["KEEP_ME"] == "yes" and "SOME_TOOL_AUTH" not in lines


def test_a_command_that_cannot_start_refuses(repo: RepoBuilder, once: Once, tmp_path: Path) -> None:
    repo.add_skill("alpha", description="v1")
    repo.commit("v1")
    done = once(tmp_path / "no-such-command")
    assert done.returncode == EXIT_REJECTED and "could not start" in done.stderr
    assert Releases(once.state).current() is None


def test_a_kill_while_the_command_runs_leaves_the_old_release_and_the_restart_deploys(
        repo: RepoBuilder, once: Once, tmp_path: Path) -> None:
    word = _script(tmp_path, "word.sh", WORD)
    repo.add_skill("alpha", description="v1")
    repo.commit("v1")
    assert once(word).returncode == EXIT_OK
    live = Releases(once.state).current()
    repo.add_skill("alpha", description="v2")
    head = repo.commit("v2")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSYNC_")}
    killed = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "crashpoint.py"), "mid-veto", "--once",
         "--repo", once.url, "--state-dir", str(once.state)],
        env={**env, "OUT": str(once.out), "SKILLSYNC_PRE_FLIP_COMMAND": str(word)},
        capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert Releases(once.state).current() == live  # the staged release never went live
    assert once(word).returncode == EXIT_OK
    assert Releases(once.state).manifest(Releases(once.state).current() or "").commit == head
    assert [r for r in Releases(once.state).complete() if r != live][-1].endswith(head[:12])


def test_a_first_deploy_killed_in_a_refusing_command_never_goes_live_by_repair(
        repo: RepoBuilder, once: Once, tmp_path: Path) -> None:
    """Start-up repair points a missing ``current`` at the newest complete release; the one
    a kill left staged has not passed the command, so it must not be that release."""
    word = _script(tmp_path, "word.sh", WORD)
    repo.add_skill("alpha", description="says FORBIDDEN")
    repo.commit("v1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSYNC_")}
    killed = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "crashpoint.py"), "mid-veto", "--once",
         "--repo", once.url, "--state-dir", str(once.state)],
        env={**env, "OUT": str(once.out), "SKILLSYNC_PRE_FLIP_COMMAND": str(word)},
        capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert len(Releases(once.state).complete()) == 1  # staged, complete, never live
    done = once(word)
    assert done.returncode == EXIT_REJECTED, done.stderr
    assert Releases(once.state).current() is None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie is dead, only not reaped yet
