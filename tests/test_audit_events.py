"""Typed journal events: journals written by the real 0.1.0 and 0.2.0 code read as today's values.

The fixtures under tests/fixtures/journals/ were written by running those versions
(tests/fixtures/journals/make-journal.sh): a first deploy, a no-change poll, a
change, a held-back skill, a rejected commit, a manual rollback, a fetch failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import pytest

from skillsyncd.audit import events
from skillsyncd.audit.events import decode, encode
from skillsyncd.audit.history import render_line, select
from skillsyncd.audit.journal import Journal
from skillsyncd.audit.neo4j import statements

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "journals"
VERSIONS = ["0.1.0", "0.2.0"]
KINDS = ["sync_started", "deployed", "sync_finished", "sync_started", "no_change", "sync_finished",
         "sync_started", "deployed", "sync_finished", "sync_started", "deployed", "sync_finished",
         "sync_started", "rejected", "sync_finished", "sync_started", "deployed", "sync_finished",
         "manual_rollback", "sync_started", "fetch_failed", "sync_finished", "sync_started",
         "sync_finished"]


def old_journal(version: str, tmp_path: Path) -> Journal:
    path = tmp_path / "journal.jsonl"
    shutil.copyfile(FIXTURES / f"journal-{version}.jsonl", path)
    return Journal(path, replica="today")


@pytest.mark.parametrize("version", VERSIONS)
def test_an_old_journal_reads_as_typed_events_and_writes_back_byte_for_byte(
    version: str, tmp_path: Path
) -> None:
    journal = old_journal(version, tmp_path)
    raw = [json.loads(line) for line in journal.path.read_text().splitlines()]
    got = list(journal.read())
    assert [e.kind for e in got] == KINDS
    assert not any(isinstance(e, events.UnknownEvent) for e in got)
    assert [encode(e) for e in got] == raw  # nothing read is dropped or renamed


@pytest.mark.parametrize("version", VERSIONS)
def test_every_consumer_reads_an_old_journal(version: str, tmp_path: Path) -> None:
    journal = old_journal(version, tmp_path)
    got = list(journal.read())
    deployed = [e for e in got if isinstance(e, events.Deployed)]
    assert len(deployed) == 4 and deployed[0].skills_count == 2
    assert {s["name"] for s in deployed[0].skills} == {"alpha", "beta"}
    assert deployed[2].held_back and "broken" in deployed[2].held_back
    (rejected,) = [e for e in got if isinstance(e, events.Rejected)]
    assert rejected.policy == "reject" and rejected.findings
    (back,) = [e for e in got if isinstance(e, events.ManualRollback)]
    assert back.release == deployed[2].release and back.previous_release == deployed[3].release
    (failed,) = [e for e in got if isinstance(e, events.FetchFailed)]
    assert failed.error and "no repository there" in failed.error
    finished = [e for e in got if isinstance(e, events.SyncFinished)]
    assert [f.status for f in finished] == ["deployed", "no_change", "deployed", "deployed",
                                            "rejected", "deployed", "failed", "skipped_bad"]

    assert [e.kind for e in select(got)] == ["deployed", "deployed", "deployed", "rejected",
                                            "deployed", "manual_rollback", "fetch_failed"]
    assert "finding(s), first: broken/SKILL.md" in render_line(rejected)
    assert journal.journalled(str(deployed[0].release))
    cypher = statements(deployed[1])
    assert any("SkillDeployment" in q and p.get("status") == "deployed" for q, p in cypher)

    nxt = journal.append(events.NoChange(trigger="poll", commit=back.commit))  # today's code appends
    assert nxt.seq == got[-1].seq + 1 and nxt.replica == "today"
    assert list(journal.read(after=got[-1].seq)) == [nxt]


def test_an_unknown_kind_is_kept_whole() -> None:
    raw = {"id": "x", "seq": 7, "kind": "from_the_future", "timestamp": "2027-01-01T00:00:00.000Z",
           "replica": "r", "trigger": None, "sync_id": None, "commit": "c" * 40,
           "previous_commit": None, "release": None, "previous_release": None, "skills": None,
           "wobble": {"depth": 3}}
    event = decode(raw)
    assert isinstance(event, events.UnknownEvent) and event.kind == "from_the_future"
    assert event.extra == {"wobble": {"depth": 3}} and event.seq == 7
    assert encode(event) == raw
    assert list(select([event])) == [] and list(select([event], everything=True)) == [event]


def test_missing_and_null_fields_take_their_defaults() -> None:
    event = decode({"seq": 3, "kind": "deployed"})
    assert isinstance(event, events.Deployed)
    assert (event.skills, event.findings, event.held_back, event.skills_count) == ((), (), {}, None)
    assert event.recovered is False and event.history_rewritten is False
    assert decode({"seq": None, "kind": "validation_failed", "findings": None}) == events.Rejected()


def test_events_are_frozen() -> None:
    event = events.Deployed(release="R1")
    with pytest.raises(AttributeError):
        event.release = "R2"  # type: ignore[misc]


V010 = "01bc92a8a8d06151a4880b397ab532ed3b4d6c19"  # the last commit of the 0.1.0 layout
V020 = "82288f4"  # "Version 0.2.0"


def _old_package(commit: str, dest: Path) -> Path:
    try:
        tar = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "skillsyncd"],
                             capture_output=True, check=True, timeout=60).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        pytest.skip(f"this clone has no commit {commit[:12]} (a shallow clone): cannot run it")
    with tarfile.open(fileobj=BytesIO(tar)) as archive:
        archive.extractall(dest, filter="data")
    return dest


@pytest.mark.parametrize("commit", [V010, V020], ids=["0.1.0", "0.2.0"])
def test_old_readers_read_a_journal_written_today(commit: str, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state" / "journal.jsonl", replica="today")
    written = [journal.append(e) for e in (
        events.SyncStarted(trigger="poll", sync_id="s1"),
        events.Deployed(trigger="poll", sync_id="s1", commit="c" * 40, release="R1",
                        skills=({"name": "alpha", "version": "1", "content_sha": "d" * 40,
                                 "change": "added"},), skills_count=1, recovered=True),
        events.Rejected(trigger="poll", sync_id="s2", commit="e" * 40, policy="reject",
                        findings=({"rule": "field.required", "severity": "error",
                                   "path": "bad/SKILL.md", "line": 2, "message": "no description"},)),
        events.FetchFailed(trigger="poll", sync_id="s3", error="remote gone"),
        events.SyncFinished(trigger="poll", sync_id="s3", status="failed", duration=0.1),
    )]
    old = _old_package(commit, tmp_path / "old")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKILLSYNC_", "NEO4J_"))}
    done = subprocess.run([sys.executable, "-m", "skillsyncd", "audit", "--json", "--all",
                           "--state-dir", str(tmp_path / "state")],
                          env={**env, "PYTHONPATH": str(old)}, capture_output=True, text=True,
                          timeout=120, cwd=old)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = [json.loads(line) for line in done.stdout.splitlines()]
    assert seen == [encode(e) for e in written]
    text = subprocess.run([sys.executable, "-m", "skillsyncd", "audit", "--state-dir",
                           str(tmp_path / "state")], env={**env, "PYTHONPATH": str(old)},
                          capture_output=True, text=True, timeout=120, cwd=old).stdout
    assert "a:alpha" in text and "finding(s), first: bad/SKILL.md" in text and "remote gone" in text


def test_a_line_without_an_integer_seq_is_skipped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"seq": 1, "kind": "no_change"}\n{"seq": "x", "kind": "deployed"}\n'
                    '{"kind": "deployed"}\n{"seq": 2, "kind": "deployed", "skills": [{"name": "a"}]}\n')
    got = list(Journal(path).read())
    assert [(e.seq, e.kind) for e in got] == [(1, "no_change"), (2, "deployed")]
    with pytest.raises(TypeError):
        got[1].skills[0]["name"] = "b"  # type: ignore[index]  # read-only like the event
