"""Ignore rules: the defaults, SKILLSYNC_IGNORE and .skillsyncignore files keep files out of
releases, out of the published folder and out of validation; what is left out is counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skillsyncd.config import Config, load_config
from skillsyncd.model import Entry
from skillsyncd.release.releases import Releases
from skillsyncd.release.verify import tree_sha_of, verify_release
from skillsyncd.source.ignore import IgnoreRules, filter_entries, parse, tree_id
from skillsyncd.sync.assembly import build_syncer
from skillsyncd.validation.worktree import validate_tree

# A credential-shaped value, built here so no literal token sits in the repository.
SECRET = "ghp_" + "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2z4C"


def test_defaults_and_layers() -> None:
    rules = IgnoreRules.build(settings=["*.zip"], root_file=parse(b"# comment\ndrafts/\n\n/top.md\n"))
    assert rules.matches("pdf/__pycache__/x.pyc") and rules.matches("a/.DS_Store")
    assert rules.matches("bundle.zip") and rules.matches("pdf/drafts", is_dir=True)
    assert rules.matches("top.md") and not rules.matches("pdf/top.md")
    assert not rules.matches("pdf/SKILL.md")
    entries = [Entry("SKILL.md", 0o100644, "1" * 40, 1), Entry("tmp/a.txt", 0o100644, "2" * 40, 1),
               Entry(".skillsyncignore", 0o100644, "3" * 40, 1), Entry("x.pyc", 0o100644, "4" * 40, 1)]
    kept = filter_entries(entries, rules, "pdf", own=parse(b"tmp/\n"))
    assert [e.path for e in kept.entries] == ["SKILL.md"]
    assert sorted(kept.ignored) == [".skillsyncignore", "tmp/a.txt", "x.pyc"]


def test_tree_id_is_gits_tree_id(tmp_path: Path) -> None:
    """What a release holds after filtering hashes to the content sha the manifest records."""
    import hashlib

    folder = tmp_path / "skill"
    (folder / "refs").mkdir(parents=True)
    files = {"SKILL.md": b"---\ndescription: d\n---\n", "refs/a.md": b"a\n", "run.sh": b"#!/bin/sh\n"}
    entries = []
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
        sha = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        mode = 0o100755 if rel.endswith(".sh") else 0o100644
        if mode == 0o100755:
            (folder / rel).chmod(0o755)
        entries.append(Entry(rel, mode, sha, len(data)))
    assert tree_id(entries) == tree_sha_of(folder)


def cfg(repo: Any, tmp_path: Path, **extra: Any) -> Config:
    return load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "state"), **extra}, env={})


def test_sync_leaves_ignored_files_out_of_release_publish_and_validation(repo: Any, tmp_path: Path) -> None:
    repo.write(".skillsyncignore", "*.zip\ndrafts/\n")
    repo.write("bundle.zip", b"PK\x03\x04")
    repo.write("pdf/SKILL.md", "---\nname: pdf\ndescription: PDF.\n---\n")
    repo.write("pdf/notes/keep.md", "kept\n")
    repo.write("pdf/drafts/secret.md", f"token = {SECRET}\n")  # never judged: ignored
    repo.write("pdf/.skillsyncignore", "scratch/\n")
    repo.write("pdf/scratch/wip.md", "wip\n")
    repo.write("pdf/__pycache__/x.cpython-312.pyc", b"\x00\x01")
    repo.write("pdf/huge.bin", b"x" * 100)
    repo.write("drafts/SKILL.md", "---\ndescription: not ready\n---\n")
    repo.commit("ignore rules")
    publish = tmp_path / "published"
    c = cfg(repo, tmp_path, publish_mode="mirror", publish_dir=str(publish), ignore="*.bin")
    out = build_syncer(c).sync()
    assert out.status == "deployed" and out.held_back == {}
    releases = Releases(c.state_dir)
    current = releases.current()
    assert current is not None and verify_release(releases, current) == []
    held = releases.dir(current) / "pdf"
    assert sorted(str(p.relative_to(held)) for p in held.rglob("*") if p.is_file()) == [
        "SKILL.md", "notes/keep.md"]
    assert sorted(str(p.relative_to(publish / "pdf")) for p in (publish / "pdf").rglob("*")
                  if p.is_file()) == ["SKILL.md", "notes/keep.md"]
    manifest = releases.manifest(current).to_dict()
    assert {s["name"] for s in manifest["skills"] if s.get("live")} == {"pdf"}  # drafts/ ignored
    ignored = next(f for f in manifest["layout"] if f["rule"] == "layout.ignored")
    assert ignored["message"].startswith("7 file(s) or folder(s)")
    assert not any(f.rule.startswith("secret.") for f in out.findings)

    # validate PATH honours the same rules on a checkout.
    report = validate_tree(repo.path, Config(ignore=("*.bin",)))
    assert report.skills == ("pdf",) and not any(f.rule.startswith("secret.") for f in report.findings)
    assert any(f.rule == "layout.ignored" for f in report.findings)


def test_changing_the_ignore_setting_redeploys(repo: Any, tmp_path: Path) -> None:
    repo.write("pdf/SKILL.md", "---\nname: pdf\ndescription: PDF.\n---\n")
    repo.write("pdf/big.bin", b"x")
    repo.commit("one")
    assert build_syncer(cfg(repo, tmp_path)).sync().status == "deployed"
    again = cfg(repo, tmp_path, ignore="*.bin")
    out = build_syncer(again).sync()
    assert out.status == "deployed" and out.plan.changed == ("pdf",)
    releases = Releases(again.state_dir)
    assert not (releases.dir(releases.current() or "") / "pdf" / "big.bin").exists()
