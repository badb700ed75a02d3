"""The gateway RPC client and the confirmation check, against a real WebSocket server on 127.0.0.1.

The server (tests/gateway_ws.py) speaks the gateway's protocol frame by frame; the
release on disk is real (a folder and a manifest, flipped by Releases). A gateway
that is starting, restarting, refusing connections or too slow is waited for and
reported, never blamed; only a skill this commit broke is.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_ws import FakeGateway, free_port
from polling import wait_for
from structlog.testing import capture_logs

from skillsyncd.audit.events import GatewayConfirmed, JournalEvent
from skillsyncd.config import Config, Secret
from skillsyncd.release.manifest import Manifest, SkillRecord, write_manifest
from skillsyncd.release.releases import Releases
from skillsyncd.sync.checks import GATEWAY_FILE, GatewayConfirmCheck, load_confirmation, post_deploy_checks
from skillsyncd.sync.gateway_rpc import GatewayRefused, GatewayTarget, GatewayUnavailable, call

TOKEN = "gw-token-0123456789abcdef"
R1, R2 = "20261208T000000Z-aaaaaaaaaaaa", "20261208T000100Z-bbbbbbbbbbbb"


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    gw = FakeGateway(token=TOKEN).start()
    yield gw
    gw.close()


def target(gw: FakeGateway, token: str | None = TOKEN, timeout: float = 5.0) -> GatewayTarget:
    return GatewayTarget(gw.url, token, timeout)


# --- the client -----------------------------------------------------------------


def test_connect_then_skills_status(gateway: FakeGateway) -> None:
    gateway.answer = lambda: {"skills": [{"name": "a", "eligible": True}]}
    assert call(target(gateway), "skills.status") == {"skills": [{"name": "a", "eligible": True}]}
    hello = gateway.connects[-1]
    assert hello["client"]["id"] == "gateway-client" and hello["client"]["mode"] == "backend"
    assert (hello["role"], hello["scopes"], hello["auth"]) == ("operator", ["operator.read"],
                                                                {"token": TOKEN})
    assert "device" not in hello  # loopback backend: no device identity
    assert gateway.calls == ["skills.status"]


def test_a_wrong_token_is_refused_with_the_fix_and_never_shown(gateway: FakeGateway) -> None:
    with pytest.raises(GatewayRefused) as err:
        call(target(gateway, token="wrong-token-value-123"), "skills.status")
    assert "gateway token mismatch" in str(err.value)
    assert "OPENCLAW_GATEWAY_TOKEN" in str(err.value)
    assert "wrong-token-value-123" not in str(err.value)
    assert gateway.calls == []


def test_a_starting_gateway_is_unavailable_not_refused(gateway: FakeGateway) -> None:
    gateway.script = ["starting"]
    with pytest.raises(GatewayUnavailable, match="gateway starting"):
        call(target(gateway), "skills.status")


def test_a_closed_port_is_unavailable() -> None:
    with pytest.raises(GatewayUnavailable, match="unreachable"):
        call(GatewayTarget(f"ws://127.0.0.1:{free_port()}", None, 5.0), "skills.status")


def test_a_silent_gateway_times_out_as_unavailable(gateway: FakeGateway) -> None:
    gateway.script = ["silent"]
    with pytest.raises(GatewayUnavailable, match=r"did not answer skills\.status within 0\.5s"):
        call(target(gateway, timeout=0.5), "skills.status")


def test_a_restart_mid_call_is_unavailable(gateway: FakeGateway) -> None:
    gateway.script = ["restart"]
    with pytest.raises(GatewayUnavailable, match="closed the connection: code 1012"):
        call(target(gateway), "skills.status")


# --- the check ------------------------------------------------------------------


def release(cfg: Config, rid: str, skills: dict[str, str]) -> Path:
    """A release on disk serving ``skills`` (name -> change), flipped live."""
    releases = Releases(cfg.state_dir)
    root = releases.dir(rid)
    for name in skills:
        (root / name).mkdir(parents=True)
        (root / name / "SKILL.md").write_text(f"---\nname: {name}\ndescription: {name} skill\n---\n")
    write_manifest(releases.manifest_path(rid), Manifest(
        release=rid, commit=rid[-12:] * 3 + "abcd",
        skills=tuple(SkillRecord(name=n, effective_name=n, description=f"{n} skill", change=c)
                     for n, c in skills.items())))
    return root


def status_of(root: Path, eligible: dict[str, bool], extra: tuple[dict[str, Any], ...] = ()
              ) -> dict[str, Any]:
    return {"skills": [
        {"name": n, "description": f"{n} skill", "source": "openclaw-extra", "baseDir": str(root / n),
         "eligible": ok, "missing": {"bins": [] if ok else ["jq"]}} for n, ok in eligible.items()
    ] + list(extra)}


def config(tmp_path: Path, gw: FakeGateway, **over: Any) -> Config:
    base: dict[str, Any] = {"state_dir": tmp_path / "state", "gateway_url": gw.url,
                            "gateway_token": Secret(value=TOKEN), "health_start_wait": 30.0,
                            "gateway_settle": 5.0}
    return Config(**{**base, **over})


def deploy(cfg: Config, check: GatewayConfirmCheck, rid: str) -> tuple[str | None, list[str]]:
    """What go-live does: wait for the gateway, flip, run the check."""
    ready = check.wait_ready(cfg)
    Releases(cfg.state_dir).flip(rid)
    return ready, check(cfg, rid)


def test_a_release_the_gateway_fully_sees(tmp_path: Path, gateway: FakeGateway) -> None:
    cfg = config(tmp_path, gateway)
    root = release(cfg, R1, {"a": "added", "b": "added"})
    gateway.answer = lambda: status_of(root, {"a": True, "b": True})
    recorded: list[JournalEvent] = []
    with capture_logs() as logs:
        assert deploy(cfg, GatewayConfirmCheck(recorded.append), R1) == (None, [])
    conf = load_confirmation(cfg.state_dir)
    assert conf is not None and (conf.state, conf.seen, conf.expected, conf.gaps) == ("confirmed", 2, 2, ())
    line = next(e for e in logs if e["event"] == "gateway_confirmed")
    assert line["summary"] == "the gateway sees 2 of 2 skills"
    assert isinstance(recorded[0], GatewayConfirmed) and recorded[0].seen == 2
    assert TOKEN not in (cfg.state_dir / GATEWAY_FILE).read_text()
    assert all(TOKEN not in json.dumps(e, default=str) for e in logs)


def test_a_new_skill_needing_an_absent_binary_is_reported_not_blamed(
        tmp_path: Path, gateway: FakeGateway) -> None:
    cfg = config(tmp_path, gateway, gateway_confirm="rollback")
    old = release(cfg, R1, {"a": "added"})
    Releases(cfg.state_dir).flip(R1)
    new = release(cfg, R2, {"a": "unchanged", "jqtool": "added"})
    gateway.answer = lambda: status_of(old, {"a": True})
    check = GatewayConfirmCheck()
    assert check.wait_ready(cfg) is None
    Releases(cfg.state_dir).flip(R2)
    gateway.answer = lambda: status_of(new, {"a": True, "jqtool": False})
    assert check(cfg, R2) == []  # reported, not blamed: the skill was never usable
    conf = load_confirmation(cfg.state_dir)
    assert conf is not None and (conf.seen, conf.expected, conf.blamed) == (1, 2, ())
    assert [(g.skill, g.reason, g.missing) for g in conf.gaps] == [
        ("jqtool", "ineligible", {"bins": ("jq",)})]


@pytest.mark.parametrize(("mode", "problems"), [
    ("report", []),
    ("rollback", ["the gateway can no longer use a after this commit: ineligible: missing bins jq "
                  "(install it in the gateway's image (on the PATH the gateway gets))"]),
])
def test_a_skill_this_commit_broke_is_blamed(tmp_path: Path, gateway: FakeGateway, mode: str,
                                             problems: list[str]) -> None:
    cfg = config(tmp_path, gateway, gateway_confirm=mode)
    old = release(cfg, R1, {"a": "added", "b": "added"})
    Releases(cfg.state_dir).flip(R1)
    new = release(cfg, R2, {"a": "changed", "b": "unchanged"})
    gateway.answer = lambda: status_of(old, {"a": True, "b": True})
    check = GatewayConfirmCheck()
    assert check.wait_ready(cfg) is None
    Releases(cfg.state_dir).flip(R2)
    gateway.answer = lambda: status_of(new, {"a": False, "b": True})
    with capture_logs() as logs:
        assert check(cfg, R2) == problems
    conf = load_confirmation(cfg.state_dir)
    assert conf is not None and conf.blamed == ("a",)
    assert any(e["event"] == "gateway_confirm_blamed" and e["blamed"] == ["a"] for e in logs)


def test_the_check_waits_for_the_gateway_to_load_the_release(tmp_path: Path, gateway: FakeGateway) -> None:
    cfg = config(tmp_path, gateway)
    root = release(cfg, R1, {"a": "added", "b": "added"})
    answers = [status_of(root, {"a": True})] * 2 + [status_of(root, {"a": True, "b": True})]
    gateway.answer = lambda: answers.pop(0) if len(answers) > 1 else answers[0]
    check = GatewayConfirmCheck()
    Releases(cfg.state_dir).flip(R1)
    assert check(cfg, R1) == []
    conf = load_confirmation(cfg.state_dir)
    assert conf is not None and (conf.seen, conf.settled) == (2, True)
    assert gateway.calls.count("skills.status") == 3


def test_a_restart_during_the_check_is_waited_for_and_never_blamed(
        tmp_path: Path, gateway: FakeGateway) -> None:
    cfg = config(tmp_path, gateway, gateway_confirm="rollback")
    old = release(cfg, R1, {"a": "added"})
    Releases(cfg.state_dir).flip(R1)
    new = release(cfg, R2, {"a": "changed"})
    gateway.answer = lambda: status_of(old, {"a": True})
    check = GatewayConfirmCheck()
    assert check.wait_ready(cfg) is None
    Releases(cfg.state_dir).flip(R2)
    gateway.answer = lambda: status_of(new, {"a": True})
    gateway.script = ["restart", "starting", "starting"]
    with capture_logs() as logs:
        assert check(cfg, R2) == []
    conf = load_confirmation(cfg.state_dir)
    assert conf is not None and (conf.state, conf.seen, conf.blamed) == ("confirmed", 1, ())
    events = [e["event"] for e in logs]
    assert events.count("gateway_wait_started") == 1 and events.count("gateway_wait_ended") == 1


def test_a_port_that_closes_and_reopens_is_waited_for(tmp_path: Path, gateway: FakeGateway) -> None:
    cfg = config(tmp_path, gateway, gateway_confirm="rollback")
    root = release(cfg, R1, {"a": "added"})
    gateway.answer = lambda: status_of(root, {"a": True})
    Releases(cfg.state_dir).flip(R1)
    gateway.stop()  # nothing listens: connection refused until it is back
    result: list[list[str]] = []
    with capture_logs() as logs:
        worker = threading.Thread(target=lambda: result.append(GatewayConfirmCheck()(cfg, R1)))
        worker.start()
        wait_for(lambda: any(e["event"] == "gateway_wait_started" for e in logs), what="the wait")
        gateway.start()
        worker.join(timeout=60)
    assert result == [[]]
    conf = load_confirmation(cfg.state_dir)
    assert conf is not None and (conf.state, conf.seen) == ("confirmed", 1)


def test_a_gateway_that_never_comes_is_reported_not_blamed(tmp_path: Path, gateway: FakeGateway) -> None:
    cfg = config(tmp_path, gateway, gateway_confirm="rollback", health_start_wait=0.5)
    release(cfg, R1, {"a": "added"})
    gateway.stop()
    check = GatewayConfirmCheck()
    with capture_logs() as logs:
        ready, problems = deploy(cfg, check, R1)
    assert ready is not None and "unreachable" in ready
    assert problems == []
    conf = load_confirmation(cfg.state_dir)
    assert conf is not None and conf.state == "unreachable" and "unreachable" in (conf.error or "")
    events = [e["event"] for e in logs]
    assert "gateway_wait_failed" not in events
    # waited for once, before the flip; after it asked once more, without a second wait
    assert events.count("gateway_wait_started") == 1 and events.count("gateway_wait_gave_up") == 1
    assert "gateway_unconfirmed" in events


def test_a_refused_token_is_reported_not_blamed(tmp_path: Path, gateway: FakeGateway) -> None:
    cfg = config(tmp_path, gateway, gateway_token=Secret(value="not-the-token-xyz"),
                 gateway_confirm="rollback")
    release(cfg, R1, {"a": "added"})
    Releases(cfg.state_dir).flip(R1)
    assert GatewayConfirmCheck()(cfg, R1) == []
    conf = load_confirmation(cfg.state_dir)
    assert conf is not None and conf.state == "refused" and "token mismatch" in (conf.error or "")


def test_the_check_is_configured_by_the_gateway_url() -> None:
    assert not any(isinstance(c, GatewayConfirmCheck) for c in post_deploy_checks(Config()))
    on = post_deploy_checks(Config(gateway_url="ws://127.0.0.1:18789"))
    assert [type(c) for c in on] == [GatewayConfirmCheck]
    assert post_deploy_checks(Config(gateway_url="ws://127.0.0.1:18789", gateway_confirm="off")) == ()
