"""The operator's freeze through the real CLI: syncs go on, nothing goes live, `unfreeze` lifts it.

Every command is a real ``skillsyncd`` process on one state dir against a real
git server on 127.0.0.1; the journal and ``status --json`` are read back as an
operator would.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bolt import BoltServer, bolt  # noqa: F401  (the fixture)
from gitserver import HttpGitServer, RepoBuilder

from skillsyncd.audit.commands import FLEET_QUERY, fleet_rows, open_journal
from skillsyncd.audit.events import FreezeEnded, FreezeStarted, Frozen
from skillsyncd.audit.journal import Journal
from skillsyncd.audit.neo4j import Neo4jSink
from skillsyncd.config import load_config
from skillsyncd.errors import EXIT_FROZEN, EXIT_OK, EXIT_USAGE, ConfigError
from skillsyncd.release.releases import Releases
from skillsyncd.sync.assembly import build_syncer
from skillsyncd.sync.freeze import (
    FREEZE_FILE,
    Freeze,
    end_freeze,
    parse_until,
    read_freeze,
    set_freeze,
)

SKILLSYNCD = str(Path(sys.executable).parent / "skillsyncd")


def _env() -> dict[str, str]:
    prefixes = ("SKILLSYNC_", "GITHUB_", "POLLING_", "NEO4J_", "MAX_SKILL")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


class Cli:
    def __init__(self, url: str, state: Path) -> None:
        self.url, self.state = url, state

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SKILLSYNCD, *args, "--repo", self.url, "--state-dir",
                               str(self.state)], env=_env(), capture_output=True, text=True,
                              timeout=120)

    def status(self) -> dict[str, Any]:
        done = self("status", "--json")
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    def journal(self) -> list[Any]:
        return list(Journal(self.state / "journal.jsonl").read())


@pytest.fixture
def cli(http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path) -> Cli:
    return Cli(http_git_server.url_for(repo), tmp_path / "state")


def test_frozen_syncs_validate_and_wait_and_unfreeze_deploys(repo: RepoBuilder, cli: Cli) -> None:
    repo.add_skill("alpha", description="v1")
    first = repo.commit("v1")
    assert cli("--once").returncode == EXIT_OK
    live = Releases(cli.state).current()

    done = cli("freeze", "--reason", "release review   in progress", "--until", "2h")
    assert done.returncode == EXIT_OK, done.stderr
    assert "deployments frozen since" in done.stderr and "release review in progress" in done.stderr
    freeze = read_freeze(load_config(flags={"state_dir": str(cli.state)}, env={}))
    assert freeze is not None and freeze.reason == "release review in progress"
    assert freeze.until is not None and freeze.until > freeze.since

    repo.add_skill("alpha", description="v2")
    repo.add_skill("beta", description="new")
    second = repo.commit("v2")
    once = cli("--once")
    assert once.returncode == EXIT_FROZEN, once.stderr
    assert once.stderr.startswith("frozen: commit " + second[:12])
    assert "waiting, not live: +1 ~1 -0" in once.stderr
    assert Releases(cli.state).current() == live  # nothing flipped
    assert Releases(cli.state).complete() == [live]  # the staged release is not left behind

    info = cli.status()
    assert info["deployed_commit"] == first and info["behind_upstream"] is True
    assert info["freeze"]["reason"] == "release review in progress"
    assert info["waiting"]["commit"] == second
    assert info["waiting"]["counts"] == {"added": 1, "changed": 1, "removed": 0, "held_back": 0}
    assert info["waiting"]["added"] == ["beta"] and info["waiting"]["changed"] == ["alpha"]
    assert info["behind_reason"] == "waiting: deployments are frozen"
    text = cli("status").stdout
    assert "frozen    since" in text and f"waiting   commit {second[:12]}" in text

    forced = cli("--once", "--force")  # --force does not lift a freeze
    assert forced.returncode == EXIT_FROZEN and Releases(cli.state).current() == live
    again = cli("--once")  # the same waiting commit is not staged again
    assert again.returncode == EXIT_FROZEN
    frozen = [e for e in cli.journal() if isinstance(e, Frozen)]
    assert len(frozen) == 2 and {e.commit for e in frozen} == {second}  # first sync and --force
    assert {s["name"] for s in frozen[0].skills} >= {"alpha", "beta"}

    lifted = cli("unfreeze")
    assert lifted.returncode == EXIT_OK and "unfrozen" in lifted.stderr
    assert cli("unfreeze").stderr.startswith("not frozen")
    deployed = cli("--once")
    assert deployed.returncode == EXIT_OK, deployed.stderr
    info = cli.status()
    assert info["deployed_commit"] == second and info["freeze"] is None and info["waiting"] is None
    kinds = [e.kind for e in cli.journal() if isinstance(e, FreezeStarted | FreezeEnded | Frozen)]
    assert kinds == ["freeze_started", "frozen", "frozen", "freeze_ended"]
    ended = next(e for e in cli.journal() if isinstance(e, FreezeEnded))
    assert (ended.how, ended.by) == ("unfreeze", "cli")
    audit = cli("audit").stdout
    started = next(line for line in audit.splitlines() if "freeze_started" in line)
    assert "reason: release review in progress until 20" in started
    assert any("freeze_ended" in line and "unfreeze by cli" in line for line in audit.splitlines())


def test_a_freeze_ends_by_itself_at_until(repo: RepoBuilder, cli: Cli) -> None:
    repo.add_skill("alpha", description="v1")
    repo.commit("v1")
    assert cli("--once").returncode == EXIT_OK
    cfg = load_config(flags={"state_dir": str(cli.state)}, env={})
    gone = (datetime.now(UTC) - timedelta(seconds=1)).isoformat(timespec="milliseconds")
    set_freeze(cfg, Journal(cfg.journal_file).append, reason="short", until=gone.replace("+00:00", "Z"))
    assert cli.status()["freeze"] is None  # status already says it is over
    repo.add_skill("alpha", description="v2")
    head = repo.commit("v2")
    done = cli("--once")
    assert done.returncode == EXIT_OK, done.stderr
    assert cli.status()["deployed_commit"] == head
    assert not (cli.state / FREEZE_FILE).exists()
    ended = [e for e in cli.journal() if isinstance(e, FreezeEnded)]
    assert [(e.how, e.reason) for e in ended] == [("expired", "short")]


def test_until_takes_a_date_time_or_a_duration_and_refuses_the_past(cli: Cli) -> None:
    now = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
    assert parse_until("2h", now) == "2026-12-08T12:00:00.000Z"
    assert parse_until("2026-12-09T08:00", now) == "2026-12-09T08:00:00.000Z"
    assert parse_until("2026-12-09T08:00:00+02:00", now) == "2026-12-09T06:00:00.000Z"
    with pytest.raises(ConfigError, match="has passed"):
        parse_until("2026-12-07", now)
    with pytest.raises(ConfigError, match=r"--until 'soon': not a time.*duration from now"):
        parse_until("soon", now)
    bad = cli("freeze", "--until", "yesterday")
    assert bad.returncode == EXIT_USAGE and "has passed" in bad.stderr
    assert not (cli.state / FREEZE_FILE).exists()


def test_an_unreadable_freeze_file_holds_until_unfreeze(repo: RepoBuilder, cli: Cli) -> None:
    repo.add_skill("alpha", description="v1")
    repo.commit("v1")
    cli.state.mkdir(parents=True)
    (cli.state / FREEZE_FILE).write_text("{not json")
    done = cli("--once")
    assert done.returncode == EXIT_FROZEN and "unreadable" in done.stderr
    assert Releases(cli.state).current() is None
    assert cli("unfreeze").returncode == EXIT_OK
    assert cli("--once").returncode == EXIT_OK and Releases(cli.state).current() is not None


def test_a_kill_before_a_frozen_release_is_deleted_does_not_put_it_live(
        repo: RepoBuilder, cli: Cli) -> None:
    repo.add_skill("alpha", description="v1")
    repo.commit("v1")
    assert cli("freeze").returncode == EXIT_OK
    killed = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "crashpoint.py"), "before-discard",
         "--once", "--repo", cli.url, "--state-dir", str(cli.state)],
        env=_env(), capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert len(Releases(cli.state).complete()) == 1  # the staged release outlived the kill
    done = cli("--once")  # start-up repair must not flip to it while frozen
    assert done.returncode == EXIT_FROZEN, done.stderr
    assert Releases(cli.state).current() is None
    assert cli("unfreeze").returncode == EXIT_OK and cli("--once").returncode == EXIT_OK
    assert Releases(cli.state).current() is not None


def test_freeze_values() -> None:
    f = Freeze(since="2026-12-08T10:00:00.000Z", reason="r", until="2026-12-08T11:00:00.000Z")
    assert f.active_at("2026-12-08T10:59:59.999Z") and not f.active_at("2026-12-08T11:00:00.000Z")
    assert Freeze(since="x").active_at("9999") and "until unfreeze" in Freeze(since="x").describe()


def test_fleet_marks_a_frozen_replica(bolt: BoltServer, repo: RepoBuilder,  # noqa: F811
                                      tmp_path: Path) -> None:
    repo.add_skill("alpha", description="v1")
    repo.commit("v1")
    env = bolt.env(SKILLSYNC_REPLICA_ID="replica-f")
    cfg = load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "s")}, env=env)
    assert build_syncer(cfg).sync().status == "deployed"
    journal = open_journal(cfg)
    set_freeze(cfg, journal.append, reason="audit week", until="2099-01-01T00:00:00.000Z")

    def fleet() -> dict[str, Any]:
        sink = Neo4jSink(cfg, open_journal(cfg))
        try:
            sink.ship()
            rows = fleet_rows(sink.query(FLEET_QUERY))
        finally:
            sink.close()
            bolt.heal()
        return {str(r["replica"]): r for r in rows}

    repo.add_skill("alpha", description="v2")
    waiting = repo.commit("v2")
    assert build_syncer(cfg).sync().status == "frozen"
    row = fleet()["replica-f"]
    assert row["frozen"] is True and row["freeze_reason"] == "audit week"
    assert row["upstream"] == waiting and row["behind"] is True  # what waits is not live
    assert row["freeze_until"] == "2099-01-01T00:00:00.000Z"
    end_freeze(cfg, journal.append)
    assert fleet()["replica-f"]["frozen"] is False


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_root_freeze_on_the_daemons_state_dir_exits_2_and_writes_nothing(cli: Cli) -> None:
    nobody = pwd.getpwnam("nobody")
    cli.state.mkdir(parents=True)
    os.chown(cli.state, nobody.pw_uid, nobody.pw_gid)
    for args in (("freeze", "--reason", "x"), ("unfreeze",)):
        done = cli(*args)
        assert done.returncode == EXIT_USAGE and "belongs to nobody" in done.stderr, done.stderr
    assert list(cli.state.iterdir()) == []
