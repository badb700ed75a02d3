"""Global flags work before and after the subcommand (issue 15), or are refused naming the flag."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from skillsyncd.cli import build_parser, config_from_args

SKILLSYNCD = str(Path(sys.executable).parent / "skillsyncd")

# flag, value on the command line, Config field, the value it must end up with
GLOBAL_FLAGS: list[tuple[str, str | None, str, Any]] = [
    ("--repo", "https://example.invalid/skills.git", "repo", "https://example.invalid/skills.git"),
    ("--ref", "release", "ref", "release"),
    ("--state-dir", "/tmp/skillsync-flag-test", "state_dir", Path("/tmp/skillsync-flag-test")),
    ("--skills-path", "skills", "skills_path", "skills"),
    ("--interval", "7", "interval", 7.0),
    ("--http-bind", "127.0.0.1:9999", "http_bind", "127.0.0.1:9999"),
    ("--on-invalid", "reject", "on_invalid", "reject"),
    ("--strict", None, "strict", True),
    ("--log-level", "debug", "log_level", "debug"),
]

# one argv tail per subcommand (the positional arguments it needs)
COMMANDS = {
    "run": ["run"], "status": ["status"], "releases": ["releases"], "rollback": ["rollback"],
    "validate": ["validate", "."], "audit": ["audit"], "fleet": ["fleet"],
}


def _flag(flag: str, value: str | None) -> list[str]:
    return [flag] if value is None else [flag, value]


# The configuration flags each command's --help lists: the ones it uses (README, Command line).
_COMMON = {"--config", "--log-level"}
TAKES: dict[str, set[str]] = {
    "run": {f[0] for f in GLOBAL_FLAGS} | _COMMON,
    "status": _COMMON | {"--state-dir", "--ref"},
    "releases": _COMMON | {"--state-dir"}, "rollback": _COMMON | {"--state-dir"},
    "audit": _COMMON | {"--state-dir"}, "validate": _COMMON | {"--skills-path", "--strict"},
    "fleet": _COMMON,
}


@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("flag", "value", "field", "expected"), GLOBAL_FLAGS,
                         ids=[f[0] for f in GLOBAL_FLAGS])
def test_global_flag_in_either_position(flag: str, value: str | None, field: str, expected: Any,
                                        command: str, position: str) -> None:
    tail = COMMANDS[command]
    argv = (_flag(flag, value) + tail if position == "before"
            else tail[:1] + _flag(flag, value) + tail[1:])
    args = build_parser().parse_args(argv)
    assert args.command == command
    cfg = config_from_args(args, env={})
    assert getattr(cfg, field) == expected


@pytest.mark.parametrize("position", ["before", "after"])
def test_config_file_flag_in_either_position(tmp_path: Path, position: str) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('ref = "from-file"\n')
    argv = ["--config", str(conf), "status"] if position == "before" else ["status", "--config", str(conf)]
    assert config_from_args(build_parser().parse_args(argv), env={}).ref == "from-file"


def test_the_flag_after_the_subcommand_wins() -> None:
    args = build_parser().parse_args(["--ref", "outer", "status", "--ref", "inner"])
    assert config_from_args(args, env={}).ref == "inner"


@pytest.mark.parametrize("position", ["before", "after"])
def test_once_and_force_in_either_position(position: str) -> None:
    argv = ["--once", "--force", "run"] if position == "before" else ["run", "--once", "--force"]
    args = build_parser().parse_args(argv)
    assert args.once is True and args.force is True


def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SKILLSYNC_", "GITHUB_", "POLLING_", "NEO4J_", "MAX_SKILL"))}
    return subprocess.run([SKILLSYNCD, *argv], capture_output=True, text=True, timeout=60,
                          env={**clean, **(env or {})})


def _help_flags(command: str) -> set[str]:
    """The long options ``skillsyncd COMMAND --help`` lists."""
    out = _cli(command, "--help").stdout
    return {word.rstrip(",") for line in out.splitlines()
            for word in line.split() if word.startswith("--")}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_subcommand_help_lists_only_what_it_takes_with_a_description(command: str) -> None:
    done = _cli(command, "--help")
    assert done.returncode == 0, done.stderr
    offered = {f for f in _help_flags(command) if f in {g[0] for g in GLOBAL_FLAGS} | _COMMON
               | {"--once", "--force"}}
    takes = TAKES[command] | ({"--once", "--force"} if command == "run" else set())
    assert offered == takes, (command, sorted(offered ^ takes))
    # a description line between the usage and the options
    head = done.stdout.split("\n\n")
    assert len(head) > 2 and not head[1].startswith(("options:", "positional")), done.stdout
    # every option says what it does (--json had no help text)
    bare = [line for line, after in itertools.pairwise([*done.stdout.splitlines(), ""])
            if line.strip().startswith("--") and len(line.split()) <= 2  # no help on its line
            and not (after.startswith(" " * 10) and not after.strip().startswith("-"))]
    assert not bare, bare


def test_state_dir_before_status_is_honoured(tmp_path: Path) -> None:
    """The reproduction from the issue: this used to report /data/skillsync."""
    done = _cli("--state-dir", str(tmp_path / "s"), "status", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state_dir"] == str(tmp_path / "s")


@pytest.mark.parametrize("argv", [["status", "--once"], ["status", "--force"],
                                  ["audit", "--once"], ["releases", "--version"]])
def test_a_flag_a_command_cannot_take_is_refused_naming_it(argv: list[str]) -> None:
    done = _cli(*argv)
    assert done.returncode == 2
    assert argv[1] in done.stderr


def test_every_once_on_a_rejected_commit_exits_4(repo: Any, tmp_path: Path) -> None:
    """The first --once refuses the commit, the second skips it as rejected: the same exit code."""
    repo.write("good/SKILL.md", "---\nname: good\ndescription: fine\n---\nbody\n")
    repo.write("bad/SKILL.md", "---\nname: bad\n---\nno description\n")
    repo.commit("one good, one refused")
    argv = ("--once", "--repo", str(repo.path), "--state-dir", str(tmp_path / "s"),
            "--on-invalid", "reject")
    first, second = _cli(*argv), _cli(*argv)
    assert first.returncode == 4, first.stderr
    assert second.returncode == 4, second.stderr
    assert "rejected:" in second.stderr, second.stderr
    status = json.loads(_cli("--state-dir", str(tmp_path / "s"), "status", "--json").stdout)
    assert status["current_release"] is None  # nothing went live either time


@pytest.mark.parametrize("argv", [["rollback"], ["status"], ["releases"], ["audit"]])
def test_read_only_commands_never_create_a_state_dir(argv: list[str], tmp_path: Path) -> None:
    """A typo in --state-dir must not leave a lock and a key behind (rollback created both)."""
    typo = tmp_path / "typo" / "state"
    done = _cli("--state-dir", str(typo), *argv)
    assert not (tmp_path / "typo").exists(), (argv, sorted(p.name for p in tmp_path.rglob("*")))
    if argv == ["rollback"]:
        assert done.returncode == 1 and "nothing to roll back" in done.stderr, done.stderr
    else:
        assert done.returncode == 0, done.stderr


def test_a_bad_interval_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    """argparse's type check printed the whole usage; config names the setting and the value."""
    for value, says in (("abc", "'abc'"), ("-5", "not -5")):
        done = _cli("--once", "--interval", value, "--repo", str(tmp_path), "--state-dir",
                    str(tmp_path / "s"))
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "interval" in lines[0] and says in lines[0], lines


def test_behind_the_remote_is_unknown_while_the_remote_cannot_be_asked(repo: Any, tmp_path: Path) -> None:
    """Every probe failing must not read as "not behind" (the dashboard showed a green "no")."""
    repo.write("good/SKILL.md", "---\nname: good\ndescription: fine\n---\nbody\n")
    repo.commit("one")
    state = str(tmp_path / "s")
    assert _cli("--once", "--repo", str(repo.path), "--state-dir", state).returncode == 0
    status = json.loads(_cli("--state-dir", state, "status", "--json").stdout)
    assert status["behind_upstream"] is False
    gone = tmp_path / "gone"
    repo.path.rename(gone)
    try:
        failed = _cli("--once", "--repo", str(repo.path), "--state-dir", state)
        assert failed.returncode == 1, failed.stderr
        status = json.loads(_cli("--state-dir", state, "status", "--json").stdout)
        assert status["failure_streak"] == 1 and status["behind_upstream"] is None, status
    finally:
        gone.rename(repo.path)


def test_a_deploy_with_no_skill_warns_that_nothing_is_live(repo: Any, tmp_path: Path) -> None:
    """A first deploy that finds 0 skills said only info lines; it names the likely settings."""
    repo.write("deep/er/still/good/SKILL.md", "---\nname: good\ndescription: fine\n---\nbody\n")
    repo.write("README.md", "# skills\n")
    repo.commit("the skill is deeper than skill_depth")
    done = _cli("--once", "--repo", str(repo.path), "--state-dir", str(tmp_path / "s"))
    assert done.returncode == 0, done.stderr
    assert "nothing is live" in done.stderr and "SKILLSYNC_SKILLS_PATH" in done.stderr
    logged = [json.loads(x) for x in (done.stdout + done.stderr).splitlines() if x.startswith("{")]
    assert any(e.get("event") == "nothing_live" and e.get("level") == "warning" for e in logged), logged


def test_a_skill_depth_the_gateway_does_not_search_is_refused_before_deploying(
        repo: Any, tmp_path: Path) -> None:
    """Link mode with depth 3 deployed skills the gateway never loaded (78 live, 0 loaded), rc 0.

    OpenClaw searches an extraDirs root (link mode's ``current``) 2 levels down, and a
    folder named ``skills`` (its managed folder) 6 (config.GATEWAY_*_DEPTH).
    """
    repo.write("plugins/tools/deep/SKILL.md", "---\nname: deep\ndescription: three down\n---\nbody\n")
    repo.commit("a skill three levels down")
    state = tmp_path / "s"
    env = {"SKILLSYNC_SKILL_DEPTH": "3"}
    for argv in (("--once",), ("run",)):
        done = _cli(*argv, "--repo", str(repo.path), "--state-dir", str(state), env=env)
        assert done.returncode == 2, done.stderr
        line = done.stderr.strip()
        assert len(line.splitlines()) == 1 and "skill_depth 3" in line and "link mode" in line, line
        assert f"{state}/current 2 folder levels down" in line and "SKILLSYNC_SKILL_DEPTH=2" in line
        assert not state.exists()  # refused before anything was written
    elsewhere = {**env, "SKILLSYNC_PUBLISH_MODE": "mirror", "SKILLSYNC_PUBLISH_DIR": str(tmp_path / "pub")}
    done = _cli("--once", "--repo", str(repo.path), "--state-dir", str(state), env=elsewhere)
    assert done.returncode == 2 and "mirror mode" in done.stderr, done.stderr
    # into a folder named skills (the managed folder) the gateway looks 6 levels down: it deploys
    managed = tmp_path / "openclaw" / "skills"
    done = _cli("--once", "--repo", str(repo.path), "--state-dir", str(state),
                env={**elsewhere, "SKILLSYNC_PUBLISH_DIR": str(managed)})
    assert done.returncode == 0, done.stderr
    assert (managed / "plugins" / "tools" / "deep" / "SKILL.md").is_file()
    # validating a working tree deploys nothing: the same depth is fine there
    tree = tmp_path / "tree"
    (tree / "plugins" / "tools" / "deep").mkdir(parents=True)
    (tree / "plugins" / "tools" / "deep" / "SKILL.md").write_text(
        "---\nname: deep\ndescription: three down\nmetadata: {version: \"1.0.0\"}\n---\nbody\n")
    done = _cli("validate", str(tree), env=env)
    assert done.returncode == 0 and "1 skill checked" in done.stdout, (done.stdout, done.stderr)
