"""``skillsyncd plan``: what deploying a ref would do, against a real deploy, changing nothing.

Every command is a real ``skillsyncd`` process against a real git server on
127.0.0.1; the live release comes from a real ``--once`` deploy. The preview is then
checked against what deploying the same ref really does.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gitserver import HttpGitServer, RepoBuilder

from skillsyncd.errors import EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from skillsyncd.release.releases import Releases

SKILLSYNCD = str(Path(sys.executable).parent / "skillsyncd")


def _env(**extra: str) -> dict[str, str]:
    prefixes = ("SKILLSYNC_", "GITHUB_", "POLLING_", "NEO4J_", "MAX_SKILL")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(prefixes)}, **extra}


class Cli:
    def __init__(self, url: str, state: Path) -> None:
        self.url, self.state = url, state

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SKILLSYNCD, *args, "--repo", self.url, "--state-dir",
                               str(self.state)], env=_env(**env), capture_output=True, text=True,
                              timeout=120)

    def plan(self, *args: str, **env: str) -> tuple[int, dict[str, Any]]:
        done = self("plan", "--format", "json", *args, **env)
        assert done.returncode in (EXIT_OK, EXIT_REJECTED), done.stderr
        return done.returncode, dict(json.loads(done.stdout))


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its content hash (links: their target): any write shows."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


@pytest.fixture
def cli(http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path) -> Cli:
    return Cli(http_git_server.url_for(repo), tmp_path / "state")


def _deploy_v1(repo: RepoBuilder, cli: Cli) -> str:
    repo.add_skill("alpha", description="first", version="1.0")
    repo.add_skill("beta", description="b")
    repo.add_skill("keep", description="unchanged")
    sha = repo.commit("v1")
    done = cli("--once")
    assert done.returncode == EXIT_OK, done.stderr
    return sha


def _open_pull_request(repo: RepoBuilder) -> str:
    """A branch that changes alpha, removes beta, adds a broken gamma and a fine delta."""
    repo.branch("pr")
    repo._git("checkout", "-q", "pr")
    repo.add_skill("alpha", description="second | for @team", version="1.1",
                   body="Use this skill in tests, now with more words.\n")
    repo.remove("beta")
    repo.write("gamma/SKILL.md", "no frontmatter here\n")
    repo.add_skill("delta", description="d")
    sha = repo.commit("pr")
    repo._git("checkout", "-q", "main")
    return sha


def test_plan_previews_a_branch_and_the_deploy_then_does_what_it_said(
        repo: RepoBuilder, cli: Cli) -> None:
    _deploy_v1(repo, cli)
    head = _open_pull_request(repo)
    before = _snapshot(cli.state)

    code, plan = cli.plan("--ref", "pr")

    assert _snapshot(cli.state) == before  # nothing staged, flipped, journalled or locked
    assert code == EXIT_REJECTED and plan["exit_code"] == EXIT_REJECTED
    assert plan["commit"] == head and plan["outcome"] == "deployed"
    assert plan["live_release"] == Releases(cli.state).current()
    skills = {s["name"]: s for s in plan["skills"]}
    assert {n: s["change"] for n, s in skills.items()} == {
        "alpha": "changed", "beta": "removed", "gamma": "added", "delta": "added"}
    alpha = skills["alpha"]
    assert {c["field"]: (c["before"], c["after"]) for c in alpha["frontmatter"]} == {
        "version": ("1.0", "1.1"), "description": ("first", "second | for @team")}
    assert alpha["bytes_delta"] == alpha["after"]["bytes"] - alpha["before"]["bytes"] > 0
    assert alpha["held_back"] is None
    gamma = skills["gamma"]
    assert gamma["held_back"]["rule"] == "frontmatter.missing"
    assert gamma["held_back"]["path"] == "gamma/SKILL.md" and not gamma["keeps_serving"]
    assert plan["counts"] == {"added": 2, "changed": 1, "removed": 1, "unchanged": 1,
                              "held_back": 1, "not_loaded": 0, "live_after": 3,
                              "warnings": plan["counts"]["warnings"]}

    # The deploy of the same ref does exactly what the preview said.
    done = cli("--once", "--ref", "pr")
    assert done.returncode == EXIT_OK, done.stderr
    releases = Releases(cli.state)
    manifest = releases.manifest(releases.current() or "")
    assert manifest.commit == head
    assert sorted(manifest.validation.held_back) == ["gamma"]
    assert sorted(s.name for s in manifest.live) == ["alpha", "delta", "keep"]
    assert manifest.live_by_name()["alpha"].version == "1.1"


def test_plan_renders_text_and_markdown_a_pull_request_can_show(repo: RepoBuilder, cli: Cli) -> None:
    _deploy_v1(repo, cli)
    _open_pull_request(repo)

    text = cli("plan", "--ref", "pr")
    assert text.returncode == EXIT_REJECTED, text.stderr
    assert "would deploy (+2 ~1 -1 =1; 1 held back; 3 skills live after)" in text.stdout
    assert "version: 1.0 -> 1.1" in text.stdout and "  - beta  removed" in text.stdout
    assert "held back (1 error): gamma/SKILL.md:1: error [frontmatter.missing]" in text.stdout

    md = cli("plan", "--ref", "pr", "--format", "markdown")
    assert md.returncode == EXIT_REJECTED, md.stderr
    lines = md.stdout.splitlines()
    assert lines[0] == "### :x: skillsyncd plan: would deploy, 1 held back"
    rows = {line.split(" | ")[0]: line for line in lines if line.startswith("| `")}
    assert set(rows) == {"| `alpha`", "| `beta`", "| `delta`", "| `gamma`"}
    # A | in a description stays inside its cell, an @mention does not ping anyone.
    assert "description: first → second \\| for @\u200bteam" in rows["| `alpha`"]
    assert rows["| `alpha`"].count(" | ") == 4 and rows["| `alpha`"].endswith("| goes live |")
    assert "**held back**: `frontmatter.missing` gamma/SKILL.md:1:" in rows["| `gamma`"]
    assert json.loads(cli("plan", "--ref", "main", "--format", "json").stdout)["outcome"] == "no_change"


def test_plan_shows_a_freeze_and_status_manifest_carries_it_to_plan_against(
        repo: RepoBuilder, cli: Cli, tmp_path: Path) -> None:
    _deploy_v1(repo, cli)
    repo.add_skill("alpha", description="first", version="1.2")
    repo.commit("v2")
    assert cli("freeze", "--reason", "launch day").returncode == EXIT_OK

    code, plan = cli.plan()
    assert code == EXIT_OK and plan["outcome"] == "frozen"  # nothing held back: exit 0
    assert plan["freeze"]["reason"] == "launch day" and plan["freeze_known"]
    text = cli("plan")
    assert "would wait: deployments are frozen" in text.stdout
    assert "deployments frozen since" in text.stdout and "launch day" in text.stdout

    exported = cli("status", "--manifest")
    assert exported.returncode == EXIT_OK, exported.stderr
    export = tmp_path / "live-manifest.json"
    export.write_text(exported.stdout)
    doc = json.loads(exported.stdout)
    assert doc["release"] == Releases(cli.state).current()
    assert doc["live_state"]["freeze"]["reason"] == "launch day"

    code, against = cli.plan("--against", str(export), "--state-dir", str(tmp_path / "absent"))
    assert not (tmp_path / "absent").exists()
    assert code == EXIT_OK and against["outcome"] == "frozen"
    assert against["against"] == f"manifest {export}" and against["exported"]
    same = ("against", "exported")
    assert {k: v for k, v in against.items() if k not in same} == \
        {k: v for k, v in plan.items() if k not in same}

    assert cli("unfreeze").returncode == EXIT_OK
    code, plan = cli.plan()
    assert code == EXIT_OK and plan["outcome"] == "deployed" and plan["freeze"] is None


def test_plan_reads_a_state_dir_it_never_creates(repo: RepoBuilder, http_git_server: HttpGitServer,
                                                 tmp_path: Path) -> None:
    repo.add_skill("alpha")
    repo.commit("v1")
    missing = Cli(http_git_server.url_for(repo), tmp_path / "nowhere")
    done = missing("plan")
    assert done.returncode == EXIT_USAGE
    assert "no state dir at" in done.stderr and "--against MANIFEST" in done.stderr
    assert not (tmp_path / "nowhere").exists()
    assert missing("status", "--manifest").returncode == EXIT_USAGE
    assert not (tmp_path / "nowhere").exists()

    bad = tmp_path / "not-a-manifest.json"
    bad.write_text('{"skills": []}')
    done = missing("plan", "--against", str(bad))
    assert done.returncode == EXIT_USAGE and "is not a skillsyncd manifest" in done.stderr


def test_plan_shows_a_whole_commit_refused(repo: RepoBuilder, cli: Cli) -> None:
    _deploy_v1(repo, cli)
    _open_pull_request(repo)
    code, plan = cli.plan("--ref", "pr", "--on-invalid", "reject")
    assert code == EXIT_REJECTED and plan["outcome"] == "rejected"
    assert [f["rule"] for f in plan["refusal"]["findings"]] == ["frontmatter.missing"]
    md = cli("plan", "--ref", "pr", "--on-invalid", "reject", "--format", "markdown").stdout
    assert md.startswith("### :x: skillsyncd plan: would be refused")
    delta = next(line for line in md.splitlines() if line.startswith("| `delta` |"))
    assert delta.startswith("| `delta` | added | name: (none) → delta<br>")
    assert delta.endswith("| does not go live |") and "**2 added" not in md
    assert "; 3 skills live after**" in md  # refused: what is live stays live

    # The mass-removal guard: a branch that deletes every skill.
    repo.branch("wipe")
    repo._git("checkout", "-q", "wipe")
    for name in ("alpha", "beta", "keep"):
        repo.remove(name)
    repo.write("README.md", "empty\n")
    repo.commit("wipe")
    code, plan = cli.plan("--ref", "wipe")
    assert code == EXIT_REJECTED and plan["outcome"] == "rejected"
    assert plan["refusal"]["findings"][0]["rule"] == "guard.mass-removal"
    assert plan["counts"]["removed"] == 3


def test_plan_names_skills_over_the_gateway_caps_and_other_settings(
        repo: RepoBuilder, cli: Cli) -> None:
    _deploy_v1(repo, cli)
    repo.add_skill("zeta", description="z")
    repo.commit("v2")
    code, plan = cli.plan(SKILLSYNC_GATEWAY_MAX_SKILLS="3")
    assert code == EXIT_OK  # layout.gateway-cap warns by default: shown, not failed
    assert plan["gateway_cap"]["rule"] == "layout.gateway-cap"
    assert [s["name"] for s in plan["skills"] if s["not_loaded"]] == ["zeta"]
    assert plan["settings_differ"]  # the live release was judged with the default caps
    assert "settings: judged under settings that differ" in cli(
        "plan", SKILLSYNC_GATEWAY_MAX_SKILLS="3").stdout
    code, plan = cli.plan()
    assert not plan["settings_differ"] and plan["gateway_cap"] is None


def test_plan_against_an_export_reports_the_prompt_budget_of_the_gateway_named(
        repo: RepoBuilder, cli: Cli, tmp_path: Path) -> None:
    _deploy_v1(repo, cli)
    export = tmp_path / "live-manifest.json"
    export.write_text(cli("status", "--manifest").stdout)
    for n in range(6):
        repo.add_skill(f"long-{n}", description="a description long enough to count " * 4)
    repo.commit("many long descriptions")
    openclaw = tmp_path / "openclaw.json"
    openclaw.write_text(json.dumps({"skills": {"limits": {"maxSkillsPromptChars": 900}}}))

    code, plan = cli.plan("--against", str(export), SKILLSYNC_GATEWAY_CONFIG=str(openclaw))
    assert code == EXIT_OK  # usage.* warn by default
    budget = next(f for f in plan["usage"] if f["rule"] == "usage.prompt-budget")
    assert "maxSkillsPromptChars=900" in budget["message"]
    assert "prompt budget: [usage.prompt-budget]" in cli(
        "plan", "--against", str(export), SKILLSYNC_GATEWAY_CONFIG=str(openclaw)).stdout
    # Away from the gateway only what SKILLSYNC_GATEWAY_* names counts: no config, no budget.
    code, plan = cli.plan("--against", str(export))
    assert not any(f["rule"] == "usage.prompt-budget" for f in plan["usage"])


def test_plan_of_a_held_back_change_says_the_live_version_keeps_serving(
        repo: RepoBuilder, cli: Cli) -> None:
    _deploy_v1(repo, cli)
    _open_pull_request(repo)
    assert cli("--once", "--ref", "pr").returncode == EXIT_OK  # gamma held back, nothing live of it
    repo._git("checkout", "-q", "pr")
    repo.write("alpha/SKILL.md", "---\nname: alpha\n  bad: indentation\n---\n")
    repo.commit("break alpha")
    repo._git("checkout", "-q", "main")

    code, plan = cli.plan("--ref", "pr")
    assert code == EXIT_REJECTED
    skills = {s["name"]: s for s in plan["skills"]}
    assert set(skills) == {"alpha", "gamma"}  # what is live already is not news
    assert skills["alpha"]["held_back"] is not None and skills["alpha"]["keeps_serving"]
    # gamma: the same bytes held back by the last deploy, judged by its recorded verdict
    assert skills["gamma"]["held_back_before"] and skills["gamma"]["frontmatter"] == []
    assert skills["gamma"]["held_back"]["rule"] == "frontmatter.missing"
    text = cli("plan", "--ref", "pr").stdout
    alpha = text.split("  ~ alpha  changed", 1)[1].splitlines()[1]
    assert alpha.startswith("      held back (") and "; its live version keeps serving): " in alpha


def test_plan_of_a_commit_marked_bad_says_a_deploy_skips_it(
        repo: RepoBuilder, cli: Cli, tmp_path: Path) -> None:
    _deploy_v1(repo, cli)
    repo.add_skill("alpha", description="first", version="2.0")
    v2 = repo.commit("v2")
    assert cli("--once").returncode == EXIT_OK
    rolled = cli("rollback")
    assert rolled.returncode == EXIT_OK, rolled.stderr  # marks v2 bad

    code, plan = cli.plan()
    assert code == EXIT_REJECTED and plan["commit"] == v2 and plan["outcome"] == "skipped_bad"
    assert plan["marked_bad"]
    assert "would be skipped: the commit is marked bad" in cli("plan").stdout
    export = tmp_path / "live-manifest.json"
    export.write_text(cli("status", "--manifest").stdout)
    code, against = cli.plan("--against", str(export))
    assert code == EXIT_REJECTED and against["outcome"] == "skipped_bad"
    assert against["marked_bad"] == plan["marked_bad"]


def test_an_exported_freeze_past_its_until_counts_as_ended(tmp_path: Path) -> None:
    from skillsyncd.release.manifest import Manifest, export_json
    from skillsyncd.sync.preview_run import live_from_manifest

    manifest = Manifest(release="20261208T000000Z-aaaaaaaaaaaa", commit="a" * 40)
    path = tmp_path / "live-manifest.json"
    for until, frozen in (("2000-01-01T00:00:00.000Z", False), ("2999-01-01T00:00:00.000Z", True),
                          (None, True)):
        freeze = {"since": "1999-12-31T00:00:00.000Z", "reason": "r", "until": until, "by": "cli"}
        path.write_bytes(export_json(manifest, {"exported": "now", "freeze": freeze}))
        view, state = live_from_manifest(path)
        assert (view.freeze is not None) is frozen and view.freeze_known
        assert state.commit == "a" * 40
    path.write_bytes(manifest.to_json())  # a release's own manifest: nothing known of a freeze
    view, _ = live_from_manifest(path)
    assert view.freeze is None and not view.freeze_known and view.bad_commits is None
