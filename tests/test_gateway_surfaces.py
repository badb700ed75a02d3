"""Where the gateway's confirmation shows: /status (gateway.json on disk), /metrics, the dashboard
and the alerts. The record comes from a real confirmation check against a real WebSocket server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import html5lib
import pytest
from gateway_ws import FakeGateway
from prometheus_client.parser import text_string_to_metric_families
from test_gateway_rpc import R1, R2, TOKEN, config, release, status_of

from skillsyncd.audit.events import GatewayConfirmed, JournalEvent, decode, encode
from skillsyncd.daemon.dashboard import Page, render
from skillsyncd.daemon.metrics import Metrics
from skillsyncd.daemon.status import disk_view
from skillsyncd.notify.alerts import FAILURE, WARNING, Book, Settings, decide
from skillsyncd.release.releases import Releases
from skillsyncd.sync.checks import GatewayConfirmCheck

S = Settings(replica="r1")


@pytest.fixture
def confirmed(tmp_path: Path) -> Iterator[tuple[Any, list[JournalEvent]]]:
    """A deploy of a, b and jqtool (needs jq, absent) after one where a was usable: a is broken."""
    gw = FakeGateway(token=TOKEN).start()
    cfg = config(tmp_path, gw)
    old = release(cfg, R1, {"a": "added", "b": "added"})
    Releases(cfg.state_dir).flip(R1)
    new = release(cfg, R2, {"a": "changed", "b": "unchanged", "jqtool": "added"})
    gw.answer = lambda: status_of(old, {"a": True, "b": True})
    recorded: list[JournalEvent] = []
    check = GatewayConfirmCheck(recorded.append)
    assert check.wait_ready(cfg) is None
    Releases(cfg.state_dir).flip(R2)
    gw.answer = lambda: status_of(new, {"a": False, "b": True, "jqtool": False})
    assert check(cfg, R2) == []
    yield cfg, recorded
    gw.close()


def test_status_shows_sees_n_of_m_and_each_difference(confirmed: tuple[Any, list[JournalEvent]]) -> None:
    cfg, _ = confirmed
    view = disk_view(cfg)["gateway"]
    assert (view["state"], view["seen"], view["expected"], view["blamed"]) == ("confirmed", 1, 3, ("a",))
    assert view["summary"].startswith("the gateway sees 1 of 3 skills: a: ineligible: missing bins jq")
    assert [g["skill"] for g in view["gaps"]] == ["a", "jqtool"]


def test_metrics_export_seen_expected_and_reasons(confirmed: tuple[Any, list[JournalEvent]]) -> None:
    cfg, _ = confirmed
    m = Metrics()
    m.gateway(disk_view(cfg)["gateway"])
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(m.exposition().decode()) for s in f.samples}
    assert samples[("skillsync_gateway_skills_seen", ())] == 1
    assert samples[("skillsync_gateway_skills_expected", ())] == 3
    assert samples[("skillsync_gateway_skills_unusable", (("reason", "ineligible"),))] == 2
    assert samples[("skillsync_gateway_confirmed", ())] == 1


def test_dashboard_shows_the_gateway_section(confirmed: tuple[Any, list[JournalEvent]]) -> None:
    cfg, _ = confirmed
    body = render(Page(status={"gateway": disk_view(cfg)["gateway"], "version": "x"}))
    html5lib.HTMLParser(strict=True).parse(body)
    assert '<p id="gateway-sees">The gateway sees <span class="warn">1 of 3</span>' in body
    assert "<code>jqtool</code></td><td>ineligible: missing bins jq" in body
    assert '<code>a</code> <span class="bad">this commit</span>' in body
    assert "Not asked yet" in render(Page(status={"version": "x"}))


def test_alerts_name_each_skill_once(confirmed: tuple[Any, list[JournalEvent]]) -> None:
    _, recorded = confirmed
    event = decode(encode(recorded[-1]))  # as the journal reads it back
    assert isinstance(event, GatewayConfirmed)
    found, book = decide(event, Book(), S)
    assert [(a.event, a.level) for a in found] == [("gateway_blamed", FAILURE)]
    assert "The gateway sees 1 of 3 skills" in found[0].body
    assert "- a: ineligible: missing bins jq" in found[0].body
    assert "(usable before this commit)" in found[0].body
    assert "- jqtool: ineligible: missing bins jq" in found[0].body
    book = book.with_sent(found[0].keys)
    assert decide(event, book, S)[0] == []  # the same differences again: no second alert


def test_a_lasting_gap_alerts_once_across_releases() -> None:
    gap = {"skill": "jqtool", "reason": "ineligible", "detail": "ineligible: missing bins jq",
           "blamed": False}
    first = GatewayConfirmed(release=R1, commit="c1", state="confirmed", expected=2, seen=1, gaps=(gap,))
    found, book = decide(first, Book(), S)
    assert [(a.event, a.level) for a in found] == [("gateway_gaps", WARNING)]
    assert found[0].title == "skillsyncd: the gateway sees 1 of 2 skills (r1)"
    book = book.with_sent(found[0].keys)
    later = GatewayConfirmed(release=R2, commit="c2", state="confirmed", expected=2, seen=1, gaps=(gap,))
    assert decide(later, book, S)[0] == []


def test_a_gateway_that_could_not_be_asked_alerts_only_when_it_refused() -> None:
    down = GatewayConfirmed(release=R1, state="unreachable", summary="could not be asked")
    assert decide(down, Book(), S)[0] == []
    refused = GatewayConfirmed(release=R1, state="refused", summary="token mismatch")
    found, book = decide(refused, Book(), S)
    assert [(a.event, a.level) for a in found] == [("gateway_refused", WARNING)]
    assert "OPENCLAW_GATEWAY_TOKEN" in found[0].body
    assert decide(refused, book.with_sent(found[0].keys), S)[0] == []
