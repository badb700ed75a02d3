"""GitHub commit statuses against a local server that checks GitHub's documented REST shape.

``POST /repos/{owner}/{repo}/statuses/{sha}`` with a bearer token, the
``application/vnd.github+json`` media type and a body of state, description
(at most 140 characters), context and target_url. Refusals (401, 403, 422, rate
limits) are one warning each and never a retry; a deploy never waits.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from gitserver import HttpGitServer, RepoBuilder
from receivers import FakeGitHub
from test_daemon import SKILLSYNCD, _clean_env

from skillsyncd.audit.events import decode
from skillsyncd.config import Config, Secret
from skillsyncd.notify import commit_status
from skillsyncd.notify.commit_status import Status, status_for

TOKEN = "ghs_StatusCanaryToken1a2b3c4d5e6f7a8b9c"
SHA = "c" * 40


def test_status_for_each_decision() -> None:
    ctx, url = "skillsyncd/r1", "https://skills.example.com/"
    ok = status_for(decode({"kind": "deployed", "commit": SHA, "skills_count": 58, "held_back": {}}),
                    ctx, url)
    assert ok == Status(SHA, "success", "deployed 58 skills", ctx, url)
    held = status_for(decode({"kind": "deployed", "commit": SHA, "skills_count": 3, "held_back": {
        "bad": ["bad/SKILL.md: error [frontmatter.required] description is missing"] * 9}}), ctx, None)
    assert held is not None and held.state == "failure" and held.description.startswith("held back: bad (")
    assert len(held.body()["description"]) <= 140 and "target_url" not in held.body()
    rej = status_for(decode({"kind": "rejected", "commit": SHA, "policy": "reject", "findings": [
        {"rule": "secret.npm-token", "severity": "error", "path": "x/a.sh", "message": "npm token"}]}),
        ctx, None)
    assert rej is not None and rej.description == "rejected: x/a.sh: [secret.npm-token] npm token"
    rb = status_for(decode({"kind": "rolled_back", "commit": SHA, "reason": "health URL answered 500"}),
                    ctx, None)
    assert rb is not None and rb.state == "failure" and "health URL" in rb.description
    assert status_for(decode({"kind": "no_change", "commit": SHA}), ctx, None) is None
    assert status_for(decode({"kind": "deployed", "commit": "short"}), ctx, None) is None


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    g = FakeGitHub(TOKEN)
    yield g
    g.close()


def _poster(github: FakeGitHub, tmp_path: Path, now: list[float] | None = None) -> commit_status.Poster:
    cfg = Config(repo="https://github.com/acme/skills.git", state_dir=tmp_path, token=Secret(TOKEN),
                 commit_status=True, github_api_url=github.url, replica_id="r1",
                 commit_status_url="https://skills.example.com/")
    clock = (lambda: now[0]) if now else __import__("time").time
    poster = commit_status.Poster(cfg, "acme", "skills", clock=clock)
    return poster


def _event(sha: str, n: int = 2) -> dict[str, object]:
    return decode({"kind": "deployed", "commit": sha, "skills_count": n, "held_back": {}})


def test_posts_the_documented_shape(github: FakeGitHub, tmp_path: Path) -> None:
    poster = _poster(github, tmp_path)
    poster.event(_event(SHA))
    poster.event(_event(SHA))  # the same decision twice: posted once
    assert poster.outbox.flush(10)
    assert github.problems == []
    assert github.accepted == [{"state": "success", "description": "deployed 2 skills",
                                "context": "skillsyncd/r1", "target_url": "https://skills.example.com/",
                                "owner": "acme", "repo": "skills", "sha": SHA}]


@pytest.mark.parametrize("code", [401, 403])
def test_a_refused_token_is_one_warning_and_posting_stops(github: FakeGitHub, tmp_path: Path,
                                                          code: int) -> None:
    github.answers.append((code, {}, {"message": "Bad credentials" if code == 401 else
                                      "Resource not accessible by integration"}))
    poster = _poster(github, tmp_path)
    for i in range(5):
        poster.event(_event(f"{i:x}" * 40))
    assert poster.outbox.flush(10)
    assert github.requests == 1  # no retry storm
    assert poster.off is not None and str(code) in poster.off
    assert poster.outbox.counts == {"failed": 1, "skipped": 5}


def test_422_warns_for_that_commit_and_carries_on(github: FakeGitHub, tmp_path: Path) -> None:
    github.answers.append((422, {}, {"message": "No commit found for SHA"}))
    poster = _poster(github, tmp_path)
    poster.event(_event("d" * 40))
    poster.event(_event("e" * 40))
    assert poster.outbox.flush(10)
    assert github.requests == 2 and [a["sha"] for a in github.accepted] == ["e" * 40]


@pytest.mark.parametrize(("code", "headers"), [
    (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1060"}),
    (429, {"retry-after": "60"}),
])
def test_a_rate_limit_pauses_until_reset(github: FakeGitHub, tmp_path: Path, code: int,
                                          headers: dict[str, str]) -> None:
    now = [1000.0]
    github.answers.append((code, headers, {"message": "API rate limit exceeded"}))
    poster = _poster(github, tmp_path, now)
    poster.event(_event("1" * 40))
    poster.event(_event("2" * 40))  # inside the pause: skipped, not sent
    assert poster.outbox.flush(10)
    assert github.requests == 1 and poster.paused_until == pytest.approx(1060.0)
    now[0] = 1061.0
    poster.event(_event("3" * 40))
    assert poster.outbox.flush(10)
    assert [a["sha"] for a in github.accepted] == ["3" * 40]


def test_other_forges_stay_off(tmp_path: Path) -> None:
    cfg = Config(repo="https://gitlab.com/acme/skills.git", state_dir=tmp_path, commit_status=True)
    assert commit_status.build(cfg) is None
    assert commit_status.build(dataclasses.replace(cfg, commit_status=False)) is None
    ghe = commit_status.build(dataclasses.replace(cfg, github_repository="acme/skills"))
    assert ghe is not None and (ghe.owner, ghe.repo) == ("acme", "skills")


def test_once_posts_statuses_and_a_dead_api_never_fails_the_deploy(
    http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path, github: FakeGitHub,
    closed_port: int,
) -> None:
    repo.add_skill("alpha", description="ok")
    repo.write("broken/SKILL.md", "---\nname: broken\n---\n")
    head = repo.commit("v1")
    env = {"GITHUB_TOKEN": TOKEN, "SKILLSYNC_COMMIT_STATUS": "true",
           "SKILLSYNC_GITHUB_API_URL": github.url, "SKILLSYNC_GITHUB_REPOSITORY": "acme/skills",
           "SKILLSYNC_REPLICA_ID": "railway-1"}
    argv = [SKILLSYNCD, "--once", "--repo", http_git_server.url_for(repo),
            "--state-dir", str(tmp_path / "state")]
    proc = subprocess.run(argv, env=_clean_env(env), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    [posted] = github.accepted
    assert posted["sha"] == head and posted["state"] == "failure"
    assert posted["context"] == "skillsyncd/railway-1" and "broken" in posted["description"]
    assert github.problems == []
    # GitHub unreachable: one warning line, exit 0
    repo.add_skill("alpha", description="ok again")
    repo.commit("v2")
    env["SKILLSYNC_GITHUB_API_URL"] = f"http://127.0.0.1:{closed_port}"
    proc = subprocess.run(argv, env=_clean_env(env), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count('"commit_status_failed"') == 1
    assert TOKEN not in proc.stdout + proc.stderr
