"""Staging, flipping, recovery and verification of releases on a real disk."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
from dulwich.objects import Blob, Tree

from skillsyncd.errors import ReleaseError
from skillsyncd.manifest import Manifest, SkillRecord
from skillsyncd.model import MODE_EXEC, MODE_FILE, Entry, Skill
from skillsyncd.release import (
    Releases,
    commit_of,
    new_release_id,
    stage_release,
    tree_sha_of,
    verify_release,
)


def make_skill(name: str, files: dict[str, bytes], blobs: dict[str, bytes],
               exec_paths: frozenset[str] = frozenset()) -> Skill:
    """A Skill whose tree id is computed exactly as git would."""
    entries = []
    trees: dict[str, Tree] = {"": Tree()}
    for path, data in sorted(files.items()):
        blob = Blob.from_string(data)
        blobs[blob.id.decode()] = data
        mode = MODE_EXEC if path in exec_paths else MODE_FILE
        entries.append(Entry(path=path, mode=mode, sha=blob.id.decode(), size=len(data)))
        parts = path.split("/")
        for i in range(1, len(parts)):
            trees.setdefault("/".join(parts[:i]), Tree())
        parent = "/".join(parts[:-1])
        trees[parent].add(parts[-1].encode(), mode, blob.id)
    for folder in sorted((k for k in trees if k), key=lambda k: -k.count("/")):
        parent, _, leaf = folder.rpartition("/")
        trees[parent].add(leaf.encode(), 0o040000, trees[folder].id)
    return Skill(name=name, tree_sha=trees[""].id.decode(), entries=tuple(entries))


def manifest_for(release_id: str, skills: list[Skill]) -> Manifest:
    return Manifest(release=release_id, commit="c" * 40,
                    skills=tuple(SkillRecord(name=s.name, content_sha=s.tree_sha) for s in skills))


@pytest.fixture
def releases(tmp_path: Path) -> Releases:
    return Releases(tmp_path / "state")


def test_release_id_sorts_by_time_and_names_commit() -> None:
    a = new_release_id("1a2b3c4d5e6f7a8b", now=1_700_000_000)
    b = new_release_id("ffffffffffff0000", now=1_700_000_001)
    assert a < b
    assert a == "20231114T221320Z-1a2b3c4d5e6f"
    assert commit_of(a) == "1a2b3c4d5e6f"


def test_stage_writes_readonly_tree_matching_git(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    skill = make_skill("pdf", {"SKILL.md": b"---\nname: pdf\n---\n", "scripts/run.sh": b"#!/bin/sh\n"},
                       blobs, exec_paths=frozenset({"scripts/run.sh"}))
    rid = "20260101T000000Z-cccccccccccc"
    stats = stage_release(releases, rid, [skill], {}, blobs.__getitem__, manifest_for(rid, [skill]))
    assert stats.files_written == 2
    root = releases.dir(rid)
    assert (root / "pdf" / "SKILL.md").read_bytes() == b"---\nname: pdf\n---\n"
    assert os.stat(root / "pdf" / "SKILL.md").st_mode & 0o777 == 0o444
    assert os.stat(root / "pdf" / "scripts" / "run.sh").st_mode & 0o777 == 0o555
    assert os.stat(root).st_mode & 0o222 == 0
    assert tree_sha_of(root / "pdf") == skill.tree_sha
    assert releases.complete() == [rid]
    assert verify_release(releases, rid) == []


def test_unchanged_skills_are_hard_linked(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    a = make_skill("a", {"SKILL.md": b"a"}, blobs)
    b1 = make_skill("b", {"SKILL.md": b"b1"}, blobs)
    b2 = make_skill("b", {"SKILL.md": b"b2"}, blobs)
    r1, r2 = "20260101T000000Z-111111111111", "20260101T000001Z-222222222222"
    stage_release(releases, r1, [a, b1], {}, blobs.__getitem__, manifest_for(r1, [a, b1]))
    stats = stage_release(releases, r2, [b2], {"a": r1}, blobs.__getitem__,
                          manifest_for(r2, [a, b2]))
    assert stats.files_written == 1 and stats.files_linked == 1
    assert os.stat(releases.dir(r1) / "a/SKILL.md").st_ino == os.stat(
        releases.dir(r2) / "a/SKILL.md").st_ino
    assert verify_release(releases, r2) == []


def test_copy_names_give_each_release_its_own_skill_md(releases: Releases) -> None:
    """Link mode: OpenClaw skips a SKILL.md with more than one link; other files stay shared."""
    blobs: dict[str, bytes] = {}
    a = make_skill("a", {"SKILL.md": b"a", "ref/SKILL.md": b"nested", "run.sh": b"echo"}, blobs)
    r1, r2 = "20260101T000000Z-111111111111", "20260101T000001Z-222222222222"
    stage_release(releases, r1, [a], {}, blobs.__getitem__, manifest_for(r1, [a]))
    stage_release(releases, r2, [], {"a": r1}, blobs.__getitem__, manifest_for(r2, [a]),
                  copy_names=frozenset({"SKILL.md"}))
    new = releases.dir(r2) / "a"
    assert os.stat(new / "SKILL.md").st_nlink == 1
    assert (new / "SKILL.md").read_bytes() == b"a"
    assert os.stat(new / "run.sh").st_nlink == 2  # only the top-level SKILL.md is copied
    assert os.stat(new / "ref/SKILL.md").st_nlink == 2
    assert verify_release(releases, r2) == []


def test_flip_is_relative_and_refuses_incomplete(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    s = make_skill("a", {"SKILL.md": b"a"}, blobs)
    rid = "20260101T000000Z-111111111111"
    stage_release(releases, rid, [s], {}, blobs.__getitem__, manifest_for(rid, [s]))
    releases.flip(rid)
    assert os.readlink(releases.current_link) == f"releases/{rid}"
    assert releases.current() == rid
    (releases.root / "20260101T000009Z-999999999999").mkdir()
    with pytest.raises(ReleaseError, match="incomplete"):
        releases.flip("20260101T000009Z-999999999999")
    assert releases.current() == rid


def test_recover_removes_incomplete_and_temp_leftovers(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    s = make_skill("a", {"SKILL.md": b"a"}, blobs)
    good = "20260101T000000Z-111111111111"
    stage_release(releases, good, [s], {}, blobs.__getitem__, manifest_for(good, [s]))
    half = releases.root / "20260101T000005Z-555555555555" / "a"
    half.mkdir(parents=True)
    (half / "SKILL.md").write_text("partial")
    os.chmod(half, 0o555)
    (releases.root / ".20260101T000006Z-666666666666.json.abc.tmp").write_text("{")
    (releases.root / "20260101T000007Z-777777777777.json").write_text("{}")  # orphan manifest
    os.symlink("releases/x", releases.state_dir / ".current.tmp-123")
    removed = releases.recover()
    assert len(removed) == 4
    assert sorted(p.name for p in releases.root.iterdir()) == [good, f"{good}.json"]
    assert not (releases.state_dir / ".current.tmp-123").exists()


def test_verify_detects_tampering(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    s = make_skill("a", {"SKILL.md": b"a"}, blobs)
    rid = "20260101T000000Z-111111111111"
    stage_release(releases, rid, [s], {}, blobs.__getitem__, manifest_for(rid, [s]))
    target = releases.dir(rid) / "a" / "SKILL.md"
    os.chmod(releases.dir(rid) / "a", 0o755)
    os.chmod(target, 0o644)
    target.write_text("tampered")
    problems = verify_release(releases, rid)
    assert problems and "does not match manifest" in problems[0]


def test_delete_removes_manifest_first_and_readonly_tree(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    s = make_skill("a", {"SKILL.md": b"a", "x/y/z.txt": b"z"}, blobs)
    rid = "20260101T000000Z-111111111111"
    stage_release(releases, rid, [s], {}, blobs.__getitem__, manifest_for(rid, [s]))
    releases.delete(rid)
    assert list(releases.root.iterdir()) == []


def test_enospc_while_staging_leaves_an_incomplete_release_that_recover_removes(
    releases: Releases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full mid-stage: no manifest, so it is never flipped to and is cleaned up."""
    blobs: dict[str, bytes] = {}
    good = make_skill("a", {"SKILL.md": b"a"}, blobs)
    r1 = "20260101T000000Z-111111111111"
    stage_release(releases, r1, [good], {}, blobs.__getitem__, manifest_for(r1, [good]))
    releases.flip(r1)
    big = make_skill("b", {"SKILL.md": b"b", "data.bin": b"x" * 100}, blobs)
    real_write = os.write
    calls = {"n": 0}

    def full_disk(fd: int, data: bytes | memoryview) -> int:
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    r2 = "20260101T000001Z-222222222222"
    with pytest.raises(OSError) as err:
        stage_release(releases, r2, [big], {"a": r1}, blobs.__getitem__,
                      manifest_for(r2, [good, big]))
    monkeypatch.undo()
    assert err.value.errno == errno.ENOSPC
    assert not releases.manifest_path(r2).exists()
    assert releases.current() == r1
    with pytest.raises(ReleaseError):
        releases.flip(r2)
    releases.recover()
    assert releases.complete() == [r1] and not releases.dir(r2).exists()


def test_verify_only_hashes_the_named_skills(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    a = make_skill("a", {"SKILL.md": b"a"}, blobs)
    b = make_skill("b", {"SKILL.md": b"b"}, blobs)
    rid = "20260101T000000Z-111111111111"
    stage_release(releases, rid, [a, b], {}, blobs.__getitem__, manifest_for(rid, [a, b]))
    target = releases.dir(rid) / "b" / "SKILL.md"
    os.chmod(target, 0o644)
    target.write_bytes(b"tampered")
    assert verify_release(releases, rid, only={"a"}) == []
    assert [p.split(":")[0] for p in verify_release(releases, rid)] == ["b"]
    assert [p.split(":")[0] for p in verify_release(releases, rid, only={"b"})] == ["b"]
    shutil.rmtree(releases.dir(rid) / "a")
    assert verify_release(releases, rid, only=set()) == ["a: in the manifest but missing from the release"]
