"""Alerts: the pure decisions, then real skillsyncd processes telling real receivers on 127.0.0.1.

Receivers: an HTTP server taking Apprise's json:// posts and an SMTP server
(aiosmtpd) taking mailto://. A one-shot waits for its alerts at exit, so once it
returned every alert it raised has arrived: no sleeps before "nothing more came".
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gitserver import HttpGitServer, RepoBuilder
from receivers import JsonReceiver, SmtpReceiver, wait_for
from test_daemon import SKILLSYNCD, _clean_env, start_daemon  # noqa: F401 (fixture)

from skillsyncd.audit.events import JournalEvent, decode, encode
from skillsyncd.notify import alerts
from skillsyncd.notify.alerts import Book, Settings, decide, decide_lag
from skillsyncd.notify.apprise import notify_urls

C1, C2 = "a" * 40, "b" * 40
S = Settings(replica="r1", failing_after=3, audit_lag_events=10,
             commit_web="https://github.com/acme/skills")


def _deployed(commit: str, held: dict[str, list[str]]) -> JournalEvent:
    return decode({"kind": "deployed", "commit": commit, "release": "r", "held_back": held})


def test_held_back_is_announced_once_per_skill_version() -> None:
    held = {"bad": ["bad/SKILL.md: error [frontmatter.required] description is missing"]}
    found, book = decide(_deployed(C1, held), Book(), S, {"bad": "t1"})
    assert [a.event for a in found] == ["held_back"]
    body = found[0].body
    assert "bad" in found[0].title and "description is missing" in body
    assert f"https://github.com/acme/skills/commit/{C1}" in body and "What to do" in body
    book = book.with_sent(found[0].keys)
    # the next commit still carries the same refused version: nothing new
    assert decide(_deployed(C2, held), book, S, {"bad": "t1"})[0] == []
    # a new refused version of it is news
    assert [a.event for a in decide(_deployed(C2, held), book, S, {"bad": "t2"})[0]] == ["held_back"]


def test_a_deploy_holding_no_skill_is_announced_once_per_commit() -> None:
    empty = decode({"kind": "deployed", "commit": C1, "release": "r", "skills_count": 0})
    found, book = decide(empty, Book(), S)
    assert [a.event for a in found] == ["nothing_live"]
    assert "SKILLSYNC_SKILLS_PATH" in found[0].body and "SKILLSYNC_SKILL_DEPTH" in found[0].body
    book = book.with_sent(found[0].keys)
    assert decide(empty, book, S)[0] == []
    # a release with skills, an old event with no count, or one recovery journalled: no alert
    for fields in ({"skills_count": 3}, {}, {"skills_count": 0, "recovered": True}):
        event = decode({"kind": "deployed", "commit": C2, "release": "r", **fields})
        assert decide(event, Book(), S)[0] == [], fields


def test_a_deploy_of_a_repository_laid_out_elsewhere_alerts_nothing_live(
    http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path, json_receiver: JsonReceiver,
) -> None:
    repo.write("docs/readme.md", "skills live under skills/, which the settings do not name\n")
    repo.write("skills/pack/deep/one/SKILL.md", "---\nname: one\ndescription: d\n---\nbody\n")
    commit = repo.commit("layout the settings do not match")
    proc = _once(http_git_server.url_for(repo), tmp_path / "state", json_receiver.url)
    assert proc.returncode == 0, proc.stderr
    [msg] = json_receiver.messages()
    assert msg["type"] == "warning" and commit[:12] in msg["message"], msg
    assert "SKILLSYNC_SKILLS_PATH" in msg["message"]


def test_rejection_guard_and_rollback_once_per_commit() -> None:
    rejected = decode({"kind": "rejected", "commit": C1, "policy": "reject", "findings": [
        {"rule": "secret.github-token", "severity": "error", "path": "x/run.sh", "line": 3,
         "message": "a GitHub token"},
        {"rule": "secret.other", "severity": "error", "path": "x/b.sh", "line": 1, "message": "second"}]})
    found, book = decide(rejected, Book(), S)
    assert [a.event for a in found] == ["rejected"]
    assert "x/run.sh:3: [secret.github-token]" in found[0].body and "second" not in found[0].body
    book = book.with_sent(found[0].keys)
    assert decide(rejected, book, S)[0] == []
    guard = decode({**encode(rejected), "policy": "guard", "findings": [
        {"rule": "guard.mass-removal", "severity": "error", "path": ".", "message": "remove all 4"}]})
    found, _ = decide(guard, book, S)
    assert [a.event for a in found] == ["mass_removal"] and "--force" in found[0].body
    rolled = decode({"kind": "rolled_back", "commit": C2, "release": "old", "reason": "health URL 500"})
    found, book = decide(rolled, book, S)
    assert [a.event for a in found] == ["rolled_back"] and "health URL 500" in found[0].body
    assert decide(rolled, book.with_sent(found[0].keys), S)[0] == []


def test_a_veto_and_a_frozen_commit_alert_once_per_commit() -> None:
    vetoed = decode({"kind": "rejected", "commit": C1, "policy": "veto", "findings": [
        {"rule": "veto.refused", "severity": "error", "path": ".",
         "message": "pre-flip command 'check.sh' exited 1: FORBIDDEN in beta/SKILL.md"}]})
    found, book = decide(vetoed, Book(), S)
    assert [(a.event, a.level) for a in found] == [("rejected", "failure")]
    assert "pre-flip command" in found[0].title and "FORBIDDEN in beta/SKILL.md" in found[0].body
    assert decide(vetoed, book.with_sent(found[0].keys), S)[0] == []
    frozen = decode({"kind": "frozen", "commit": C2, "release": "live-1",
                     "reason": "deployments frozen since t by cli: review until unfreeze",
                     "skills": [{"name": "beta", "change": "added"},
                                {"name": "alpha", "change": "unchanged"}]})
    found, book = decide(frozen, book, S)
    assert [a.event for a in found] == ["frozen"] and "waits behind a freeze" in found[0].title
    assert "- added: beta" in found[0].body and "alpha" not in found[0].body
    assert "unfreeze" in found[0].body and "live-1 stays live" in found[0].body
    assert decide(frozen, book.with_sent(found[0].keys), S)[0] == []


def test_failing_streak_alerts_once_then_recovers() -> None:
    book, seen = Book(), []
    for i in range(5):
        found, book = decide(decode({"kind": "fetch_failed", "error": f"refused {i}"}), book, S)
        seen += [a.event for a in found]
        found, book = decide(decode({"kind": "sync_finished", "status": "failed"}), book, S)
        seen += [a.event for a in found]
    assert seen == ["failing"] and book.streak == 5
    found, book = decide(decode({"kind": "sync_finished", "status": "no_change"}), book, S)
    assert [a.event for a in found] == ["recovered"] and "refused 4" in found[0].body
    assert book.streak == 0 and not book.streak_alerted
    # a short streak that recovers says nothing
    _, book = decide(decode({"kind": "sync_failed", "error": "x"}), book, S)
    assert decide(decode({"kind": "sync_finished", "status": "deployed"}), book, S)[0] == []


def test_audit_lag_alerts_once_and_when_caught_up() -> None:
    found, book = decide_lag(12, Book(), S)
    assert [a.event for a in found] == ["audit_lag"]
    assert decide_lag(50, book, S)[0] == []
    found, book = decide_lag(0, book, S)
    assert [a.event for a in found] == ["audit_caught_up"]


def test_book_survives_a_round_trip_and_damage() -> None:
    book = Book(streak=2, last_error="e").with_sent(["k1", "k2"])
    assert Book.from_json(book.to_json()) == book
    assert Book.from_json(b"{not json") == Book()
    many = Book().with_sent([f"k{i}" for i in range(alerts.SENT_KEEP + 10)])
    assert len(many.sent) == alerts.SENT_KEEP and many.has(f"k{alerts.SENT_KEEP + 9}")


@pytest.mark.parametrize(("url", "web"), [
    ("https://github.com/acme/skills.git", "https://github.com/acme/skills"),
    ("https://x-access-token:t@github.com/acme/skills", "https://github.com/acme/skills"),
    ("git@github.com:acme/skills.git", "https://github.com/acme/skills"),
    ("https://gitlab.com/acme/skills.git", None),
    ("git://127.0.0.1/skills", None),
])
def test_commit_links_only_for_github(url: str, web: str | None) -> None:
    assert alerts.github_web(url) == web


def test_notify_setting_splits_on_spaces_and_lines() -> None:
    raw = "json://a/x  mailto://b?to=c@d,e@f\n# comment\n\nntfy://t  # trailing comment\n"
    assert notify_urls(raw) == ["json://a/x", "mailto://b?to=c@d,e@f", "ntfy://t"]


# --- real processes, real receivers -------------------------------------------------


@pytest.fixture
def json_receiver() -> Iterator[JsonReceiver]:
    r = JsonReceiver()
    yield r
    r.close()


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    r = SmtpReceiver()
    yield r
    r.close()


def _once(url: str, state: Path, notify: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SKILLSYNCD, "--once", "--repo", url, "--state-dir", str(state)],
                          env=_clean_env({"SKILLSYNC_NOTIFY": notify, "SKILLSYNC_NETWORK_TIMEOUT": "3",
                                          **env}),
                          capture_output=True, text=True, timeout=60)


def test_held_back_and_rejected_reach_json_and_email_once(
    http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path,
    json_receiver: JsonReceiver, smtp_receiver: SmtpReceiver,
) -> None:
    notify_file = tmp_path / "notify"
    notify_file.write_text(f"{json_receiver.url}\n{smtp_receiver.url}\n")
    repo.add_skill("good", description="fine")
    repo.write("broken/SKILL.md", "---\nname: broken\n---\nno description\n")
    first = repo.commit("v1")
    url = http_git_server.url_for(repo)
    state = tmp_path / "state"
    proc = _once(url, state, "", SKILLSYNC_NOTIFY_FILE=str(notify_file))
    assert proc.returncode == 0, proc.stderr
    [msg] = json_receiver.messages()
    assert msg["type"] == "warning" and "broken" in msg["title"]
    assert first[:12] in msg["message"] and "description" in msg["message"]
    assert "What to do" in msg["message"]
    [mail] = smtp_receiver.bodies()
    assert "broken" in mail and first[:12] in mail
    # the same commit again, and a new commit with the same refused version: no repeat
    assert _once(url, state, "", SKILLSYNC_NOTIFY_FILE=str(notify_file)).returncode == 0
    repo.add_skill("good", description="still fine")
    repo.commit("v2")
    assert _once(url, state, "", SKILLSYNC_NOTIFY_FILE=str(notify_file)).returncode == 0
    assert len(json_receiver.posts) == 1 and len(smtp_receiver.messages) == 1
    assert json.loads((state / "alerts.json").read_text())["sent"]
    # a rejected commit (on_invalid=reject) is one failure alert naming the finding
    repo.write("good/SKILL.md", "---\nname: good\n---\nno description either\n")
    bad = repo.commit("v3")
    rej = _once(url, state, "", SKILLSYNC_NOTIFY_FILE=str(notify_file), SKILLSYNC_ON_INVALID="reject")
    assert rej.returncode == 4, rej.stderr
    assert len(json_receiver.posts) == 2, rej.stdout[-3000:] + rej.stderr[-3000:]
    last = json_receiver.messages()[-1]
    assert last["type"] == "failure" and bad[:12] in last["message"] and "good" in last["message"]
    assert len(smtp_receiver.messages) == 2


def test_failing_streak_and_recovery_and_a_failing_notifier(
    http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path, json_receiver: JsonReceiver,
) -> None:
    repo.add_skill("good", description="fine")
    repo.commit("v1")
    url = http_git_server.url_for(repo)
    state = tmp_path / "state"
    http_git_server.force_status(503)
    try:
        for _ in range(3):
            assert _once(url, state, json_receiver.url).returncode == 1
    finally:
        http_git_server.force_status(None)
    [failing] = json_receiver.messages()
    assert failing["type"] == "failure" and "3 syncs in a row failed" in failing["message"]
    assert "503" in failing["message"]
    ok = _once(url, state, json_receiver.url)
    assert ok.returncode == 0, ok.stderr
    assert [m["type"] for m in json_receiver.messages()] == ["failure", "success"], ok.stdout[-3000:]
    # a notifier that refuses: one log line, the sync itself unaffected
    json_receiver.code = 500
    repo.write("other/SKILL.md", "---\nname: other\n---\n")
    repo.commit("v2")
    proc = _once(url, state, json_receiver.url)
    assert proc.returncode == 0 and json_receiver.refused >= 1
    failed = [json.loads(line) for line in proc.stdout.splitlines() if '"alert_failed"' in line]
    assert len(failed) == 1 and failed[0]["alert"] == "held_back"


def test_daemon_sends_in_the_background_and_counts(
    http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path, json_receiver: JsonReceiver,
    start_daemon: Any,  # noqa: F811 (the fixture imported above)
) -> None:
    repo.add_skill("good", description="fine")
    repo.write("broken/SKILL.md", "---\nname: broken\n---\n")
    repo.commit("v1")
    d = start_daemon(http_git_server.url_for(repo), env={"SKILLSYNC_NOTIFY": json_receiver.url})
    wait_for(lambda: json_receiver.posts, what="the held-back alert")
    d.wait_event(lambda e: e.get("event") == "alert_sent")
    code, metrics = d.get("/metrics")
    assert code == 200 and 'skillsync_alerts_total{result="sent"} 1.0' in metrics
    assert d.stop() == 0
