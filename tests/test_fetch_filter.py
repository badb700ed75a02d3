"""The fetch filter: blobs larger than max_file_bytes stay on the server, and size.file refuses them.

A server that offers the protocol v2 ``filter`` feature (GitHub; git with
uploadpack.allowFilter, as the test servers are set up) is asked for
``blob:limit=max_file_bytes+1``. The mirror then lacks those blobs; the snapshot
marks them OmittedBlob and the entry rules refuse them without a read. Servers
without filters send everything, and the measured size refuses the file as before.
The mirror is fetched afresh when the limit grows, since an omitted blob never
arrives by an incremental fetch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dulwich.objects import Blob, ObjectID, Tree
from dulwich.repo import MemoryRepo, Repo
from gitserver import GitDaemonServer, HttpGitServer, RepoBuilder

from skillsyncd.config import Config, load_config
from skillsyncd.errors import SourceError
from skillsyncd.model import Entry, Severity, Skill
from skillsyncd.release.releases import Releases
from skillsyncd.source.blob_limit import BLOB_LIMIT_FILE, blob_limit, limit_grew, mirror_blob_limit
from skillsyncd.source.remote import Source
from skillsyncd.source.snapshot import find_skills
from skillsyncd.sync.assembly import build_syncer
from skillsyncd.validation.gate import check_entries
from skillsyncd.validation.paths import OmittedBlob

LIMIT = 1000  # max_file_bytes in the network tests
BIG = b"x" * 5000  # left out by the filter
EDGE = b"e" * LIMIT  # exactly max_file_bytes: kept


# --- pure parts ----------------------------------------------------------------------------


def test_the_filter_limit_follows_max_file_bytes_while_size_file_is_an_error() -> None:
    assert blob_limit(Config(max_file_bytes=100)) == 101
    assert blob_limit(Config(max_file_bytes=100, severity={"size.*": "error"})) == 101
    # size.file that does not block: an oversized file may go live, so it must be fetched
    assert blob_limit(Config(severity={"size.file": "warning"})) is None
    assert blob_limit(Config(severity={"size.*": "off"})) is None
    assert blob_limit(Config(strict=True, severity={"size.file": "warning"})) is None


@pytest.mark.parametrize(("recorded", "wanted", "grew"), [
    (None, 101, False),  # a mirror fetched without a filter lacks no blob
    (None, None, False),
    (101, 101, False),
    (201, 101, False),  # lowered: what is missing is larger than both
    (101, 201, True),  # raised: a blob of 150 bytes may be missing and is now allowed
    (101, None, True),  # filter dropped: every blob is needed
])
def test_the_mirror_is_refetched_only_when_the_limit_grows(
    recorded: int | None, wanted: int | None, grew: bool
) -> None:
    assert limit_grew(recorded, wanted) is grew


def test_an_unreadable_record_counts_as_any_blob_missing(tmp_path: Path) -> None:
    assert mirror_blob_limit(tmp_path) is None
    (tmp_path / BLOB_LIMIT_FILE).write_text("garbage\n")
    assert mirror_blob_limit(tmp_path) == 0
    assert limit_grew(mirror_blob_limit(tmp_path), 101)


def test_an_omitted_blob_is_refused_by_size_file_from_the_tree_alone() -> None:
    cfg = Config(max_file_bytes=LIMIT, max_skill_bytes=10 * LIMIT)
    skill = Skill(name="evil", tree_sha="0" * 40, entries=(
        Entry(path="SKILL.md", mode=0o100644, sha="1" * 40, size=50),
        OmittedBlob(path="big.bin", mode=0o100644, sha="2" * 40),
    ))
    found = check_entries(skill, cfg, prefix="skills/evil")
    assert [(f.rule, f.severity, f.path) for f in found] == [
        ("size.file", Severity.ERROR, "skills/evil/big.bin")]
    assert "max_file_bytes=1,000" in found[0].message and "left this blob out" in found[0].message
    # and it counts as at least max_file_bytes + 1 towards the skill's total
    tight = Config(max_file_bytes=LIMIT, max_skill_bytes=LIMIT)
    skill_rule = [f for f in check_entries(skill, tight) if f.rule == "size.skill"]
    assert len(skill_rule) == 1 and skill_rule[0].message.startswith("at least 1,051 bytes")


def test_the_full_gate_never_reads_an_omitted_blob() -> None:
    from skillsyncd.validation.gate import validate_skill

    cfg = Config(max_file_bytes=LIMIT, max_skill_bytes=10 * LIMIT)
    md = b"---\nname: evil\ndescription: d\n---\n"
    skill = Skill(name="evil", tree_sha="0" * 40, entries=(
        Entry(path="SKILL.md", mode=0o100644, sha="1" * 40, size=len(md)),
        OmittedBlob(path="big.bin", mode=0o100644, sha="2" * 40),
    ))
    read: list[str] = []

    def read_blob(sha: str) -> bytes:
        read.append(sha)
        assert sha == "1" * 40, "the omitted blob was read"
        return md

    found = validate_skill(skill, read_blob, cfg)
    assert read == ["1" * 40]
    assert any(f.rule == "size.file" for f in found)


def _store_missing_one_blob() -> tuple[MemoryRepo, str, str]:
    """A commit tree ``evil/{SKILL.md, big.bin}`` whose big.bin blob is not in the store."""
    repo = MemoryRepo()
    md = Blob.from_string(b"---\nname: evil\ndescription: d\n---\n")
    big = Blob.from_string(BIG)
    repo.object_store.add_object(md)
    skill = Tree()
    skill.add(b"SKILL.md", 0o100644, md.id)
    skill.add(b"big.bin", 0o100644, big.id)  # big itself is never added
    root = Tree()
    root.add(b"evil", 0o040000, skill.id)
    repo.object_store.add_object(skill)
    repo.object_store.add_object(root)
    return repo, root.id.decode(), big.id.decode()


def test_the_snapshot_marks_a_blob_the_store_lacks_as_omitted() -> None:
    repo, tree, big = _store_missing_one_blob()
    entries = {e.path: e for e in find_skills(repo.object_store, tree)["evil"].entries}
    assert isinstance(entries["big.bin"], OmittedBlob) and entries["big.bin"].sha == big
    # present but of unknown size (a memory store has no pack headers): read later, not omitted
    assert type(entries["SKILL.md"]) is Entry and entries["SKILL.md"].size is None
    # once the blob arrives (a refetch with a larger limit), the same tree id reads as present:
    # a folder holding an omitted blob is never reused from the snapshot's cache
    repo.object_store.add_object(Blob.from_string(BIG))
    entries = {e.path: e for e in find_skills(repo.object_store, tree)["evil"].entries}
    assert type(entries["big.bin"]) is Entry


def test_reading_an_omitted_blob_fails_loudly(tmp_path: Path) -> None:
    repo, _, big = _store_missing_one_blob()
    source = Source(Config(repo="https://example.invalid/r.git", state_dir=tmp_path))
    with pytest.raises(SourceError, match="not in the mirror"):
        source.blob_reader(repo)(big)  # type: ignore[arg-type]


# --- over real servers ---------------------------------------------------------------------


def _origin(repo: RepoBuilder) -> str:
    repo.add_skill("good", description="A good skill.")
    repo.add_skill("evil", description="Carries a big file.")
    repo.write("evil/big.bin", BIG)
    repo.add_skill("edge", description="Carries a file of exactly max_file_bytes.")
    repo.write("edge/edge.bin", EDGE)
    return repo.commit("big, edge and good")


def _sync(url: str, state: Path, **flags: Any) -> dict[str, Any]:
    cfg = load_config(flags={"repo": url, "state_dir": str(state), "max_file_bytes": LIMIT,
                             **flags}, env={})
    outcome = build_syncer(cfg).sync()
    assert outcome.status == "deployed" and outcome.release, outcome
    manifest = Releases(state).manifest(outcome.release).to_dict()
    return {s["name"]: s for s in manifest["skills"]}


def _in_mirror(state: Path, sha: str) -> bool:
    mirror = Repo(str(state / "mirror.git"))
    try:
        return ObjectID(sha.encode()) in mirror.object_store
    finally:
        mirror.close()


def _refused_unread(record: dict[str, Any], still_live: bool = False) -> str:
    """The size.file message; ``still_live``: the version before the change stays live."""
    assert record["status"] == "held_back" and record["live"] is still_live, record
    hits = [f for f in record["findings"] if f["rule"] == "size.file"]
    assert len(hits) == 1 and hits[0]["path"] == "evil/big.bin", record["findings"]
    return str(hits[0]["message"])


def _url(transport: str, repo: RepoBuilder, http: HttpGitServer, daemon: GitDaemonServer) -> str:
    return {"http": http.url_for, "git": daemon.url_for}[transport](repo) \
        if transport in ("http", "git") else \
        (f"file://{repo.path}" if transport == "file" else str(repo.path))


@pytest.mark.parametrize("transport", ["http", "git", "file", "local"])
def test_a_big_blob_is_left_on_the_server_and_its_skill_held_back(
    transport: str, http_git_server: HttpGitServer, git_daemon_server: GitDaemonServer,
    repo: RepoBuilder, tmp_path: Path
) -> None:
    """A local source applies the same limit as a server with filters (it is read directly)."""
    _origin(repo)
    state = tmp_path / "s"
    records = _sync(_url(transport, repo, http_git_server, git_daemon_server), state)
    assert "left this blob out" in _refused_unread(records["evil"])
    assert records["good"]["live"] and records["edge"]["live"]
    assert not _in_mirror(state, repo.rev_parse("HEAD:evil/big.bin"))
    assert _in_mirror(state, repo.rev_parse("HEAD:edge/edge.bin"))
    assert mirror_blob_limit(state / "mirror.git") == LIMIT + 1
    current = Releases(state).current()
    assert current is not None
    assert (Releases(state).dir(current) / "edge" / "edge.bin").read_bytes() == EDGE


def test_a_server_without_filters_sends_everything_and_the_size_still_refuses(
    http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path
) -> None:
    _origin(repo)
    http_git_server.allow_filter = False
    state = tmp_path / "s"
    records = _sync(http_git_server.url_for(repo), state)
    assert "5,000 bytes, more than max_file_bytes=1,000" in _refused_unread(records["evil"])
    assert _in_mirror(state, repo.rev_parse("HEAD:evil/big.bin"))  # as before the filter
    assert records["good"]["live"] and records["edge"]["live"]


def test_raising_max_file_bytes_refetches_the_mirror_and_the_skill_goes_live(
    http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path
) -> None:
    _origin(repo)
    url = http_git_server.url_for(repo)
    state = tmp_path / "s"
    _refused_unread(_sync(url, state)["evil"])
    repo.add_skill("good", description="Changed, so the next sync fetches.")
    repo.commit("touch good")
    records = _sync(url, state, max_file_bytes=10 * LIMIT)
    assert records["evil"]["live"] is True, records["evil"]
    assert _in_mirror(state, repo.rev_parse("HEAD:evil/big.bin"))
    assert mirror_blob_limit(state / "mirror.git") == 10 * LIMIT + 1
    current = Releases(state).current()
    assert current is not None
    assert (Releases(state).dir(current) / "evil" / "big.bin").read_bytes() == BIG


def test_turning_size_file_into_a_warning_refetches_and_stages_the_big_file(
    http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path
) -> None:
    head = _origin(repo)
    url = http_git_server.url_for(repo)
    state = tmp_path / "s"
    _refused_unread(_sync(url, state)["evil"])
    cfg = load_config(flags={"repo": url, "state_dir": str(state), "max_file_bytes": LIMIT,
                             "severity": {"size.file": "warning"}}, env={})
    outcome = build_syncer(cfg).sync(force=True)  # same commit: only the policy changed
    assert outcome.status == "deployed" and outcome.commit == head and outcome.release, outcome
    records = {s["name"]: s for s in Releases(state).manifest(outcome.release).to_dict()["skills"]}
    assert records["evil"]["live"] is True, records["evil"]
    assert not (state / "mirror.git" / BLOB_LIMIT_FILE).exists()  # no filter, nothing missing
    assert _in_mirror(state, repo.rev_parse("HEAD:evil/big.bin"))


def test_lowering_max_file_bytes_keeps_the_mirror(
    http_git_server: HttpGitServer, repo: RepoBuilder, tmp_path: Path
) -> None:
    _origin(repo)
    url = http_git_server.url_for(repo)
    state = tmp_path / "s"
    assert _sync(url, state, max_file_bytes=10 * LIMIT)["evil"]["live"] is True
    repo.add_skill("evil", description="Changed, so evil is validated again.")
    repo.commit("touch evil")
    records = _sync(url, state)  # back to LIMIT: the blob already fetched stays, and is measured
    assert "5,000 bytes" in _refused_unread(records["evil"], still_live=True)
    assert mirror_blob_limit(state / "mirror.git") == LIMIT + 1
    # not fetched afresh: a fresh fetch under the lower limit would have left the blob out
    assert _in_mirror(state, repo.rev_parse("HEAD:evil/big.bin"))


@pytest.mark.parametrize("transport", ["http", "git"])
def test_a_big_file_shrunk_under_the_limit_arrives_by_an_incremental_fetch(
    transport: str, http_git_server: HttpGitServer, git_daemon_server: GitDaemonServer,
    repo: RepoBuilder, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """git sends the new, small version as a thin-pack delta against the big one the mirror
    lacks (dulwich: UnresolvedDeltas); the fetch is asked again for a self-contained pack."""
    text = b"".join(b"line %05d of a file that is mostly the same\n" % i for i in range(200))
    repo.add_skill("good", description="A good skill.")
    repo.add_skill("evil", description="Carries a big file.")
    repo.write("evil/big.txt", text)  # ~9 KB
    repo.commit("big")
    server = http_git_server if transport == "http" else git_daemon_server
    url = server.url_for(repo)
    state = tmp_path / "s"
    _sync(url, state, max_file_bytes=len(text) // 2)
    assert not _in_mirror(state, repo.rev_parse("HEAD:evil/big.txt"))
    repo.write("evil/big.txt", text[: len(text) // 3])  # now under the limit
    repo.commit("shrunk")
    capfd.readouterr()
    records = _sync(url, state, max_file_bytes=len(text) // 2)
    assert "fetch_again_without_thin_pack" in capfd.readouterr().out
    assert not list((state / "mirror.git" / "objects").glob("tmp_pack_*"))  # refused pack gone
    assert records["evil"]["live"] is True, records["evil"]
    current = Releases(state).current()
    assert current is not None
    assert (Releases(state).dir(current) / "evil" / "big.txt").read_bytes() == text[: len(text) // 3]
