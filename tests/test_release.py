"""Staging, flipping, recovery and verification of releases on a real disk."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from dulwich.objects import Blob, Tree

import skillsyncd.release.store as store_module
from skillsyncd.errors import ReleaseError
from skillsyncd.model import MODE_EXEC, MODE_FILE, Entry, Skill
from skillsyncd.release.manifest import Manifest, SkillRecord
from skillsyncd.release.releases import Releases, commit_of, new_release_id, store_target
from skillsyncd.release.staging import StageStats, stage_release
from skillsyncd.release.verify import tree_sha_of, verify_release


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


def stage(releases: Releases, rid: str, serve: list[Skill], build: list[Skill],
          blobs: dict[str, bytes], copies: dict[str, Path] | None = None) -> StageStats:
    """Stage a release serving ``serve``, writing the versions of ``build`` from ``blobs``."""
    return stage_release(releases, rid, {s.name: s.tree_sha for s in serve}, build,
                         blobs.__getitem__, manifest_for(rid, serve), copies=copies)


def writable(path: Path) -> None:
    os.chmod(path, 0o755)


def test_release_id_sorts_by_time_and_names_commit() -> None:
    a = new_release_id("1a2b3c4d5e6f7a8b", now=1_700_000_000)
    b = new_release_id("ffffffffffff0000", now=1_700_000_001)
    assert a < b
    assert a == "20231114T221320Z-1a2b3c4d5e6f"
    assert commit_of(a) == "1a2b3c4d5e6f"


def test_stage_writes_readonly_versions_matching_git_and_links_them(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    skill = make_skill("pdf", {"SKILL.md": b"---\nname: pdf\n---\n", "scripts/run.sh": b"#!/bin/sh\n"},
                       blobs, exec_paths=frozenset({"scripts/run.sh"}))
    rid = "20260101T000000Z-cccccccccccc"
    stats = stage(releases, rid, [skill], [skill], blobs)
    assert (stats.files_written, stats.versions_written, stats.versions_reused) == (2, 1, 0)
    root = releases.dir(rid)
    assert os.readlink(root / "pdf") == f"../../store/{skill.tree_sha}"
    version = releases.store.path(skill.tree_sha)
    assert (root / "pdf" / "SKILL.md").read_bytes() == b"---\nname: pdf\n---\n"
    assert os.stat(version / "SKILL.md").st_mode & 0o777 == 0o444
    assert os.stat(version / "SKILL.md").st_nlink == 1  # the gateway skips hard-linked SKILL.md
    assert os.stat(version / "scripts" / "run.sh").st_mode & 0o777 == 0o555
    assert os.stat(version).st_mode & 0o222 == 0 and os.stat(root).st_mode & 0o222 == 0
    assert tree_sha_of(root / "pdf") == skill.tree_sha
    assert releases.complete() == [rid]
    assert verify_release(releases, rid) == []


def test_a_deploy_writes_only_the_changed_version(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    a = make_skill("a", {"SKILL.md": b"a"}, blobs)
    b1 = make_skill("b", {"SKILL.md": b"b1"}, blobs)
    b2 = make_skill("b", {"SKILL.md": b"b2"}, blobs)
    r1, r2 = "20260101T000000Z-111111111111", "20260101T000001Z-222222222222"
    stage(releases, r1, [a, b1], [a, b1], blobs)
    reads: list[str] = []

    def read(sha: str) -> bytes:
        reads.append(sha)
        return blobs[sha]

    stats = stage_release(releases, r2, {"a": a.tree_sha, "b": b2.tree_sha}, [a, b2], read,
                          manifest_for(r2, [a, b2]), previous=r1)
    assert (stats.files_written, stats.versions_written, stats.versions_reused) == (1, 1, 1)
    assert reads == [b2.entries[0].sha]  # a's version was in the store: not one byte read
    assert os.path.samefile(releases.dir(r1) / "a", releases.dir(r2) / "a")
    # a's link is the live release's link inode, hard-linked: no new inode per unchanged skill
    assert os.lstat(releases.dir(r1) / "a").st_ino == os.lstat(releases.dir(r2) / "a").st_ino
    assert os.lstat(releases.dir(r2) / "a").st_nlink == 2
    assert os.lstat(releases.dir(r1) / "b").st_ino != os.lstat(releases.dir(r2) / "b").st_ino
    assert releases.store.shas() == {a.tree_sha, b1.tree_sha, b2.tree_sha}
    assert verify_release(releases, r1) == [] and verify_release(releases, r2) == []


def test_grouped_skills_link_from_a_real_group_folder(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    g = make_skill("tools/pdf", {"SKILL.md": b"g"}, blobs)
    rid = "20260101T000000Z-111111111111"
    stage(releases, rid, [g], [g], blobs)
    group = releases.dir(rid) / "tools"
    assert group.is_dir() and not group.is_symlink()
    assert os.readlink(group / "pdf") == store_target("tools/pdf", g.tree_sha)
    assert store_target("tools/pdf", g.tree_sha) == f"../../../store/{g.tree_sha}"
    assert (group / "pdf" / "SKILL.md").read_bytes() == b"g"
    assert verify_release(releases, rid) == []


def test_two_skills_with_the_same_bytes_share_one_version(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    a = make_skill("a", {"SKILL.md": b"same"}, blobs)
    b = make_skill("b", {"SKILL.md": b"same"}, blobs)
    rid = "20260101T000000Z-111111111111"
    stats = stage(releases, rid, [a, b], [a, b], blobs)
    assert stats.versions_written == 1 and releases.store.shas() == {a.tree_sha}
    assert verify_release(releases, rid) == []


def test_a_version_missing_from_the_store_refuses_the_release(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    a = make_skill("a", {"SKILL.md": b"a"}, blobs)
    rid = "20260101T000000Z-111111111111"
    with pytest.raises(ReleaseError, match="missing from the store"):
        stage(releases, rid, [a], [], blobs)
    assert releases.complete() == [] and not releases.dir(rid).exists()


def test_copies_fill_the_store_from_a_0_1_0_release(releases: Releases) -> None:
    """Upgrade: a release of real folders gives its skills to the store, byte for byte."""
    blobs: dict[str, bytes] = {}
    a = make_skill("a", {"SKILL.md": b"a", "bin/run": b"echo"}, blobs, exec_paths=frozenset({"bin/run"}))
    old = releases.root / "20260101T000000Z-111111111111"
    (old / "a" / "bin").mkdir(parents=True)
    (old / "a" / "SKILL.md").write_bytes(b"a")
    (old / "a" / "bin" / "run").write_bytes(b"echo")
    os.chmod(old / "a" / "bin" / "run", 0o555)
    releases.manifest_path(old.name).write_bytes(manifest_for(old.name, [a]).to_json())
    assert verify_release(releases, old.name) == []
    rid = "20260101T000001Z-222222222222"
    stats = stage(releases, rid, [a], [], blobs, copies={a.tree_sha: old / "a"})
    assert stats.versions_written == 1 and stats.files_written == 2
    assert os.stat(old / "a" / "SKILL.md").st_nlink == 1  # the live 0.1.0 release is untouched
    assert verify_release(releases, rid) == [] and verify_release(releases, old.name) == []


def test_flip_is_relative_and_refuses_incomplete(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    s = make_skill("a", {"SKILL.md": b"a"}, blobs)
    rid = "20260101T000000Z-111111111111"
    stage(releases, rid, [s], [s], blobs)
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
    stage(releases, good, [s], [s], blobs)
    half = releases.root / "20260101T000005Z-555555555555" / "a"
    half.mkdir(parents=True)
    (half / "SKILL.md").write_text("partial")
    os.chmod(half, 0o555)
    (releases.root / ".20260101T000006Z-666666666666.json.abc.tmp").write_text("{")
    (releases.root / "20260101T000007Z-777777777777.json").write_text("{}")  # orphan manifest
    os.symlink("releases/x", releases.state_dir / ".current.tmp-123")
    new = releases.store.work / f"new-{'d' * 40}"
    new.mkdir(parents=True)
    (new / "SKILL.md").write_text("half a version")
    os.chmod(new, 0o555)
    old = releases.store.work / f"old-{'e' * 40}"
    old.mkdir()
    removed = releases.recover()
    assert len(removed) == 6
    assert sorted(p.name for p in releases.root.iterdir()) == [good, f"{good}.json"]
    assert not (releases.state_dir / ".current.tmp-123").exists()
    assert releases.store.shas() == {s.tree_sha} and list(releases.store.work.iterdir()) == []


def test_verify_detects_tampering_in_the_store(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    s = make_skill("a", {"SKILL.md": b"a"}, blobs)
    rid = "20260101T000000Z-111111111111"
    stage(releases, rid, [s], [s], blobs)
    version = releases.store.path(s.tree_sha)
    writable(version)
    os.chmod(version / "SKILL.md", 0o644)
    (version / "SKILL.md").write_text("tampered")
    problems = verify_release(releases, rid)
    assert problems and "does not match manifest" in problems[0]


def test_verify_detects_a_link_to_the_wrong_version(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    a = make_skill("a", {"SKILL.md": b"a"}, blobs)
    b = make_skill("b", {"SKILL.md": b"b"}, blobs)
    rid = "20260101T000000Z-111111111111"
    stage(releases, rid, [a, b], [a, b], blobs)
    root = releases.dir(rid)
    writable(root)
    (root / "a").unlink()
    (root / "a").symlink_to(store_target("a", b.tree_sha))
    assert [p.split(":")[0] for p in verify_release(releases, rid, only=set())] == ["a"]


def test_delete_then_collect_removes_only_unused_versions(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    a = make_skill("a", {"SKILL.md": b"a", "x/y/z.txt": b"z"}, blobs)
    b1 = make_skill("b", {"SKILL.md": b"b1"}, blobs)
    b2 = make_skill("b", {"SKILL.md": b"b2"}, blobs)
    r1, r2 = "20260101T000000Z-111111111111", "20260101T000001Z-222222222222"
    stage(releases, r1, [a, b1], [a, b1], blobs)
    stage(releases, r2, [a, b2], [b2], blobs)
    assert releases.collect() == []  # both releases use their versions
    releases.delete(r1)
    assert sorted(p.name for p in releases.root.iterdir()) == [r2, f"{r2}.json"]
    assert releases.collect() == [b1.tree_sha]
    assert releases.store.shas() == {a.tree_sha, b2.tree_sha}
    assert verify_release(releases, r2) == []


def test_collect_keeps_every_version_when_a_manifest_is_unreadable(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    a = make_skill("a", {"SKILL.md": b"a"}, blobs)
    rid = "20260101T000000Z-111111111111"
    stage(releases, rid, [a], [a], blobs)
    path = releases.manifest_path(rid)
    os.chmod(path, 0o644)
    path.write_text("{not json")
    with pytest.raises(ReleaseError, match="no readable manifest"):
        releases.collect()
    assert releases.store.shas() == {a.tree_sha}


def test_enospc_while_staging_leaves_leftovers_that_recover_removes(
    releases: Releases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full mid-stage: no manifest, so it is never flipped to and is cleaned up."""
    blobs: dict[str, bytes] = {}
    good = make_skill("a", {"SKILL.md": b"a"}, blobs)
    r1 = "20260101T000000Z-111111111111"
    stage(releases, r1, [good], [good], blobs)
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
        stage(releases, r2, [good, big], [big], blobs)
    monkeypatch.undo()
    assert err.value.errno == errno.ENOSPC
    assert not releases.manifest_path(r2).exists()
    assert not releases.store.has(big.tree_sha)  # never under its sha half written
    assert releases.current() == r1
    with pytest.raises(ReleaseError):
        releases.flip(r2)
    assert releases.recover() == [f"store/.work/new-{big.tree_sha}"]
    assert releases.complete() == [r1] and releases.store.shas() == {good.tree_sha}


def test_verify_only_hashes_the_named_skills(releases: Releases) -> None:
    blobs: dict[str, bytes] = {}
    a = make_skill("a", {"SKILL.md": b"a"}, blobs)
    b = make_skill("b", {"SKILL.md": b"b"}, blobs)
    rid = "20260101T000000Z-111111111111"
    stage(releases, rid, [a, b], [a, b], blobs)
    target = releases.store.path(b.tree_sha) / "SKILL.md"
    os.chmod(target, 0o644)
    target.write_bytes(b"tampered")
    assert verify_release(releases, rid, only={"a"}) == []
    assert [p.split(":")[0] for p in verify_release(releases, rid)] == ["b"]
    assert [p.split(":")[0] for p in verify_release(releases, rid, only={"b"})] == ["b"]
    writable(releases.dir(rid))
    (releases.dir(rid) / "a").unlink()
    assert verify_release(releases, rid, only=set()) == ["a: in the manifest but missing from the release"]


def test_folders_give_each_release_real_skill_folders_linked_from_the_store(releases: Releases) -> None:
    """Link mode: the gateway reads through `current` and refuses symlinked skill folders
    there, and any SKILL.md with more than one link; other files share the store's inode."""
    blobs: dict[str, bytes] = {}
    a = make_skill("a", {"SKILL.md": b"a", "ref/SKILL.md": b"nested", "run.sh": b"echo"}, blobs)
    g = make_skill("tools/b", {"SKILL.md": b"b"}, blobs)
    r1, r2 = "20260101T000000Z-111111111111", "20260101T000001Z-222222222222"
    for rid in (r1, r2):
        stage_release(releases, rid, {"a": a.tree_sha, "tools/b": g.tree_sha}, [a, g],
                      blobs.__getitem__, manifest_for(rid, [a, g]), folders=True)
    for rid in (r1, r2):
        folder = releases.dir(rid) / "a"
        assert folder.is_dir() and not folder.is_symlink()
        assert os.stat(folder / "SKILL.md").st_nlink == 1 and (folder / "SKILL.md").read_bytes() == b"a"
        assert not (releases.dir(rid) / "tools" / "b").is_symlink()
        assert verify_release(releases, rid) == []
    version = releases.store.path(a.tree_sha)
    assert os.stat(version / "SKILL.md").st_nlink == 1
    assert os.stat(version / "run.sh").st_nlink == 3  # the store's file, shared by both releases
    assert os.stat(version / "ref/SKILL.md").st_nlink == 3  # only the top-level SKILL.md is copied


def test_a_large_first_stage_writes_in_threads_and_a_failing_write_stops_it(
    releases: Releases, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs: dict[str, bytes] = {}
    skills = [make_skill(f"s{i:03d}", {"SKILL.md": f"skill {i}".encode(), "ref/a.md": b"x" * i}, blobs)
              for i in range(120)]
    rid = "20260101T000000Z-111111111111"
    stats = stage(releases, rid, skills, skills, blobs)
    assert stats.versions_written == 120 and stats.files_written == 240
    assert verify_release(releases, rid) == []

    more = [make_skill(f"t{i:03d}", {"SKILL.md": f"other {i}".encode()}, blobs) for i in range(100)]
    real = store_module.write_new
    calls = {"n": 0}

    def fails_once_past_50(path: str | Path, data: bytes, mode: int) -> None:
        calls["n"] += 1
        if calls["n"] == 50:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data, mode)

    monkeypatch.setattr(store_module, "write_new", fails_once_past_50)
    r2 = "20260101T000001Z-222222222222"
    with pytest.raises(OSError, match="No space left"):
        stage(releases, r2, skills + more, more, blobs)
    monkeypatch.undo()
    assert releases.complete() == [rid] and not any(releases.store.has(s.tree_sha) for s in more)
    assert all(n.startswith("store/.work/new-") for n in releases.recover())
    assert releases.store.shas() == {s.tree_sha for s in skills}
