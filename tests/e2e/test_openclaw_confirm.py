"""The post-deploy confirmation against the real OpenClaw gateway (2026.9.6), with token auth.

skillsyncd publishes into the gateway's managed folder (as the container does), asks the
gateway's own ``skills.status`` over its WebSocket with the token from
OPENCLAW_GATEWAY_TOKEN, and reports "the gateway sees N of M":

- a deploy of a corpus (tests/corpus, and the user's repository when its bundle is
  present) is seen N of N;
- a commit adding a skill that needs an absent binary is reported by name, not blamed;
- a commit that makes a usable skill need an absent binary is blamed (rollback mode);
- a gateway restart during the check is waited for and never blamed.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gitserver import free_port
from openclaw_peer import Gateway, Install
from structlog.testing import capture_logs

from skillsyncd.config import Config, load_config
from skillsyncd.release.releases import Releases
from skillsyncd.sync.assembly import build_syncer
from skillsyncd.sync.checks import load_confirmation
from skillsyncd.sync.confirm import Confirmation

pytestmark = pytest.mark.e2e

TOKEN = "e2e-gateway-token-5f1c9a"
ABSENT = "skillsync-absent-binary-7q"  # on no PATH
CORPUS = Path(__file__).resolve().parents[1] / "corpus"
BUNDLE = Path(os.environ.get(
    "SKILLSYNC_CORPORA", Path(__file__).resolve().parents[3] / "shared" / "corpora"
)) / "kurultai-skills.bundle"


@pytest.fixture
def gateway(openclaw: Install, tmp_path: Path) -> Iterator[Callable[[], Gateway]]:
    """Start (not wait for) a token-auth gateway; skillsyncd's own check waits for it."""
    started: list[Gateway] = []
    port = free_port()

    def start() -> Gateway:
        gw = Gateway(openclaw, tmp_path / "gw", port, [], token=TOKEN)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


def settings(repo: str, tmp_path: Path, gw: Gateway, **flags: Any) -> Config:
    managed = gw.state / "skills"  # $OPENCLAW_STATE_DIR/skills, as Dockerfile.patch publishes
    managed.mkdir(exist_ok=True)
    return load_config(flags={
        "repo": repo, "state_dir": str(tmp_path / "state"), "publish_mode": "mirror",
        "publish_dir": str(managed), "gateway_url": f"ws://127.0.0.1:{gw.port}",
        "health_start_wait": 180.0, **flags}, env={"OPENCLAW_GATEWAY_TOKEN": TOKEN})


def confirmation(cfg: Config) -> Confirmation:
    conf = load_confirmation(cfg.state_dir)
    assert conf is not None, "no confirmation recorded"
    return conf


def skill_md(name: str, description: str, bins: list[str] | None = None) -> str:
    meta = f"metadata: {json.dumps({'openclaw': {'requires': {'bins': bins}}})}\n" if bins else ""
    return f"---\nname: {name}\ndescription: {description}\n{meta}---\n\n# {name}\n"


def copy_corpus(repo: Any) -> int:
    count = 0
    for path in sorted(CORPUS.rglob("*")):
        if path.is_file() and path.name != "README.md":
            repo.write(str(path.relative_to(CORPUS)), path.read_bytes())
            count += path.name == "SKILL.md"
    return count


def test_a_deploy_of_a_corpus_is_seen_n_of_n(repo: Any, tmp_path: Path,
                                             gateway: Callable[[], Gateway]) -> None:
    skills = copy_corpus(repo)
    repo.commit("the corpus")
    gw = gateway()  # booting while skillsyncd starts: waited for, not blamed
    cfg = settings(str(repo.path), tmp_path, gw)
    with capture_logs() as logs:
        outcome = build_syncer(cfg).sync()
    assert outcome.status == "deployed", outcome.reason
    conf = confirmation(cfg)
    assert (conf.state, conf.seen, conf.expected, conf.gaps) == ("confirmed", skills, skills, ()), \
        conf.summary()
    assert conf.summary() == f"the gateway sees {skills} of {skills} skills"
    events = [e["event"] for e in logs]
    assert events.count("gateway_wait_started") <= 1 and "gateway_wait_failed" not in events
    assert TOKEN not in (cfg.state_dir / "gateway.json").read_text()
    print(f"confirm e2e: corpus of {skills} skills, {conf.summary()}")


def test_the_users_repository_is_seen_n_of_n(tmp_path: Path, gateway: Callable[[], Gateway]) -> None:
    if not BUNDLE.is_file():
        pytest.skip(f"the user's repository bundle is not at {BUNDLE} (set SKILLSYNC_CORPORA)")
    clone = tmp_path / "users-repo"
    subprocess.run(["git", "clone", "--quiet", str(BUNDLE), str(clone)], check=True)
    gw = gateway()
    cfg = settings(str(clone), tmp_path, gw, skills_path="skills")
    outcome = build_syncer(cfg).sync()
    assert outcome.status == "deployed", outcome.reason
    conf = confirmation(cfg)
    live = len(Releases(cfg.state_dir).manifest(conf.release).live)
    assert (conf.state, conf.expected) == ("confirmed", live)
    assert conf.seen == live, conf.summary()
    print(f"confirm e2e: the user's repository, {conf.summary()}")


def test_a_new_skill_needing_an_absent_binary_is_reported_by_name(
        repo: Any, tmp_path: Path, gateway: Callable[[], Gateway]) -> None:
    repo.write("alpha/SKILL.md", skill_md("alpha", "Alpha does things."))
    repo.commit("v1")
    gw = gateway()
    cfg = settings(str(repo.path), tmp_path, gw, gateway_confirm="rollback")
    syncer = build_syncer(cfg)
    assert syncer.sync().status == "deployed"
    assert confirmation(cfg).seen == 1
    repo.write("needs-it/SKILL.md", skill_md("needs-it", "Needs a binary.", bins=[ABSENT]))
    repo.commit("v2: a skill that needs an absent binary")
    outcome = syncer.sync()
    assert outcome.status == "deployed", outcome.reason  # reported, never blamed: it is new
    conf = confirmation(cfg)
    assert (conf.seen, conf.expected, conf.blamed) == (1, 2, ())
    assert [(g.skill, g.reason, g.missing) for g in conf.gaps] == [
        ("needs-it", "ineligible", {"bins": (ABSENT,)})]
    assert f"needs-it: ineligible: missing bins {ABSENT}" in conf.summary()


def test_a_commit_that_breaks_a_usable_skill_is_rolled_back(
        repo: Any, tmp_path: Path, gateway: Callable[[], Gateway]) -> None:
    repo.write("alpha/SKILL.md", skill_md("alpha", "Alpha does things."))
    repo.commit("v1")
    gw = gateway()
    cfg = settings(str(repo.path), tmp_path, gw, gateway_confirm="rollback")
    syncer = build_syncer(cfg)
    first = syncer.sync()
    assert first.status == "deployed"
    repo.write("alpha/SKILL.md", skill_md("alpha", "Alpha now needs more.", bins=[ABSENT]))
    broke = repo.commit("v2: alpha needs an absent binary")
    outcome = syncer.sync()
    assert outcome.status == "rolled_back" and outcome.marked_bad, outcome.reason
    assert f"the gateway can no longer use alpha after this commit: ineligible: missing bins {ABSENT}" \
        in (outcome.reason or "")
    assert Releases(cfg.state_dir).current() == first.release
    assert confirmation(cfg).blamed == ("alpha",)
    assert outcome.commit == broke


def test_a_gateway_restart_during_the_check_is_never_blamed(
        repo: Any, tmp_path: Path, gateway: Callable[[], Gateway]) -> None:
    repo.write("alpha/SKILL.md", skill_md("alpha", "Alpha does things."))
    repo.commit("v1")
    gw = gateway()
    cfg = settings(str(repo.path), tmp_path, gw, gateway_confirm="rollback")
    assert build_syncer(cfg).sync().status == "deployed"
    repo.write("alpha/SKILL.md", skill_md("alpha", "Alpha v2 does more things."))
    repo.write("beta/SKILL.md", skill_md("beta", "Beta does things."))
    repo.commit("v2")
    # A health command runs after the flip, before the confirmation: it stops the gateway.
    syncer = build_syncer(settings(str(repo.path), tmp_path, gw, gateway_confirm="rollback",
                                   health_command=f"/bin/sh -c 'kill -TERM -{gw.proc.pid}'"))
    restarted: list[Gateway] = []

    def restart() -> None:  # what supervisord does: start it again once it is gone
        gw.proc.wait(timeout=120)
        gw.stop()
        restarted.append(gateway())

    watcher = threading.Thread(target=restart)
    watcher.start()
    with capture_logs() as logs:
        outcome = syncer.sync()
    watcher.join(timeout=180)
    assert restarted and restarted[0].proc.poll() is None
    assert outcome.status == "deployed" and not outcome.marked_bad, outcome.reason
    conf = confirmation(cfg)
    assert (conf.state, conf.seen, conf.expected, conf.blamed) == ("confirmed", 2, 2, ()), conf.summary()
    events = [e["event"] for e in logs]
    assert events.count("gateway_wait_started") == 1 and events.count("gateway_wait_ended") == 1
