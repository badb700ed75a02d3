"""A fleet on one real graph: three `skillsyncd run` daemons shipping to one ArcadeDB over Bolt.

One sidecar per gateway replica, each with its own state dir and
``SKILLSYNC_REPLICA_ID``, deploys the same commits from one smart-HTTP git
server and replicates its journal to one graph. The graph is ArcadeDB
(tests/arcadedb.py), not FalkorDB, because it enforces the uniqueness
constraints the sink declares (``SCHEMA`` in skillsyncd/audit/neo4j.py): the
three writers MERGE the same Skill, SkillVersion and Commit nodes at the same
moment, which only a constraint-enforcing server can keep single. The graph is
stopped and started twice while the daemons deploy. Then, once every sink has
caught up: no journal event of any replica is missing from the graph, no node
exists twice under its unique key, and ``skillsyncd fleet`` shows the three
replicas on the last commit.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import neo4j
import pytest
from arcadedb import DATABASE, USER, ArcadeServer, arcadedb  # noqa: F401  (the fixture)
from polling import wait_for
from test_daemon import SKILLSYNCD, Daemon, _clean_env, start_daemon  # noqa: F401  (the fixture)

import skillsyncd.audit.neo4j as neo4j_sink
from skillsyncd.audit.commands import open_journal
from skillsyncd.audit.events import Deployed, JournalEvent
from skillsyncd.audit.journal import Journal, now_iso
from skillsyncd.audit.neo4j import SCHEMA, Neo4jSink, statements
from skillsyncd.config import load_config

REPLICAS = ("replica-1", "replica-2", "replica-3")
SKILLS = 12
HANG = 120.0  # seconds: a bound only a hang trips (a loaded 2-core machine), never a speed target
NODE_KINDS = ("deployed", "rolled_back", "manual_rollback", "rejected", "validation_failed")
UNIQUE_KEYS = {"SkillDeployment": ("id",), "Skill": ("name",), "Commit": ("sha",),
               "Replica": ("id",), "SkillVersion": ("name", "content_sha")}


def new_commit(repo: Any, n: int) -> str:
    """Round ``n``: a third of the shared skills change and one skill is added."""
    for i in range(SKILLS):
        if n == 1 or i % 3 == n % 3:
            repo.add_skill(f"skill-{i:02d}", description=f"Skill {i}, round {n}.", version=f"1.{n}.0")
    repo.add_skill(f"extra-{n}", description=f"Added in round {n}.")
    return str(repo.commit(f"round {n}"))


class Fleet:
    """The three daemons, their state dirs, and what the test waits for in their logs."""

    def __init__(self, start: Callable[..., Daemon], url: str, graph: ArcadeServer,
                 root: Path) -> None:
        self.states = {r: root / r for r in REPLICAS}
        # A poll an hour: deploys come from SIGHUP only, so each journal stops growing
        # once the last commit is live and "caught up" is a fixed point.
        self.daemons = {r: start(url, state=self.states[r],
                                 env=graph.env(SKILLSYNC_REPLICA_ID=r, SKILLSYNC_INTERVAL="3600"))
                        for r in REPLICAS}

    def deployed(self, commit: str, replicas: tuple[str, ...] = REPLICAS) -> None:
        threads = [threading.Thread(target=self._deployed, args=(self.daemons[r], commit))
                   for r in replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in replicas:
            assert self.journal_commits(r)[-1:] == [commit], f"{r} did not deploy {commit}"

    @staticmethod
    def _deployed(d: Daemon, commit: str) -> None:
        d.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("status") == "deployed"
                     and e.get("commit") == commit, timeout=HANG)

    def first_deployed(self, commit: str) -> None:
        """Return once any daemon has deployed ``commit`` (its sink is shipping now)."""
        wait_for(lambda: any(self.journal_commits(r)[-1:] == [commit] for r in REPLICAS),
                 timeout=HANG, what=f"a first replica to deploy {commit}")

    def hup(self) -> None:
        for d in self.daemons.values():
            d.proc.send_signal(signal.SIGHUP)

    def journal(self, replica: str) -> Journal:
        return Journal(self.states[replica] / "journal.jsonl", replica=replica)

    def journal_commits(self, replica: str) -> list[str]:
        return [str(e.commit) for e in self.journal(replica).read() if e.kind == "deployed"]

    def caught_up(self, graph: ArcadeServer) -> bool:
        """Every replica's newest journal seq is in the graph, and its sink says lag 0."""
        try:
            seen = {r["id"]: r["seq"] for r in graph.query(
                "MATCH (r:Replica) RETURN r.id AS id, r.last_seq AS seq")}
        except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError):
            return False
        return all(seen.get(r) == self.journal(r).last_seq()
                   and self.daemons[r].status()["audit"]["lag"] == 0 for r in REPLICAS)


def duplicates(graph: ArcadeServer, label: str, keys: tuple[str, ...]) -> int:
    """How many key values more than one node of ``label`` holds."""
    key = ", ".join(f"n.{k} AS {k}" for k in keys)
    rows = graph.query(f"MATCH (n:{label}) WITH {key}, count(*) AS c WHERE c > 1 RETURN count(*) AS d")
    return int(rows[0]["d"]) if rows else 0


def fleet_json(graph: ArcadeServer, state: Path, replica: str) -> list[dict[str, Any]]:
    env = _clean_env({"SKILLSYNC_STATE_DIR": str(state), **graph.env(SKILLSYNC_REPLICA_ID=replica)})
    done = subprocess.run([SKILLSYNCD, "fleet", "--json"], env=env, capture_output=True, text=True,
                          timeout=HANG)
    assert done.returncode == 0, done.stdout + done.stderr
    return list(json.loads(done.stdout[done.stdout.index("["):]))


def deploy_through_two_outages(fleet: Fleet, graph: ArcadeServer, repo: Any,
                               commits: list[str]) -> list[tuple[str, str]]:
    """Four more commits, the graph away for two of them twice; the outages' time windows."""
    outages = []
    # Outage 1: the graph goes away right as the three start deploying the next commit,
    # and stays away while they deploy one more.
    commits.append(new_commit(repo, 2))
    fleet.hup()
    graph.stop()
    down = now_iso()
    fleet.deployed(commits[-1])
    commits.append(new_commit(repo, 3))
    fleet.hup()
    fleet.deployed(commits[-1])
    outages.append((down, now_iso()))
    graph.start()
    # Outage 2: the graph goes away once one replica has deployed (its sink is writing).
    commits.append(new_commit(repo, 4))
    fleet.hup()
    fleet.first_deployed(commits[-1])
    graph.stop()
    down = now_iso()
    fleet.deployed(commits[-1])
    commits.append(new_commit(repo, 5))
    fleet.hup()
    fleet.deployed(commits[-1])
    outages.append((down, now_iso()))
    graph.start()
    return outages


def check_outages_felt(fleet: Fleet, events: dict[str, list[JournalEvent]], commits: list[str],
                       outages: list[tuple[str, str]]) -> None:
    """Each replica deployed every commit once and journalled while the graph was away."""
    for r, d in fleet.daemons.items():
        assert fleet.journal_commits(r) == commits, f"{r} skipped or repeated a commit"
        for start, end in outages:
            assert any(start < e.timestamp < end for e in events[r]), (r, start, end)
        lost_races = [e for e in d.events if e.get("event") == "audit_ship_failed"
                      and "ConstraintError" in str(e.get("error"))]
        assert not lost_races, f"{r}: a MERGE race cost a backoff: {lost_races}"
    assert any(e.get("event") == "audit_ship_failed" and "ServiceUnavailable" in str(e.get("error"))
               for d in fleet.daemons.values() for e in d.events), "no sink saw the graph away"


def check_graph(graph: ArcadeServer, events: dict[str, list[JournalEvent]],
                commits: list[str]) -> dict[str, int]:
    """0 lost events, 0 duplicate nodes, the project's constraints; the node count per label."""
    # Every deployment of every journal is a node, with its seq; the rest (sync_started,
    # no_change, ...) went through in order, so the replica's last_seq (caught_up) proves them.
    for r in REPLICAS:
        nodes = {row["id"]: row["seq"] for row in graph.query(
            "MATCH (d:SkillDeployment {replica: $r}) RETURN d.id AS id, d.seq AS seq", r=r)}
        assert nodes == {e.id: e.seq for e in events[r] if e.kind in NODE_KINDS}, r
    # No key twice, and exactly the numbers the journals imply.
    assert {label: duplicates(graph, label, keys) for label, keys in UNIQUE_KEYS.items()} == {
        label: 0 for label in UNIQUE_KEYS}
    versions = {(s["name"], s["content_sha"]) for evs in events.values() for e in evs
                if e.kind == "deployed" for s in e.skills
                if s.get("change") not in {"removed", "held_back"} and s.get("content_sha")}
    counts = {row["label"]: row["n"] for row in graph.query(
        "MATCH (n) RETURN labels(n)[0] AS label, count(n) AS n")}
    assert counts == {"SkillDeployment": len(commits) * len(REPLICAS), "Commit": len(commits),
                      "Replica": len(REPLICAS), "SkillVersion": len(versions),
                      "Skill": len({name for name, _ in versions})}
    pairs = graph.query("MATCH (s:Skill)-[h:HAS_VERSION]->(v:SkillVersion) "
                        "WITH s, v, count(h) AS n RETURN max(n) AS most, count(*) AS pairs")
    assert pairs == [{"most": 1, "pairs": len(versions)}]
    # The constraints are the project's own, created by the daemons at their first connection.
    declared = {m.group(1) for m in map(re.compile(r"CREATE CONSTRAINT (\w+)").match, SCHEMA) if m}
    made = {row["name"] for row in graph.query("SHOW CONSTRAINTS YIELD name RETURN name")}
    assert declared and declared <= made
    return counts


@pytest.mark.e2e  # three daemons and a JVM started three times: 35-60 s on 2 cores
def test_three_replicas_one_graph_two_restarts(
    start_daemon: Callable[..., Daemon], arcadedb: ArcadeServer,  # noqa: F811
    http_git_server: Any, repo: Any, tmp_path: Path,
) -> None:
    began = time.monotonic()
    commits = [new_commit(repo, 1)]
    fleet = Fleet(start_daemon, http_git_server.url_for(repo), arcadedb, tmp_path)
    fleet.deployed(commits[-1])  # the start-up sync of each daemon
    outages = deploy_through_two_outages(fleet, arcadedb, repo, commits)
    commits.append(new_commit(repo, 6))  # and one more while the sinks are backing off
    fleet.hup()
    fleet.deployed(commits[-1])

    wait_for(lambda: fleet.caught_up(arcadedb), timeout=HANG, what="every sink to catch up")
    events = {r: list(fleet.journal(r).read()) for r in REPLICAS}
    check_outages_felt(fleet, events, commits, outages)
    counts = check_graph(arcadedb, events, commits)
    rows = fleet_json(arcadedb, fleet.states["replica-1"], "replica-1")
    assert [(x["replica"], x["commit"], x["behind"]) for x in rows] == [
        (r, commits[-1], False) for r in REPLICAS]
    for d in fleet.daemons.values():
        assert d.stop() == 0
    races = sum(e.get("event") == "audit_merge_race" for d in fleet.daemons.values() for e in d.events)
    figures = {"events": sum(len(e) for e in events.values()), "nodes": sum(counts.values()),
               "restarts": arcadedb.starts - 1, "merge_races_retried": races,
               "seconds": round(time.monotonic() - began, 1)}
    print(f"fleet on one graph: {json.dumps(figures)}")  # the figures, for `pytest -s`


# --- two replicas creating one skill version at the same instant (default suite) -------------


def deployment(commit: str, sha: str) -> Deployed:
    """A deployment of skill `alpha` at content ``sha`` (the journal fills id, seq, replica)."""
    return Deployed(trigger="poll", commit=commit, release=f"r-{commit}",
                    skills=({"name": "alpha", "version": None, "content_sha": sha,
                             "change": "changed"},))


def test_two_replicas_racing_for_one_skill_version(
    arcadedb: ArcadeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """Replica b's transaction MERGEs skill version alpha@v2 while replica a's commits it.

    Two replicas reach one skill version by different commits (b skipped the one a
    deployed). Without a uniqueness constraint both transactions create the node;
    with the project's schema the later one is refused and the sink runs it again
    at once, finding a's node: one node, one HAS_VERSION edge, no error.
    """
    env = arcadedb.env()
    cfg = {r: load_config(flags={"state_dir": str(tmp_path / r)}, env={**env, "SKILLSYNC_REPLICA_ID": r})
           for r in ("a", "b")}
    journals = {r: open_journal(c) for r, c in cfg.items()}
    journals["a"].append(deployment("c1", "v1"))
    rival = journals["a"].append(deployment("c2", "v2"))
    late = journals["b"].append(deployment("c3", "v2"))

    # The effect, without constraints: both interleaved transactions commit a node.
    def commit_interleaved() -> None:
        with neo4j.GraphDatabase.driver(arcadedb.uri, auth=(USER, arcadedb.password)) as driver, \
                driver.session(database=DATABASE) as first, driver.session(database=DATABASE) as second:
            tx_late, tx_rival = second.begin_transaction(), first.begin_transaction()
            for query, params in statements(late):
                tx_late.run(query, params).consume()
            for query, params in statements(rival):
                tx_rival.run(query, params).consume()
            tx_rival.commit()
            tx_late.commit()

    commit_interleaved()
    version = "MATCH (v:SkillVersion {name: 'alpha', content_sha: 'v2'}) RETURN count(v) AS n"
    assert arcadedb.query(version) == [{"n": 2}], "no duplicate without a constraint"
    arcadedb.query("MATCH (n) DETACH DELETE n")
    # A graph 0.2.0 wrote: its plain index on the version's properties, which the sink replaces.
    arcadedb.query("CREATE INDEX skillsync_version IF NOT EXISTS "
                   "FOR (v:SkillVersion) ON (v.name, v.content_sha)")

    # The sinks, with the schema they declare; skill alpha is in the graph already (a's
    # first deployment), so only the version is new: b's transaction is open when a's commits.
    sinks = {r: Neo4jSink(c, journals[r]) for r, c in cfg.items()}
    assert sinks["a"].ship(limit=1) == 1
    real, calls = neo4j_sink._write_event, []

    def rival_commits_first(tx: Any, stmts: list[tuple[str, dict[str, Any]]]) -> None:
        real(tx, stmts)
        if stmts[0][1]["id"] == late.id:
            calls.append(len(calls))
            if len(calls) == 1:
                assert sinks["a"].ship() == 1

    monkeypatch.setattr(neo4j_sink, "_write_event", rival_commits_first)
    assert sinks["b"].ship() == 1
    assert arcadedb.query(version) == [{"n": 1}]
    assert calls == [0, 1], "b's transaction was not run again after losing the race"
    assert sinks["b"].status()["last_error"] is None
    edges = "MATCH (:Skill {name: 'alpha'})-[h:HAS_VERSION]->(:SkillVersion) RETURN count(h) AS n"
    assert arcadedb.query(edges) == [{"n": 2}]  # v1 and v2, once each
    owners = arcadedb.query("MATCH (d:SkillDeployment)-[:DEPLOYED]->(:SkillVersion {content_sha: 'v2'}) "
                            "RETURN d.replica AS r ORDER BY r")
    assert owners == [{"r": "a"}, {"r": "b"}]
    for sink in sinks.values():
        sink.close()
