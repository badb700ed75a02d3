"""Reading skills from a commit's tree, and blob sizes from object headers only."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dulwich.repo import Repo

from skillsyncd.source.snapshot import find_skills, object_size

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "HOME": "/nonexistent"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=GIT_ENV).stdout.strip()


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "r"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=GIT_ENV)
    big = bytes(range(256)) * 4000  # ~1 MB, compressible enough to delta
    (repo / "a").mkdir()
    (repo / "a" / "SKILL.md").write_text("---\nname: a\n---\n")
    (repo / "a" / "asset.bin").write_bytes(big)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one")
    (repo / "a" / "asset.bin").write_bytes(big + b"tail")
    git(repo, "commit", "-qam", "two")
    return repo


def sizes_agree(repo: Path) -> None:
    r = Repo(str(repo))
    for line in git(repo, "rev-list", "--objects", "--all").splitlines():
        sha = line.split()[0]
        if git(repo, "cat-file", "-t", sha) != "blob":
            continue
        assert object_size(r.object_store, sha) == int(git(repo, "cat-file", "-s", sha))


def test_loose_object_sizes(tmp_path: Path) -> None:
    sizes_agree(make_repo(tmp_path))


def test_packed_and_delta_object_sizes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "repack", "-adf", "--depth=10", "--window=10")
    verify = git(repo, "verify-pack", "-v", *[str(p) for p in (repo / ".git/objects/pack").glob("*.idx")])
    assert "chain length" in verify  # at least one delta exists, so the delta path is exercised
    sizes_agree(repo)


def test_find_skills_ignores_non_skills(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "SKILL.md").write_text("root")
    (repo / "nodoc").mkdir()
    (repo / "nodoc" / "README.md").write_text("x")
    (repo / ".hidden").mkdir()
    (repo / ".hidden" / "SKILL.md").write_text("x")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "three")
    r = Repo(str(repo))
    tree = r[r.head()].tree.decode()  # type: ignore[attr-defined]
    skills = find_skills(r.object_store, tree)
    assert list(skills) == ["a"]
    entries = {e.path: e for e in skills["a"].entries}
    assert set(entries) == {"SKILL.md", "asset.bin"}
    assert entries["asset.bin"].size == 256 * 4000 + 4


def test_a_second_survey_reads_only_the_folders_that_changed(tmp_path: Path) -> None:
    """A daemon's next sync does not list 10,000 unchanged skill folders again."""
    from skillsyncd.source.snapshot import survey

    repo = tmp_path / "many"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=GIT_ENV)
    for i in range(40):
        (repo / f"s{i:02d}" / "refs").mkdir(parents=True)
        (repo / f"s{i:02d}" / "SKILL.md").write_text(f"---\nname: s{i:02d}\ndescription: d\n---\n")
        (repo / f"s{i:02d}" / "refs" / "notes.md").write_text(f"notes {i}\n")
    (repo / "group" / "inner").mkdir(parents=True)
    (repo / "group" / "inner" / "SKILL.md").write_text("---\ndescription: grouped\n---\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one")
    r = Repo(str(repo))
    first = survey(r.object_store, r[r.head()].tree.decode())
    (repo / "s07" / "SKILL.md").write_text("---\nname: s07\ndescription: changed\n---\n")
    git(repo, "commit", "-qam", "two")
    r = Repo(str(repo))
    store = r.object_store
    reads: list[bytes] = []
    real = type(store).__getitem__

    class Counting(type(store)):  # type: ignore[misc]
        def __getitem__(self, sha: bytes) -> object:
            reads.append(sha)
            return real(self, sha)

    store.__class__ = Counting
    second = survey(store, r[r.head()].tree.decode())
    store.__class__ = Counting.__mro__[1]
    trees = {sha for sha in reads if r[sha].type_name == b"tree"}
    assert set(second.skills) == set(first.skills) == {f"s{i:02d}" for i in range(40)} | {"group/inner"}
    # the root, the group folder (not a skill itself) and the changed skill's two folders
    assert len(trees) == 4, sorted(t.decode()[:8] for t in trees)
    assert second.skills["s07"].tree_sha != first.skills["s07"].tree_sha
    assert second.skills["s08"] == first.skills["s08"]
