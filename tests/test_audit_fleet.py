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
from arcadedb import ArcadeServer, arcadedb  # noqa: F401  (the fixture)
from polling import wait_for
from test_daemon import SKILLSYNCD, Daemon, _clean_env, start_daemon  # noqa: F401  (the fixture)

from skillsyncd.audit.journal import Journal
from skillsyncd.audit.neo4j import SCHEMA

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


@pytest.mark.e2e  # three daemons, a JVM started three times: about a minute on 2 cores
def test_three_replicas_one_graph_two_restarts(
    start_daemon: Callable[..., Daemon], arcadedb: ArcadeServer,  # noqa: F811
    http_git_server: Any, repo: Any, tmp_path: Path,
) -> None:
    began = time.monotonic()
    commits = [new_commit(repo, 1)]
    fleet = Fleet(start_daemon, http_git_server.url_for(repo), arcadedb, tmp_path)
    fleet.deployed(commits[-1])  # the start-up sync of each daemon

    # Outage 1: the graph goes away right as the three start deploying the next commit.
    commits.append(new_commit(repo, 2))
    fleet.hup()
    arcadedb.stop()
    fleet.deployed(commits[-1])
    commits.append(new_commit(repo, 3))
    fleet.hup()
    fleet.deployed(commits[-1])
    arcadedb.start()

    # Outage 2: the graph goes away once one replica has deployed (its sink is writing).
    commits.append(new_commit(repo, 4))
    fleet.hup()
    fleet.first_deployed(commits[-1])
    arcadedb.stop()
    fleet.deployed(commits[-1])
    arcadedb.start()
    commits.append(new_commit(repo, 5))
    fleet.hup()
    fleet.deployed(commits[-1])

    wait_for(lambda: fleet.caught_up(arcadedb), timeout=HANG, what="every sink to catch up")
    for r, d in fleet.daemons.items():
        assert any(e.get("event") == "audit_ship_failed" for e in d.events), f"{r} never saw an outage"
        assert fleet.journal_commits(r) == commits, f"{r} skipped or repeated a commit"

    # 0 lost events: every deployment of every journal is a node, with its seq; the rest
    # (sync_started, no_change, ...) went through in order, so the replica's last_seq proves them.
    events = {r: list(fleet.journal(r).read()) for r in REPLICAS}
    for r in REPLICAS:
        nodes = {row["id"]: row["seq"] for row in arcadedb.query(
            "MATCH (d:SkillDeployment {replica: $r}) RETURN d.id AS id, d.seq AS seq", r=r)}
        assert nodes == {e.id: e.seq for e in events[r] if e.kind in NODE_KINDS}, r

    # 0 duplicates, by each unique key and by the exact numbers the journals imply.
    assert {label: duplicates(arcadedb, label, keys) for label, keys in UNIQUE_KEYS.items()} == {
        label: 0 for label in UNIQUE_KEYS}
    versions = {(s["name"], s["content_sha"]) for evs in events.values() for e in evs
                if e.kind == "deployed" for s in e.skills
                if s.get("change") not in {"removed", "held_back"} and s.get("content_sha")}
    counts = {row["label"]: row["n"] for row in arcadedb.query(
        "MATCH (n) RETURN labels(n)[0] AS label, count(n) AS n")}
    assert counts == {"SkillDeployment": len(commits) * len(REPLICAS), "Commit": len(commits),
                      "Replica": len(REPLICAS), "SkillVersion": len(versions),
                      "Skill": len({name for name, _ in versions})}
    pairs = arcadedb.query("MATCH (s:Skill)-[h:HAS_VERSION]->(v:SkillVersion) "
                           "WITH s, v, count(h) AS n RETURN max(n) AS most, count(*) AS pairs")
    assert pairs == [{"most": 1, "pairs": len(versions)}]

    # The constraints are the project's own, created by the daemons at their first connection.
    declared = {m.group(1) for m in map(re.compile(r"CREATE CONSTRAINT (\w+)").match, SCHEMA) if m}
    made = {row["name"] for row in arcadedb.query("SHOW CONSTRAINTS YIELD name RETURN name")}
    assert declared and declared <= made

    rows = fleet_json(arcadedb, fleet.states["replica-1"], "replica-1")
    assert [(x["replica"], x["commit"], x["behind"]) for x in rows] == [
        (r, commits[-1], False) for r in REPLICAS]
    for d in fleet.daemons.values():
        assert d.stop() == 0
    figures = {"events": sum(len(e) for e in events.values()), "nodes": sum(counts.values()),
               "restarts": arcadedb.starts - 1, "seconds": round(time.monotonic() - began, 1)}
    print(f"fleet on one graph: {json.dumps(figures)}")  # the figures, for `pytest -s`
