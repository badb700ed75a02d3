"""`skillsyncd run` with NEO4J_URI set: a real daemon process shipping to a real Bolt server."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bolt import BoltServer, bolt  # noqa: F401  (the fixture)
from polling import wait_for
from prometheus_client.parser import text_string_to_metric_families
from test_daemon import Daemon, _clean_env, start_daemon  # noqa: F401  (the fixture)

from skillsyncd.audit.journal import Journal
from skillsyncd.audit.neo4j import Cursor


def audit_lag_metric(d: Daemon) -> float:
    code, text = d.get("/metrics")
    assert code == 200
    values = [s.value for f in text_string_to_metric_families(text) for s in f.samples
              if s.name == "skillsync_audit_lag_events"]
    assert len(values) == 1, "the audit lag gauge is missing"
    return values[0]


def deployed(d: Daemon, commit: str) -> dict[str, Any]:
    return d.wait_event(lambda e: e.get("event") == "sync_finished"
                        and e.get("status") == "deployed" and e.get("commit") == commit, timeout=15)


def test_daemon_ships_each_deployment_and_reports_its_lag(
    start_daemon: Callable[..., Daemon], bolt: BoltServer, http_git_server: Any, repo: Any  # noqa: F811
) -> None:
    repo.add_skill("alpha", description="v1")
    first = repo.commit("v1")
    d = start_daemon(http_git_server.url_for(repo),
                     env=bolt.env(SKILLSYNC_REPLICA_ID="sidecar-1", SKILLSYNC_INTERVAL="0.3"))
    d.wait_event(lambda e: e.get("event") == "audit_sink_started")
    deployed(d, first)

    def runs() -> str | None:
        rows = bolt.query("MATCH (:Replica {id: 'sidecar-1'})-[:RUNS]->(x:SkillDeployment) "
                          "RETURN x.commit_sha AS c")
        return rows[0]["c"] if len(rows) == 1 else None

    wait_for(lambda: runs() == first, what="the first deployment in the graph")
    repo.add_skill("alpha", description="v2")
    second = repo.commit("v2")
    deployed(d, second)
    wait_for(lambda: runs() == second, what="RUNS to move to the second deployment")
    wait_for(lambda: d.status()["audit"]["lag"] == 0, what="lag 0 in /status")
    audit = d.status()["audit"]
    assert audit["neo4j"] is True and audit["last_error"] is None
    assert audit["replica"] == "sidecar-1" and audit["shipped_seq"] == audit["journal_seq"] > 0
    assert audit_lag_metric(d) == 0
    assert d.stop() == 0
    stopped = d.wait_event(lambda e: e.get("event") == "audit_sink_stopped")
    assert stopped["clean"] is True
    bolt.heal()


def test_wrong_password_is_reported_and_deployments_continue(
    start_daemon: Callable[..., Daemon], bolt: BoltServer, http_git_server: Any, repo: Any  # noqa: F811
) -> None:
    repo.add_skill("alpha", description="v1")
    first = repo.commit("v1")
    wrong = "wrong-" + bolt.password
    d = start_daemon(http_git_server.url_for(repo),
                     env=bolt.env(NEO4J_PASSWORD=wrong, SKILLSYNC_INTERVAL="0.3"))
    deployed(d, first)
    failed = d.wait_event(lambda e: e.get("event") == "audit_ship_failed")
    assert "refused the login of user 'falkordb'" in failed["error"]
    assert "NEO4J_PASSWORD" in failed["error"]

    repo.add_skill("alpha", description="v2")
    second = repo.commit("v2")
    deployed(d, second)  # the sink's failure never holds up a deployment
    wait_for(lambda: d.status()["audit"]["last_error"] is not None, what="the error in /status")
    audit = d.status()["audit"]
    assert "refused the login" in audit["last_error"] and audit["lag"] > 0
    assert audit_lag_metric(d) > 0
    assert d.status()["last_deployed_sha"] == second
    assert d.stop() == 0
    assert not any(wrong in line or bolt.password in line for line in d.lines), "a secret was logged"
    assert bolt.query("MATCH (d:SkillDeployment) RETURN count(d) AS n") == [{"n": 0}]


def test_without_neo4j_status_says_so_and_there_is_no_lag_gauge() -> None:
    from skillsyncd.daemon.metrics import Metrics

    metrics = Metrics()
    assert metrics.audit_status() == {"neo4j": False}
    assert b"skillsync_audit_lag_events" not in metrics.exposition()


# The real daemon, SIGKILLed by its own sink right after Neo4j committed the first
# `deployed` event and before the cursor moved.  argv = skillsyncd args.
CRASHING_DAEMON = """
import os, signal, sys
import skillsyncd.audit.neo4j as sink_module
from skillsyncd.cli import main
real_init = sink_module.Neo4jSink.__init__
def init(self, *args, **kwargs):
    real_init(self, *args, **kwargs)
    def crash(event):
        if event.kind == "deployed":
            os.kill(os.getpid(), signal.SIGKILL)
    self.after_write = crash
sink_module.Neo4jSink.__init__ = init
sys.exit(main(sys.argv[1:]))
"""


def test_daemon_killed_between_graph_write_and_cursor_leaves_no_duplicates(
    bolt: BoltServer, http_git_server: Any, repo: Any, tmp_path: Path,  # noqa: F811
    start_daemon: Callable[..., Daemon],  # noqa: F811
) -> None:
    repo.add_skill("alpha", description="v1")
    repo.add_skill("beta", description="v1")
    first = repo.commit("v1")
    state = tmp_path / "state"
    url = http_git_server.url_for(repo)
    env = _clean_env(bolt.env(SKILLSYNC_REPLICA_ID="sidecar-1"))
    crashed = Daemon([sys.executable, "-c", CRASHING_DAEMON, "run", "--repo", url,
                      "--state-dir", str(state), "--http-bind", "127.0.0.1:0"], env)
    try:
        assert crashed.proc.wait(30) == -9
    finally:
        crashed.kill()
    journal = Journal(state / "journal.jsonl")
    (event,) = [e for e in journal.read() if e.kind == "deployed"]
    assert event.commit == first
    assert Cursor(state / "audit-cursor.json").get() == event.seq - 1
    assert bolt.query("MATCH (d:SkillDeployment {id: $id}) RETURN count(d) AS n",
                      id=event.id) == [{"n": 1}]

    d = start_daemon(url, state=state, env=bolt.env(SKILLSYNC_REPLICA_ID="sidecar-1"))
    wait_for(lambda: d.status()["audit"]["lag"] == 0 and d.status()["audit"]["shipped_seq"] > 0,
             what="the restarted daemon to ship the rest")
    rows = bolt.query("MATCH (d:SkillDeployment) RETURN d.id AS id, count(*) AS n")
    assert rows == [{"id": event.id, "n": 1}]
    assert bolt.query("MATCH (:SkillDeployment)-[x:DEPLOYED]->() RETURN count(x) AS n") == [{"n": 2}]
    assert bolt.query("MATCH (:Replica)-[x:RUNS]->() RETURN count(x) AS n") == [{"n": 1}]
    assert d.stop() == 0
    bolt.heal()
