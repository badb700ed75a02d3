"""The dashboard at ``/``: rendered from data (pure), valid HTML, complete without JavaScript,
and served by a real daemon with live, held-back and removed skills. The browser tests
(filter clicks, refresh without reload, phone width, screenshots) are in tests/e2e."""

from __future__ import annotations

import html5lib
from bolt import bolt  # noqa: F401  (a fixture)
from test_daemon import _deployed, start_daemon  # noqa: F401  (start_daemon: a fixture)

from skillsyncd.audit.events import decode
from skillsyncd.daemon.dashboard import (
    Page,
    SkillRow,
    github_commit_url,
    metric_samples,
    render,
    skill_rows,
)
from skillsyncd.release.manifest import Manifest

MANIFEST = {
    "release": "20261202T000000Z-cccccccccccc", "commit": "c" * 40,
    "source": "https://github.com/acme/skills.git",
    "previous_release": "20261201T000000Z-aaaaaaaaaaaa",
    "skills": [
        {"name": "pdf", "live": True, "status": "ok", "effective_name": "pdf", "version": "1.0",
         "description": "Reads <PDF> files & more", "commit": "c" * 40, "content_sha": "d" * 40},
        {"name": "broken", "live": False, "status": "held_back", "version": None,
         "findings": [{"rule": "field.required", "severity": "error", "path": "broken/SKILL.md",
                       "line": 2, "message": "description is missing"}]},
    ],
    "layout": [{"rule": "layout.gitlink", "severity": "warning", "path": "vendor",
                "message": "a submodule is not fetched"}],
}
DEPLOYED = decode({"kind": "deployed", "commit": "c" * 40, "trigger": "webhook",
                   "timestamp": "2026-12-01T10:00:00Z",
                   "skills": [{"name": "old", "change": "removed", "version": "0.9"}]})


def page() -> Page:
    status = {"current_release": "20261202T000000Z-cccccccccccc", "last_deployed_sha": "c" * 40,
              "ready": True, "failure_streak": 0, "behind_upstream": True, "upstream_commit": "e" * 40,
              "behind_reason": "health check failed: gateway down", "replica": "r1", "version": "0.1.0",
              "audit": {"lag": 3}, "poller_status": "idle", "last_success": "2026-12-02T00:00:00Z"}
    return Page(status=status, source=MANIFEST["source"], previous_release=MANIFEST["previous_release"],
                went_live=DEPLOYED, skills=skill_rows(Manifest.from_json(MANIFEST), DEPLOYED),
                events=(DEPLOYED,),
                fleet=({"replica": "r1", "commit": "c" * 40, "behind": False, "last_seen": "now"},),
                metrics=metric_samples("# HELP x y\nskillsync_syncs_total{result=\"deployed\"} 2.0\n"))


def test_rows_cover_live_held_back_not_deployed_and_removed() -> None:
    rows = {r.folder: r for r in skill_rows(Manifest.from_json(MANIFEST), DEPLOYED)}
    assert {f: r.status for f, r in rows.items()} == {
        "pdf": "live", "broken": "held_back", "vendor": "not_deployed", "old": "removed"}
    assert rows["broken"].findings[0]["rule"] == "field.required"
    assert "removed by commit cccccccccccc" in (rows["old"].why or "")


def test_page_shows_everything_escaped_and_is_valid_html() -> None:
    text = render(page())
    parser = html5lib.HTMLParser(strict=True)
    parser.parse(text)  # raises on any HTML parse error
    assert "Reads &lt;PDF&gt; files &amp; more" in text and "<PDF>" not in text
    assert "broken/SKILL.md:2" in text and "[field.required]" in text
    assert "https://github.com/acme/skills/commit/" + "c" * 40 in text
    assert "by webhook" in text and "20261201T000000Z-aaaaaaaaaaaa" in text
    assert "health check failed: gateway down" in text
    assert 'id="fleet"' in text and "skillsync_syncs_total" in text


def test_filter_is_server_side_so_it_works_without_javascript() -> None:
    text = render(page(), want="held_back")
    assert 'data-status="held_back"' in text and 'data-status="live"' not in text
    assert 'href="?status=held_back" aria-current="page"' in text
    assert render(page(), want="nonsense") == render(page(), want="all")


def test_github_links_only_for_github() -> None:
    assert github_commit_url("git@github.com:acme/skills.git", "abc") == "https://github.com/acme/skills/commit/abc"
    assert github_commit_url("https://gitlab.com/acme/skills.git", "abc") is None
    assert github_commit_url(None, "abc") is None


def test_empty_state_renders() -> None:
    text = render(Page(status={"current_release": None}))
    html5lib.HTMLParser(strict=True).parse(text)
    assert "none yet" in text and "No audit events yet." in text
    assert "Fleet" not in text  # Neo4j not configured: no fleet section


def test_a_hostile_skill_name_cannot_inject_markup() -> None:
    row = SkillRow(folder='x"><script>alert(1)</script>', status="live", name="<img src=x onerror=1>")
    text = render(Page(status={}, skills=(row,)))
    assert "<script>alert" not in text and "<img src=x" not in text


def test_daemon_serves_the_dashboard(start_daemon, http_git_server, repo):  # type: ignore[no-untyped-def]  # noqa: F811
    repo.add_skill("alpha", description="Alpha does things.")
    repo.add_skill("gone", description="Will be removed.")
    first = repo.commit("v1")
    d = start_daemon(http_git_server.url_for(repo), env={"GITHUB_TOKEN": "tok-never-shown-123456"})
    _deployed(d, first)
    repo.remove("gone")
    repo.write("broken/SKILL.md", "---\nname: broken\n---\nno description\n")
    second = repo.commit("v2")
    d.proc.send_signal(__import__("signal").SIGHUP)
    _deployed(d, second)
    code, text = d.get("/")
    assert code == 200
    html5lib.HTMLParser(strict=True).parse(text)
    assert "Alpha does things." in text
    assert 'data-status="held_back"' in text and "[field.required]" in text
    assert 'data-status="removed"' in text and "<code>gone</code>" in text
    assert "tok-never-shown-123456" not in text
    code, held = d.get("/?status=held_back")
    assert code == 200 and "Alpha does things." not in held and "broken/SKILL.md" in held


def test_fleet_comes_from_neo4j_and_its_outage_is_shown(bolt, repo, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    """Two replicas ship to a real Bolt server; the dashboard lists both, the stale one as behind."""
    from types import SimpleNamespace

    from test_audit_neo4j import cfg_for

    from skillsyncd.audit.commands import cmd_audit_push
    from skillsyncd.daemon import dashboard
    from skillsyncd.sync.assembly import build_syncer

    repo.add_skill("alpha", description="v1")
    repo.commit("v1")
    a = cfg_for(bolt, str(repo.path), tmp_path / "a", replica="replica-a")
    b = cfg_for(bolt, str(repo.path), tmp_path / "b", replica="replica-b")
    build_syncer(a).sync()
    build_syncer(b).sync()
    repo.add_skill("alpha", description="v2")
    repo.commit("v2")
    build_syncer(a).sync()
    for cfg in (a, b):
        assert cmd_audit_push(cfg) == 0
        bolt.heal()
    dashboard._fleet_cache.at = -1e9
    page = dashboard.gather(SimpleNamespace(cfg=a), {"current_release": None}, "")
    bolt.heal()
    rows = {r["replica"]: r for r in page.fleet or ()}
    assert rows["replica-b"]["behind"] is True and rows["replica-a"]["behind"] is False, rows
    text = dashboard.render(page)
    assert "replica-b" in text and 'id="fleet"' in text
    assert bolt.password not in text
    bolt.stop()
    dashboard._fleet_cache.at = -1e9
    down = dashboard.gather(SimpleNamespace(cfg=a), {"current_release": None}, "")
    assert down.fleet_error and "Neo4j:" in dashboard.render(down)


def test_a_held_back_skill_whose_last_good_version_serves_counts_as_live() -> None:
    """One count everywhere: the manifest's live skills (what status and skillsync_skills_live say)."""
    manifest = Manifest.from_json({**MANIFEST, "skills": [
        *MANIFEST["skills"],
        {"name": "older", "live": True, "status": "held_back", "version": "1.0",
         "findings": [{"rule": "field.required", "severity": "error", "path": "older/SKILL.md",
                       "line": 2, "message": "description is missing"}]}]})
    rows = skill_rows(manifest, DEPLOYED)
    text = render(Page(status=page().status, skills=rows))
    assert len(manifest.live) == 2 and ">live (2)</a>" in text, text
    assert ">held back (2)</a>" in text
    live_page = render(Page(status=page().status, skills=rows), want="live")
    assert "<code>older</code>" in live_page and "<code>broken</code>" not in live_page
