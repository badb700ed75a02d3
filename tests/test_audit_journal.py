"""The audit journal without Neo4j: events of real syncs, durability, concurrency, rotation, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from skillsyncd.audit.events import JournalEvent, decode, encode
from skillsyncd.audit.history import SinceError, parse_since, render_line, select
from skillsyncd.audit.journal import Journal, JournalError
from skillsyncd.audit.neo4j import CURSOR_FILE, Cursor
from skillsyncd.cli import main
from skillsyncd.config import Config, load_config
from skillsyncd.errors import SourceError, ValidationRejected
from skillsyncd.release.manifest import Manifest
from skillsyncd.sync.assembly import build_syncer
from skillsyncd.sync.decide import rollback_skills

ROOT = Path(__file__).resolve().parent.parent

# Appends COUNT events as WORKER to the journal at PATH, rotating every ROTATE bytes.
APPENDER = """
import sys
from pathlib import Path
from skillsyncd.audit.journal import Journal
from skillsyncd.audit.events import decode
path, worker, count, rotate = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
journal = Journal(path, replica=worker, rotate_bytes=rotate, keep_segments=10_000)
for i in range(count):
    journal.append(decode({"kind": "sync_started", "trigger": "poll", "worker": worker, "n": i}))
"""


def cfg_for(url: str, state: Path, **extra: Any) -> Config:
    env = {"SKILLSYNC_REPLICA_ID": "replica-test"}
    return load_config(flags={"repo": url, "state_dir": str(state), **extra}, env=env)


# Every line carries these keys (null when they do not apply), so readers need no guessing.
COMMON_FIELDS = ("trigger", "sync_id", "commit", "previous_commit", "release", "previous_release",
                 "skills")


def ev(kind: str, **fields: Any) -> JournalEvent:
    """An event as a writer hands it to the journal (fields no class names go to ``extra``)."""
    return decode({"kind": kind, **fields})


def events(cfg: Config) -> list[JournalEvent]:
    return list(Journal(cfg.journal_file).read())


def of_kind(cfg: Config, kind: str) -> list[JournalEvent]:
    return [e for e in events(cfg) if e.kind == kind]


def failing_once_for(commit: str) -> Any:
    """A post-flip check that fails only for releases of ``commit``."""

    def check(cfg: Config, release_id: str) -> list[str]:
        return ["gateway did not load the skills"] if release_id.endswith(commit[:12]) else []

    return check


# --- events of real syncs --------------------------------------------------------------


def test_real_syncs_record_every_decision_with_its_fields(repo: Any, tmp_path: Path) -> None:
    repo.add_skill("alpha", description="First.", version="1.0.0")
    repo.add_skill("beta", description="Second.")
    first = repo.commit("two skills")
    cfg = cfg_for(str(repo.path), tmp_path / "state")
    syncer = build_syncer(cfg)
    one = syncer.sync(trigger="poll")
    assert one.status == "deployed"

    repo.add_skill("alpha", description="First, better.", version="1.1.0")
    repo.remove("beta")
    repo.add_skill("gamma", description="Third.")
    second = repo.commit("change alpha, drop beta, add gamma")
    two = syncer.sync(trigger="webhook")
    assert two.status == "deployed"
    assert syncer.sync(trigger="signal").status == "no_change"

    # A commit whose checks fail is rolled back automatically.
    repo.add_skill("delta", description="Breaks the gateway.")
    third = repo.commit("bad")
    checked = build_syncer(cfg, extra_checks=(failing_once_for(third),))
    assert checked.sync(trigger="poll").status == "rolled_back"

    # A manual rollback to the first release.
    back = syncer.rollback(to=one.release)
    assert back.release == one.release

    everything = events(cfg)
    assert [e.seq for e in everything] == list(range(1, len(everything) + 1))
    assert len({e.id for e in everything}) == len(everything)
    for e in everything:
        assert e.replica == "replica-test"
        assert e.timestamp.endswith("Z") and e.timestamp[:4].isdigit()
        for key in COMMON_FIELDS:
            assert key in encode(e), (key, e.kind)

    deployed = of_kind(cfg, "deployed")
    assert [(e.commit, e.previous_commit, e.trigger) for e in deployed] == [
        (first, None, "poll"), (second, first, "webhook")]
    assert deployed[0].release == one.release and deployed[1].release == two.release
    assert deployed[1].previous_release == one.release
    skills = {s["name"]: s for s in deployed[1].skills}
    assert skills["alpha"]["change"] == "changed" and skills["alpha"]["version"] == "1.1.0"
    assert skills["beta"]["change"] == "removed" and skills["gamma"]["change"] == "added"
    assert all(len(s["content_sha"]) == 40 for s in skills.values())
    assert {s["change"] for s in deployed[0].skills} == {"added"}
    assert deployed[0].skills_count == 2

    no_change = of_kind(cfg, "no_change")
    assert [(e.trigger, e.commit, e.release) for e in no_change] == [
        ("signal", second, two.release)]

    rolled = of_kind(cfg, "rolled_back")
    assert len(rolled) == 1
    assert rolled[0].commit == third and rolled[0].release == two.release
    assert rolled[0].rolled_back_release.endswith(third[:12])
    assert "gateway did not load" in rolled[0].reason
    assert {s["name"]: s["change"] for s in rolled[0].skills}["delta"] == "added"

    manual = of_kind(cfg, "manual_rollback")
    assert len(manual) == 1
    m = manual[0]
    assert (m.trigger, m.commit, m.previous_commit) == ("manual", first, second)
    assert (m.release, m.previous_release) == (one.release, two.release)
    changes = {s["name"]: s["change"] for s in m.skills}
    assert changes == {"alpha": "changed", "beta": "added", "gamma": "removed"}
    assert {s["name"]: s["version"] for s in m.skills}["alpha"] == "1.0.0"

    starts = of_kind(cfg, "sync_started")
    finishes = of_kind(cfg, "sync_finished")
    assert len(starts) == len(finishes) == 4
    assert [f.status for f in finishes] == ["deployed", "deployed", "no_change", "rolled_back"]
    assert [s.sync_id for s in starts] == [f.sync_id for f in finishes]


def test_rejection_and_fetch_failure_are_recorded(repo: Any, tmp_path: Path) -> None:
    repo.add_skill("fine", description="Fine.")
    repo.write("broken/SKILL.md", "---\nname: broken\n---\nno description\n")
    bad = repo.commit("one broken skill")
    cfg = cfg_for(str(repo.path), tmp_path / "state", on_invalid="reject")
    with pytest.raises(ValidationRejected):
        build_syncer(cfg).sync(trigger="poll")
    (rejected,) = of_kind(cfg, "rejected")
    assert rejected.commit == bad and rejected.trigger == "poll"
    assert rejected.findings and all(f["severity"] == "error" for f in rejected.findings)
    assert any("broken" in f["path"] for f in rejected.findings)
    line = render_line(rejected)
    assert "rejected" in line and bad[:12] in line and "finding(s), first: broken/" in line
    # a 0.1.0 journal names the same event validation_failed: readers take it as rejected
    legacy = decode({**encode(rejected), "kind": "validation_failed"})
    assert legacy == rejected and list(select([legacy])) == [legacy]
    assert "finding(s), first: broken/" in render_line(legacy)

    gone = cfg_for(str(tmp_path / "no-such-repo"), cfg.state_dir)
    with pytest.raises(SourceError):
        build_syncer(gone).sync(trigger="poll")
    (failed,) = of_kind(cfg, "fetch_failed")
    assert failed.error and failed.trigger == "poll"
    assert of_kind(cfg, "sync_finished")[-1].status == "failed"


# --- durability --------------------------------------------------------------------------


def test_append_fsyncs_the_line_before_returning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal(tmp_path / "journal.jsonl", replica="r")
    seen: list[bytes] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == str(journal.path):
            seen.append(journal.path.read_bytes())
        real_fsync(fd)

    monkeypatch.setattr("skillsyncd.audit.journal.os.fsync", spy)
    event = journal.append(ev("deployed", commit="c1"))
    assert seen, "append returned without fsyncing the journal"
    assert seen[-1].decode().splitlines()[-1] == json.dumps(encode(event), separators=(",", ":"))


def test_unwritable_journal_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "journal.jsonl").mkdir()  # a directory where the file should be
    with pytest.raises(JournalError, match="cannot open audit journal"):
        Journal(tmp_path / "journal.jsonl").append(ev("sync_started"))


def test_torn_tail_is_ignored_then_cut(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl", replica="r")
    journal.append(ev("sync_started"))
    journal.append(ev("no_change"))
    with journal.path.open("ab") as fh:
        fh.write(b'{"id":"half","seq":3,"kind":"depl')  # a crash mid-write
    assert [e.seq for e in journal.read()] == [1, 2]
    assert journal.last_seq() == 2
    third = journal.append(ev("deployed"))
    assert third.seq == 3
    lines = journal.path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 4
    assert b"half" not in journal.path.read_bytes()
    assert [e.kind for e in journal.read()] == ["sync_started", "no_change", "deployed"]


def test_concurrent_processes_get_unique_gapless_seqs(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    workers, count = 6, 40
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, str(path), f"w{i}", str(count), "600"],
                              env=env, stderr=subprocess.PIPE)
             for i in range(workers)]
    reader = Journal(path)
    reads = 0
    while any(p.poll() is None for p in procs):
        seqs = [e.seq for e in reader.read()]
        assert seqs == list(range(1, len(seqs) + 1)), "a reader saw a gap during rotation"
        reads += 1
    for p in procs:
        assert p.wait() == 0, p.stderr.read().decode() if p.stderr else ""
    got = list(reader.read())
    assert [e.seq for e in got] == list(range(1, workers * count + 1))
    assert len({e.id for e in got}) == workers * count
    for i in range(workers):
        mine = [e.extra["n"] for e in got if e.extra["worker"] == f"w{i}"]
        assert mine == list(range(count))
    assert len(reader.segments()) > 3, "the test should have rotated several times"
    assert reads > 0


# --- rotation and pruning ------------------------------------------------------------------


def test_rotation_under_a_stalled_sink_loses_nothing(tmp_path: Path) -> None:
    cursor = Cursor(tmp_path / CURSOR_FILE)
    cursor.set(0)  # the sink never got anything through
    journal = Journal(tmp_path / "journal.jsonl", replica="r", rotate_bytes=1500,
                      keep_segments=2, shipped=cursor.get)
    for i in range(120):
        journal.append(ev("sync_started", n=i))
    assert len(journal.segments()) > 5
    assert [e.seq for e in journal.read()] == list(range(1, 121))
    assert journal.last_seq() == 120

    cursor.set(70)  # the sink catches up to 70: segments wholly at or below it may go
    for i in range(120, 140):
        journal.append(ev("sync_started", n=i))
    after = [e.seq for e in journal.read(after=70)]
    assert after == list(range(71, 141))
    firsts = [int(p.name[8:20]) for p in journal.segments()]
    kept = [e.seq for e in journal.read()]
    assert kept[0] <= 71, "a segment holding unshipped events was pruned"
    assert kept == list(range(kept[0], 141))
    assert firsts[0] > 1, "nothing was pruned although the sink shipped most events"


def test_without_a_sink_the_newest_segments_are_kept(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl", replica="r", rotate_bytes=1000, keep_segments=3)
    for i in range(100):
        journal.append(ev("no_change", n=i))
    assert len(journal.segments()) == 3
    seqs = [e.seq for e in journal.read()]
    assert seqs[-1] == 100 and seqs == list(range(seqs[0], 101))
    fresh = Journal(journal.path, replica="r", rotate_bytes=1000, keep_segments=3)
    assert fresh.append(ev("no_change")).seq == 101


def test_seq_continues_after_rotation_with_an_empty_active_file(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl", replica="r", rotate_bytes=200)
    journal.append(ev("deployed", release="R1"))
    journal.append(ev("deployed", release="R2"))
    assert not journal.path.exists() or journal.path.stat().st_size < 200
    assert journal.last_seq() == 2
    assert journal.append(ev("no_change")).seq == 3
    assert journal.journalled("R1") and not journal.journalled("R9")
    assert [e.seq for e in journal.read(after=1)] == [2, 3]


# --- reading it back -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-01", "2026-11-01T00:00:00.000Z"),
    ("2026-11-01T08:30", "2026-11-01T08:30:00.000Z"),
    ("2026-11-01T08:30:00+02:00", "2026-11-01T06:30:00.000Z"),
    ("2026-11-01T08:30:00Z", "2026-11-01T08:30:00.000Z"),
    ("today", "2026-12-07T00:00:00.000Z"),
    ("Yesterday", "2026-12-06T00:00:00.000Z"),
    ("90s", "2026-12-07T11:58:30.000Z"),
    ("2h", "2026-12-07T10:00:00.000Z"),
    ("3d", "2026-12-04T12:00:00.000Z"),
    ("1w", "2026-11-30T12:00:00.000Z"),
])
def test_since_reads_dates_times_durations_and_words(text: str, expected: str) -> None:
    assert parse_since(text, datetime(2026, 12, 7, 12, 0, tzinfo=UTC)) == expected


@pytest.mark.parametrize("text", ["last tuesday", "2 hours", "-3d", "2026-13-01", ""])
def test_since_in_another_form_is_refused_naming_the_forms(text: str) -> None:
    with pytest.raises(SinceError, match="duration back from now"):
        parse_since(text, datetime(2026, 12, 7, 12, 0, tzinfo=UTC))


def test_select_filters_by_kind_time_and_skill() -> None:
    evs = [
        ev("sync_started", timestamp="2026-11-01T00:00:00.000Z"),
        ev("deployed", timestamp="2026-11-01T00:00:01.000Z", skills=[{"name": "a", "change": "added"}]),
        ev("deployed", timestamp="2026-11-05T00:00:00.000Z", skills=[{"name": "b", "change": "added"}]),
    ]
    assert [e.timestamp[:10] for e in select(evs)] == ["2026-11-01", "2026-11-05"]
    assert len(list(select(evs, everything=True))) == 3
    assert [e.skills[0]["name"] for e in select(evs, since="2026-11-02")] == ["b"]
    assert [e.skills[0]["name"] for e in select(evs, skill="a")] == ["a"]


def test_rollback_skills_diff_two_manifests() -> None:
    live = {"skills": [{"name": "a", "content_sha": "1", "live": True},
                       {"name": "b", "content_sha": "2", "live": True},
                       {"name": "x", "content_sha": "9", "live": False}]}
    target = {"skills": [{"name": "a", "content_sha": "1", "live": True, "version": "3"},
                         {"name": "b", "content_sha": "0", "live": True},
                         {"name": "c", "content_sha": "5", "live": True}]}
    live, target = Manifest.from_json({"release": "l", "commit": "1", **live}), \
        Manifest.from_json({"release": "t", "commit": "2", **target})
    out = {s["name"]: (s["change"], s["content_sha"]) for s in rollback_skills(live, target)}
    assert out == {"a": ("unchanged", "1"), "b": ("changed", "0"), "c": ("added", "5")}
    back = {s["name"]: s["change"] for s in rollback_skills(target, live)}
    assert back == {"a": "unchanged", "b": "changed", "c": "removed"}


def test_audit_cli_history(repo: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo.add_skill("alpha", description="First.")
    repo.commit("one")
    state = tmp_path / "state"
    cfg = cfg_for(str(repo.path), state)
    build_syncer(cfg).sync(trigger="poll")
    repo.add_skill("beta", description="Second.")
    second = repo.commit("two")
    build_syncer(cfg).sync(trigger="webhook")
    build_syncer(cfg).sync(trigger="poll")  # no change
    capsys.readouterr()

    base = ["audit", "--state-dir", str(state)]
    assert main(base) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("deployed" in line for line in lines)
    assert second[:12] in lines[1] and "a:beta" in lines[1] and "webhook" in lines[1]

    assert main([*base, "--json"]) == 0
    parsed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [e["kind"] for e in parsed] == ["deployed", "deployed"]

    assert main([*base, "--json", "--all"]) == 0
    kinds = [json.loads(x)["kind"] for x in capsys.readouterr().out.splitlines()]
    assert kinds.count("sync_started") == 3 and "no_change" in kinds

    assert main([*base, "--json", "--skill", "beta"]) == 0
    only = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [e["commit"] for e in only] == [second]

    assert main([*base, "--since", "2999-01-01"]) == 0
    assert "no matching events" in capsys.readouterr().err
    # words and durations are times too (compared as text, "yesterday" used to match nothing)
    for since in ("yesterday", "today", "2h", "30m"):
        assert main([*base, "--since", since]) == 0
        assert len(capsys.readouterr().out.splitlines()) == 2, since
    assert main([*base, "--since", "last tuesday"]) == 2
    err = capsys.readouterr().err
    assert "last tuesday" in err and "2h" in err and "yesterday" in err
