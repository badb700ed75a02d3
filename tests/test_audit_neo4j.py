"""The Neo4j replica of the journal against a real Bolt server (FalkorDB, tests/bolt.py).

Syncs run for real against local repositories; the sink ships what they
journalled; the graph is then read back with the official neo4j driver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bolt import BoltServer, bolt  # noqa: F401  (the fixture)
from polling import wait_for

from skillsyncd.audit.commands import cmd_audit_push, cmd_fleet, open_journal
from skillsyncd.audit.events import NoChange, decode
from skillsyncd.audit.journal import Journal
from skillsyncd.audit.neo4j import Cursor, Neo4jSink, SinkError, statements
from skillsyncd.config import Config, load_config
from skillsyncd.errors import ValidationRejected
from skillsyncd.sync.assembly import build_syncer

ROOT = Path(__file__).resolve().parent.parent
SKILLSYNCD = str(Path(sys.executable).parent / "skillsyncd")

# Ships the journal and SIGKILLs itself right after Neo4j committed event SEQ,
# before the cursor moves: argv = SEQ.  Config comes from the environment.
CRASH_AFTER_WRITE = """
import os, signal, sys
from skillsyncd.audit.commands import open_journal
from skillsyncd.audit.neo4j import Neo4jSink
from skillsyncd.config import load_config
target = int(sys.argv[1])
cfg = load_config()
sink = Neo4jSink(cfg, open_journal(cfg))
def crash(event):
    if event.seq == target:
        os.kill(os.getpid(), signal.SIGKILL)
sink.after_write = crash
sink.ship()
sys.exit(3)  # never reached when the journal holds SEQ
"""


def cfg_for(server: BoltServer, url: str, state: Path, replica: str = "replica-a",
            **flags: Any) -> Config:
    env = server.env(SKILLSYNC_REPLICA_ID=replica)
    return load_config(flags={"repo": url, "state_dir": str(state), **flags}, env=env)


def failing_for(commit: str) -> Callable[[Config, str], list[str]]:
    def check(cfg: Config, release_id: str) -> list[str]:
        return ["gateway did not load the skills"] if release_id.endswith(commit[:12]) else []

    return check


def counts(server: BoltServer) -> dict[str, int]:
    rows = server.query("MATCH (n) RETURN labels(n)[0] AS label, count(n) AS n")
    rels = server.query("MATCH ()-[r]->() RETURN type(r) AS t, count(r) AS n")
    return {**{r["label"]: r["n"] for r in rows}, **{r["t"]: r["n"] for r in rels}}


def one(server: BoltServer, cypher: str, **params: Any) -> dict[str, Any]:
    rows = server.query(cypher, **params)
    assert len(rows) == 1, (cypher, rows)
    return rows[0]


def deployment_ids(journal: Journal) -> list[str]:
    kinds = {"deployed", "rolled_back", "manual_rollback", "validation_failed"}
    return [e.id for e in journal.read() if e.kind in kinds]


# --- the graph -----------------------------------------------------------------------------


def test_graph_shape_after_deploys_rollbacks_and_a_rejection(
    bolt: BoltServer, repo: Any, tmp_path: Path  # noqa: F811
) -> None:
    state = tmp_path / "state"
    repo.add_skill("alpha", description="First.", version="1.0.0")
    repo.add_skill("beta", description="Second.")
    first = repo.commit("v1")
    cfg = cfg_for(bolt, str(repo.path), state)
    syncer = build_syncer(cfg)
    d1 = syncer.sync(trigger="poll")
    repo.add_skill("alpha", description="First, better.", version="1.1.0")
    second = repo.commit("v2")
    d2 = syncer.sync(trigger="webhook")
    repo.add_skill("delta", description="Breaks the gateway.")
    third = repo.commit("v3")
    assert build_syncer(cfg, extra_checks=(failing_for(third),)).sync().status == "rolled_back"
    syncer.rollback(to=d1.release)
    repo.write("broken/SKILL.md", "---\nname: broken\n---\n")
    fourth = repo.commit("v4: invalid")
    with pytest.raises(ValidationRejected):
        build_syncer(cfg_for(bolt, str(repo.path), state, on_invalid="reject")).sync()

    journal = open_journal(cfg)
    sink = Neo4jSink(cfg, journal)
    assert sink.ship() == journal.last_seq()
    assert sink.lag() == 0 and sink.status()["last_error"] is None

    by_status = {r["s"]: r["n"] for r in bolt.query(
        "MATCH (d:SkillDeployment) RETURN d.status AS s, count(d) AS n")}
    assert by_status == {"deployed": 2, "rolled_back": 1, "failed_check": 1,
                         "manual_rollback": 1, "rejected": 1}

    dep1 = one(bolt, "MATCH (d:SkillDeployment {status: 'deployed', commit_sha: $c}) RETURN d",
               c=first)["d"]
    assert dep1["release"] == d1.release and dep1["trigger"] == "poll"
    assert dep1["replica"] == "replica-a" and dep1["skills_count"] == 2
    assert dep1["timestamp"].endswith("Z")
    versions = bolt.query(
        "MATCH (d:SkillDeployment {release: $r, status: 'deployed'})-[x:DEPLOYED]->(v:SkillVersion) "
        "RETURN v.name AS name, v.version AS version, x.change AS change ORDER BY name",
        r=d1.release)
    assert versions == [{"name": "alpha", "version": "1.0.0", "change": "added"},
                        {"name": "beta", "version": None, "change": "added"}]
    alpha = bolt.query("MATCH (:Skill {name: 'alpha'})-[:HAS_VERSION]->(v:SkillVersion) "
                       "RETURN v.version AS version ORDER BY version")
    assert [r["version"] for r in alpha] == ["1.0.0", "1.1.0"]
    assert one(bolt, "MATCH (d:SkillDeployment {release: $r, status: 'deployed'})"
                     "-[:FROM_COMMIT]->(c:Commit) RETURN c.sha AS sha", r=d2.release)["sha"] == second
    assert one(bolt, "MATCH (:SkillDeployment {release: $r2, status: 'deployed'})-[:REPLACED]->"
                     "(old:SkillDeployment) RETURN old.release AS r",
               r2=d2.release)["r"] == d1.release

    auto = one(bolt, "MATCH (rb:SkillDeployment {status: 'rolled_back'})-[:REPLACED]->"
                     "(a:SkillDeployment {status: 'failed_check'}) "
                     "MATCH (rb)-[:RESTORED]->(back:SkillDeployment) "
                     "RETURN rb.commit_sha AS bad, a.commit_sha AS attempted, a.release AS release, "
                     "back.release AS restored, rb.reason AS reason")
    assert auto["bad"] == auto["attempted"] == third
    assert auto["release"].endswith(third[:12]) and auto["restored"] == d2.release
    assert "gateway did not load" in auto["reason"]
    assert [r["n"] for r in bolt.query(
        "MATCH (:SkillDeployment {status: 'failed_check'})-[:DEPLOYED]->(v:SkillVersion) "
        "RETURN v.name AS n ORDER BY n")] == ["alpha", "beta", "delta"]

    manual = one(bolt, "MATCH (m:SkillDeployment {status: 'manual_rollback'})-[:REPLACED]->"
                       "(old:SkillDeployment), (m)-[:RESTORED]->(back:SkillDeployment) "
                       "RETURN old.release AS replaced, back.release AS restored, m.trigger AS t")
    assert manual == {"replaced": d2.release, "restored": d1.release, "t": "manual"}

    rejected = one(bolt, "MATCH (d:SkillDeployment {status: 'rejected'}) RETURN d")["d"]
    assert rejected["commit_sha"] == fourth and rejected["findings"] >= 1

    runs = bolt.query("MATCH (r:Replica)-[:RUNS]->(d:SkillDeployment) "
                      "RETURN r.id AS replica, d.release AS release, d.commit_sha AS commit")
    assert runs == [{"replica": "replica-a", "release": d1.release, "commit": first}]
    replica = one(bolt, "MATCH (r:Replica) RETURN r")["r"]
    assert replica["upstream_commit"] == fourth and replica["last_seq"] == journal.last_seq()

    # Idempotent: shipping again, or replaying everything from a lost cursor, adds nothing.
    before = counts(bolt)
    assert sink.ship() == 0
    Cursor(state / "audit-cursor.json").set(0)
    assert sink.ship() == journal.last_seq()
    assert counts(bolt) == before
    sink.close()


def test_statements_never_merge_on_a_null_key() -> None:
    """MERGE on a null property fails on Neo4j and FalkorDB alike: skills without a hash are left out."""
    event = decode({"id": "e", "seq": 1, "kind": "deployed", "replica": "r", "commit": "c",
             "release": "R", "skills": [{"name": "a", "content_sha": None, "change": "added"},
                                        {"name": "b", "content_sha": "x", "change": "removed"},
                                        {"name": "c", "content_sha": "y", "change": "added"}]})
    (versions,) = [p for q, p in statements(event) if "UNWIND $skills" in q]
    assert [s["name"] for s in versions["skills"]] == ["c"]
    quiet = statements(decode({"id": "e2", "seq": 2, "kind": "sync_started", "replica": "r", "commit": None}))
    assert len(quiet) == 1 and "Replica" in quiet[0][0]


# --- outages and crashes ---------------------------------------------------------------------


def test_outage_every_event_arrives_once_and_in_order(
    bolt: BoltServer, repo: Any, tmp_path: Path  # noqa: F811
) -> None:
    repo.add_skill("alpha", description="v1")
    repo.commit("v1")
    cfg = cfg_for(bolt, str(repo.path), tmp_path / "state")
    journal = open_journal(cfg)
    sink = Neo4jSink(cfg, journal, backoff=(0.2, 0.5))
    journal.subscribe(sink.notify)
    written: list[int] = []
    sink.after_write = lambda event: written.append(int(event.seq))
    syncer = build_syncer(cfg, journal=journal)
    sink.start()
    try:
        assert syncer.sync(trigger="poll").status == "deployed"
        wait_for(lambda: sink.lag_seen() == 0 and written, what="first deployment shipped")

        bolt.stop()
        outcomes = []
        for n in range(2, 5):
            repo.add_skill("alpha", description=f"v{n}")
            repo.commit(f"v{n}")
            outcomes.append(syncer.sync(trigger="poll").status)
        outcomes.append(syncer.sync(trigger="poll").status)
        assert outcomes == ["deployed", "deployed", "deployed", "no_change"]
        wait_for(lambda: sink.status()["last_error"] is not None, what="the sink to notice")
        assert sink.lag_seen() > 0
        assert "cannot ship audit events" in sink.status()["last_error"]

        bolt.start()
        wait_for(lambda: sink.lag_seen() == 0 and sink.status()["last_error"] is None,
                 what="the backlog to drain")
    finally:
        assert sink.stop()

    assert written == list(range(1, journal.last_seq() + 1)), "out of order or repeated"
    ids = deployment_ids(journal)
    assert len(ids) == 4
    found = bolt.query("MATCH (d:SkillDeployment) WHERE d.id IN $ids "
                       "RETURN d.id AS id, count(*) AS n, d.seq AS seq ORDER BY seq", ids=ids)
    assert [r["id"] for r in found] == ids and {r["n"] for r in found} == {1}
    assert one(bolt, "MATCH (r:Replica) RETURN r.last_seq AS s")["s"] == journal.last_seq()
    assert one(bolt, "MATCH (:Replica)-[:RUNS]->(d) RETURN count(d) AS n")["n"] == 1


def test_crash_between_write_and_cursor_leaves_no_duplicates(
    bolt: BoltServer, repo: Any, tmp_path: Path  # noqa: F811
) -> None:
    state = tmp_path / "state"
    repo.add_skill("alpha", description="v1")
    repo.add_skill("beta", description="v1")
    repo.commit("v1")
    cfg = cfg_for(bolt, str(repo.path), state)
    syncer = build_syncer(cfg)
    syncer.sync()
    repo.add_skill("alpha", description="v2")
    repo.commit("v2")
    syncer.sync()
    journal = open_journal(cfg)
    second_deploy = [e for e in journal.read() if e.kind == "deployed"][1]
    target = second_deploy.seq

    env = {**os.environ, "PYTHONPATH": str(ROOT), "SKILLSYNC_STATE_DIR": str(state),
           **bolt.env(SKILLSYNC_REPLICA_ID="replica-a")}
    crashed = subprocess.run([sys.executable, "-c", CRASH_AFTER_WRITE, str(target)], env=env,
                             capture_output=True, timeout=60)
    assert crashed.returncode == -9, crashed.stderr.decode()[-2000:]
    assert Cursor(state / "audit-cursor.json").get() == target - 1
    written = one(bolt, "MATCH (d:SkillDeployment {id: $id}) RETURN count(d) AS n",
                  id=second_deploy.id)
    assert written["n"] == 1, "the write before the crash did not reach the graph"

    # A killed client never says goodbye, so the server needs no heal() here.
    pushed = subprocess.run([SKILLSYNCD, "audit", "push"], env=env, capture_output=True,
                            text=True, timeout=60)
    bolt.heal()
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert f"shipped {journal.last_seq() - target + 1} event(s); 0 left" in pushed.stderr
    ids = deployment_ids(journal)
    rows = bolt.query("MATCH (d:SkillDeployment) RETURN d.id AS id, count(*) AS n")
    assert sorted(r["id"] for r in rows) == sorted(ids) and {r["n"] for r in rows} == {1}
    edges = one(bolt, "MATCH (d:SkillDeployment {id: $id})-[x:DEPLOYED]->() RETURN count(x) AS n",
                id=second_deploy.id)
    assert edges["n"] == 2
    assert one(bolt, "MATCH (:Replica)-[x:RUNS]->() RETURN count(x) AS n")["n"] == 1
    assert one(bolt, "MATCH (v:SkillVersion {name: 'alpha'}) RETURN count(v) AS n")["n"] == 2


def test_wrong_password_is_a_clear_error_and_nothing_leaks(
    bolt: BoltServer, repo: Any, tmp_path: Path  # noqa: F811
) -> None:
    repo.add_skill("alpha", description="v1")
    repo.commit("v1")
    wrong = "not-the-password-" + bolt.password
    env = bolt.env(SKILLSYNC_REPLICA_ID="replica-a", NEO4J_PASSWORD=wrong)
    cfg = load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "s")}, env=env)
    assert build_syncer(cfg).sync().status == "deployed"
    sink = Neo4jSink(cfg, open_journal(cfg))
    with pytest.raises(SinkError) as err:
        sink.ship()
    message = str(err.value)
    assert "refused the login of user 'falkordb'" in message and "NEO4J_PASSWORD" in message
    assert wrong not in message and bolt.password not in message
    assert sink.status()["last_error"] == message and sink.lag() == 3
    bolt.heal()


# --- CLI -------------------------------------------------------------------------------------


def test_audit_push_and_fleet_show_who_is_behind(
    bolt: BoltServer, repo: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    repo.add_skill("alpha", description="v1")
    first = repo.commit("v1")
    a = cfg_for(bolt, str(repo.path), tmp_path / "a", replica="replica-a")
    b = cfg_for(bolt, str(repo.path), tmp_path / "b", replica="replica-b")
    build_syncer(a).sync()
    build_syncer(b).sync()
    repo.add_skill("alpha", description="v2")
    second = repo.commit("v2")
    build_syncer(a).sync()

    def cli(cfg: Config, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SKILLSYNC_STATE_DIR": str(cfg.state_dir),
               **bolt.env(SKILLSYNC_REPLICA_ID=cfg.replica_id)}
        done = subprocess.run([SKILLSYNCD, *args], env=env, capture_output=True, text=True,
                              timeout=60)
        bolt.heal()
        return done

    pushed = cli(a, "audit", "push")  # a real process, as an operator would run it
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert f"shipped {open_journal(a).last_seq()} event(s); 0 left" in pushed.stderr
    assert cmd_audit_push(b) == 0  # the same command in-process, for the second replica
    bolt.heal()
    assert f"shipped {open_journal(b).last_seq()} event(s); 0 left" in capsys.readouterr().err

    fleet = cli(a, "fleet", "--json")
    assert fleet.returncode == 0, fleet.stdout + fleet.stderr
    start = fleet.stdout.index("[")
    rows = {r["replica"]: r for r in json.loads(fleet.stdout[start:])}
    assert rows["replica-a"]["commit"] == second and rows["replica-a"]["behind"] is False
    assert rows["replica-b"]["commit"] == first and rows["replica-b"]["behind"] is True

    assert cmd_fleet(b) == 0
    bolt.heal()
    line_b = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("replica-b"))
    assert "BEHIND" in line_b and first[:12] in line_b

    bolt.stop()
    down = cli(a, "audit", "push")
    assert down.returncode == 1 and "wait in the journal" in down.stderr
    assert cmd_fleet(a) == 1
    assert "fleet: cannot query" in capsys.readouterr().err


def test_two_shippers_take_turns(bolt: BoltServer, tmp_path: Path) -> None:  # noqa: F811
    """The daemon's thread and `audit push` on one state dir: each event is sent once, in order."""
    cfg = load_config(flags={"state_dir": str(tmp_path / "s")}, env=bolt.env())
    journal = open_journal(cfg)
    for n in range(30):
        journal.append(NoChange(trigger="poll", commit=f"{n:040d}"))
    sent: list[int] = []
    sinks = [Neo4jSink(cfg, open_journal(cfg)) for _ in range(2)]
    for sink in sinks:
        sink.after_write = lambda event: sent.append(int(event.seq))
    threads = [threading.Thread(target=sink.ship) for sink in sinks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sent == list(range(1, 31))
    assert Cursor(cfg.state_dir / "audit-cursor.json").get() == 30
    assert one(bolt, "MATCH (r:Replica) RETURN r.last_seq AS s")["s"] == 30
    for sink in sinks:
        sink.close()
    bolt.heal()


def test_rotation_while_neo4j_is_down_loses_nothing(bolt: BoltServer, tmp_path: Path) -> None:  # noqa: F811
    cfg = load_config(flags={"state_dir": str(tmp_path / "s")}, env=bolt.env())
    cursor = Cursor(cfg.state_dir / "audit-cursor.json")
    journal = Journal(cfg.journal_file, replica="replica-a", rotate_bytes=2000, keep_segments=2,
                      shipped=cursor.get)
    sink = Neo4jSink(cfg, journal)
    bolt.stop()
    for n in range(150):
        journal.append(NoChange(trigger="poll", commit=f"{n:040d}"))
    with pytest.raises(SinkError):
        sink.ship()
    assert len(journal.segments()) > 10, "every unshipped segment must be kept"
    bolt.start()
    sent: list[int] = []
    sink.after_write = lambda event: sent.append(int(event.seq))
    assert sink.ship() == 150
    assert sent == list(range(1, 151))
    assert len(journal.segments()) == 2, "shipped segments beyond keep_segments should go"
    assert [e.seq for e in journal.read()][-1] == 150
    assert journal.append(NoChange(trigger="poll", commit="f" * 40)).seq == 151
    assert sink.ship() == 1
    assert one(bolt, "MATCH (r:Replica) RETURN r.last_seq AS s")["s"] == 151
    sink.close()
    bolt.heal()


def test_once_ships_its_events_and_never_waits_long_for_a_dead_server(
    bolt: BoltServer, repo: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from skillsyncd.cli import main

    for key, value in bolt.env(SKILLSYNC_REPLICA_ID="one-shot").items():
        monkeypatch.setenv(key, value)
    args = ["--once", "--repo", str(repo.path), "--state-dir", str(tmp_path / "s")]
    repo.add_skill("alpha", description="v1")
    first = repo.commit("v1")
    assert main(args) == 0
    rows = bolt.query("MATCH (d:SkillDeployment {status: 'deployed'}) RETURN d.commit_sha AS c")
    assert [r["c"] for r in rows] == [first]  # shipped by the one-shot itself

    bolt.stop()
    repo.add_skill("beta", description="v2")
    repo.commit("v2")
    capsys.readouterr()
    assert main(args) == 0  # Neo4j down: the deployment stands, exit code unchanged
    err = capsys.readouterr().err
    assert "audit: not replicated yet" in err and "audit push" in err
    bolt.start()
    bolt.heal()
    assert main(["audit", "push", "--state-dir", str(tmp_path / "s"),
                 "--repo", str(repo.path)]) == 0
    rows = bolt.query("MATCH (d:SkillDeployment {status: 'deployed'}) RETURN count(d) AS n")
    assert rows[0]["n"] == 2
