"""Skills are found the way the gateway finds them, and nothing under the skills root is left out
in silence: each entry not deployed has a finding. Hostile names hold back only their skill."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, Union

import pytest
from test_hostile import GOOD_MD, push_tree

from skillsyncd.config import Config, load_config
from skillsyncd.errors import SourceError, ValidationRejected
from skillsyncd.release.releases import Releases
from skillsyncd.release.verify import verify_release
from skillsyncd.source.discovery import (
    Child,
    Kind,
    discover,
    gateway_unloaded,
    name_problem,
    nested_skills,
)
from skillsyncd.sync.assembly import build_syncer

# name -> file bytes | nested folder | ("symlink"|"gitlink",)
Tree = dict[bytes, Union[bytes, "Tree", tuple[str]]]
MD = b"---\ndescription: d\n---\n"


def lister(root: Tree) -> Any:
    def list_folder(key: Hashable) -> Sequence[Child]:
        folder: Tree = root
        for part in key:  # type: ignore[attr-defined]
            folder = folder[part]  # type: ignore[assignment]
        out = []
        for name, value in folder.items():
            if isinstance(value, dict):
                out.append(Child(name, Kind.FOLDER, (*key, name)))  # type: ignore[misc]
            elif isinstance(value, tuple):
                out.append(Child(name, Kind(value[0]), (*key, name)))  # type: ignore[misc]
            else:
                out.append(Child(name, Kind.FILE, (*key, name)))  # type: ignore[misc]
        return out

    return list_folder


def run(tree: Tree, **kw: Any) -> tuple[list[str], dict[str, str]]:
    found, skipped = discover((), lister(tree), **kw)
    return [f.name for f in found], {s.path: s.rule for s in skipped}


def test_top_level_and_grouped_skills_like_the_gateway() -> None:
    tree: Tree = {
        b"pdf": {b"SKILL.md": MD, b"ref": {b"SKILL.md": MD}},  # a skill: nothing below is another
        b"data-ingestion": {b"README.md": b"x", b"pihs-scraper": {b"SKILL.md": MD}},
        b"deep": {b"a": {b"b": {b"SKILL.md": MD}}},
        b"docs": {b"guide.md": b"x"},
        b"legacy": {b"skill.yaml": b"x"},
        b".github": {b"workflows": {b"ci.yml": b"x"}},
        b".hidden": {b"sk": {b"SKILL.md": MD}},
        b"node_modules": {b"x": {b"SKILL.md": MD}},
        b"vendor": ("gitlink",),
        b"linked": ("symlink",),
        b"SKILL.md": b"# the whole council",
        b"README.md": b"x",
    }
    names, skipped = run(tree)
    assert names == ["pdf", "data-ingestion/pihs-scraper"]
    assert skipped == {
        "SKILL.md": "layout.root-skill-md",
        ".": "layout.root-files",  # README.md at the root
        "data-ingestion": "layout.not-a-skill",  # its README belongs to no skill
        "deep/a": "layout.too-deep",
        "docs": "layout.not-a-skill",
        "legacy": "layout.not-a-skill",
        ".hidden": "layout.hidden",
        ".github": "layout.hidden",
        "node_modules": "layout.hidden",
        "vendor": "layout.gitlink",
        "linked": "layout.symlink",
    }
    deeper, skipped = run(tree, max_depth=6)
    assert "deep/a/b" in deeper and "deep/a" not in skipped


def test_skills_folder_beside_top_level_skills_is_the_other_set() -> None:
    tree: Tree = {b"pdf": {b"SKILL.md": MD},
                  b"skills": {b"pdf": {b"SKILL.md": MD}, b"x": {b"SKILL.md": MD}}}
    names, skipped = run(tree)
    assert names == ["pdf"] and skipped == {"skills": "layout.skills-subfolder"}
    _, skipped_list = discover((), lister(tree))
    message = skipped_list[0].message
    assert "2 skill(s)" in message and "SKILLSYNC_SKILLS_PATH=skills" in message
    # Alone, skills/ is an ordinary group; with a skills_path chosen it is never special.
    assert run({b"skills": {b"pdf": {b"SKILL.md": MD}}})[0] == ["skills/pdf"]
    assert run(tree, skills_path_set=True)[0] == ["pdf", "skills/pdf", "skills/x"]


@pytest.mark.parametrize(("name", "rule"), [
    (b"a/b", "path.slash"), (b"..", "path.dotdot"), (b".GIT", "path.dot-git"),
    (b"x" * 256, "path.name-too-long"), (b"\xff", "path.encoding"), (b"a\nb", "path.control-char"),
])
def test_hostile_folder_names_are_named(name: bytes, rule: str) -> None:
    assert name_problem(name) is not None and name_problem(name)[0] == rule  # type: ignore[index]
    names, skipped = run({name: {b"SKILL.md": MD}, b"good": {b"SKILL.md": MD}})
    assert names == ["good"] and list(skipped.values()) == [rule]


def test_nested_skill_md_is_reported() -> None:
    found = nested_skills("pdf", ["SKILL.md", "ref/SKILL.md", "a.md"])
    assert [s.path for s in found] == ["pdf/ref/SKILL.md"]


def test_gateway_caps() -> None:
    names = [f"s{i:03d}" for i in range(250)]
    assert gateway_unloaded(names, 300, 200) == tuple(names[200:])
    assert gateway_unloaded(names[:10], 300, 200) == ()
    grouped = [f"g/s{i:03d}" for i in range(5)] + ["a"]
    assert gateway_unloaded(grouped, 3, 200) == ("g/s003", "g/s004")  # 3 folders listed per folder


# --- through a real sync ---------------------------------------------------------------


def sync_cfg(repo: Any, tmp_path: Path, **extra: Any) -> Config:
    return load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "state"), **extra}, env={})


def manifest(cfg: Config) -> dict[str, Any]:
    releases = Releases(cfg.state_dir)
    current = releases.current()
    assert current is not None and verify_release(releases, current) == []
    return releases.manifest(current).to_dict()


def live(cfg: Config) -> set[str]:
    return {s["name"] for s in manifest(cfg)["skills"] if s.get("live")}


def test_grouped_skill_deploys_and_mirror_publishes_it(repo: Any, tmp_path: Path) -> None:
    repo.write("pdf/SKILL.md", "---\nname: pdf\ndescription: PDF.\n---\n")
    repo.write("data-ingestion/pihs-scraper/SKILL.md", "---\ndescription: Scrapes.\n---\n")
    repo.commit("grouped")
    publish = tmp_path / "published"
    cfg = sync_cfg(repo, tmp_path, publish_mode="mirror", publish_dir=str(publish))
    assert build_syncer(cfg).sync().status == "deployed"
    assert live(cfg) == {"pdf", "data-ingestion/pihs-scraper"}
    record = next(s for s in manifest(cfg)["skills"] if s["name"] == "data-ingestion/pihs-scraper")
    assert record["effective_name"] == "pihs-scraper"  # the gateway's fallback: the folder's name
    assert (publish / "data-ingestion" / "pihs-scraper" / "SKILL.md").is_file()
    repo.remove("data-ingestion")
    repo.write("more/SKILL.md", "---\ndescription: More.\n---\n")
    repo.commit("ungroup")
    assert build_syncer(cfg).sync().status == "deployed"
    assert live(cfg) == {"pdf", "more"}
    assert not (publish / "data-ingestion").exists()  # the empty group folder went with its skill


def good_and(spec: dict[bytes, Any]) -> dict[bytes, Any]:
    return {b"good": {b"SKILL.md": GOOD_MD}, **spec}


def evil(files: dict[bytes, Any]) -> dict[bytes, Any]:
    return {b"evil": {b"SKILL.md": b"---\nname: evil\ndescription: Hostile.\n---\n", **files}}


class Deep:
    """``depth`` folders named ``name`` inside each other, written bottom-up (no recursion)."""

    def __init__(self, depth: int, name: bytes = b"d") -> None:
        self.depth, self.name = depth, name


def nested(depth: int, name: bytes = b"d") -> dict[bytes, Any]:
    return {name: Deep(depth, name)}


def push(repo: Any, spec: dict[bytes, Any]) -> None:
    """push_tree, with Deep values written as pre-built tree ids."""
    from dulwich.objects import Blob
    from dulwich.objects import Tree as GitTree
    from dulwich.repo import Repo

    r = Repo(str(repo.path))
    try:
        def build(value: Deep) -> bytes:
            blob = Blob.from_string(b"x")
            r.object_store.add_object(blob)
            tree = GitTree()
            tree.add(b"f.md", 0o100644, blob.id)
            r.object_store.add_object(tree)
            for _ in range(value.depth - 1):
                outer = GitTree()
                outer.add(value.name, 0o040000, tree.id)
                r.object_store.add_object(outer)
                tree = outer
            return tree.id

        def resolve(node: dict[bytes, Any]) -> dict[bytes, Any]:
            return {k: ("tree", build(v)) if isinstance(v, Deep) else resolve(v) if isinstance(v, dict)
                    else v for k, v in node.items()}

        resolved = resolve(spec)
    finally:
        r.close()
    push_tree(repo, resolved)


@pytest.mark.parametrize(("spec", "rule"), [
    (evil({b"x/y.md": b"slash"}), "path.slash"),
    (evil({b"n" * 300: b"long name"}), "path.name-too-long"),
    (evil(nested(1000)), "path.too-deep"),
    (evil(nested(40, b"p" * 120)), "path.too-long"),
])
def test_hostile_entry_holds_back_only_its_skill(repo: Any, tmp_path: Path, spec: dict[bytes, Any],
                                                 rule: str) -> None:
    repo.write("good/SKILL.md", GOOD_MD)
    repo.commit("base")
    push(repo, good_and(spec))
    cfg = sync_cfg(repo, tmp_path)
    out = build_syncer(cfg).sync()
    assert out.status == "deployed"
    assert live(cfg) == {"good"}
    assert "evil" in out.held_back and any(f"[{rule}]" in r for r in out.held_back["evil"])


def test_hostile_skill_folder_name_is_skipped_by_a_named_rule(repo: Any, tmp_path: Path) -> None:
    repo.write("good/SKILL.md", GOOD_MD)
    repo.commit("base")
    push_tree(repo, good_and({b"a/b": {b"SKILL.md": GOOD_MD}, b"c" * 256: {b"SKILL.md": GOOD_MD}}))
    cfg = sync_cfg(repo, tmp_path)
    assert build_syncer(cfg).sync().status == "deployed"
    assert live(cfg) == {"good"}
    rules = {f["rule"] for f in manifest(cfg)["layout"]}
    assert {"path.slash", "path.name-too-long"} <= rules
    releases = Releases(cfg.state_dir)
    assert sorted(p.name for p in releases.dir(releases.current() or "").iterdir()) == ["good"]


def test_missing_object_is_one_line_naming_it(repo: Any, tmp_path: Path) -> None:
    from dulwich.objects import Tree as GitTree
    from dulwich.repo import Repo

    repo.write("good/SKILL.md", GOOD_MD)
    repo.commit("base")
    push_tree(repo, good_and({}))
    # Point the head commit's tree at a skill folder whose tree object is not stored.
    r = Repo(str(repo.path))
    try:
        head = r[r.refs[b"refs/heads/main"]]
        tree = r[head.tree]
        assert isinstance(tree, GitTree)
        tree.add(b"ghost", 0o040000, b"1" * 40)
        r.object_store.add_object(tree)
        head.tree = tree.id
        r.object_store.add_object(head)
        r.refs[b"refs/heads/main"] = head.id
    finally:
        r.close()
    cfg = sync_cfg(repo, tmp_path)
    with pytest.raises(SourceError) as info:
        build_syncer(cfg).sync()
    message = str(info.value)
    assert "1111111111" in message and "\n" not in message


def test_mass_removal_is_refused_unless_forced(repo: Any, tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d"):
        repo.write(f"{name}/SKILL.md", f"---\ndescription: {name}.\n---\n")
    repo.commit("four")
    publish = tmp_path / "published"
    cfg = sync_cfg(repo, tmp_path, publish_mode="mirror", publish_dir=str(publish))
    assert build_syncer(cfg).sync().status == "deployed"
    for name in ("a", "b", "c", "d"):  # all moved one level down: 2 levels is fine, 3 is not
        repo.write(f"x/y/{name}/SKILL.md", f"---\ndescription: {name}.\n---\n")
        repo.remove(name)
    repo.commit("move all skills down")
    with pytest.raises(ValidationRejected, match=r"guard.mass-removal.*remove all 4"):
        build_syncer(cfg).sync()
    assert live(cfg) == {"a", "b", "c", "d"}  # nothing removed, from the release or the published folder
    assert sorted(p.name for p in publish.iterdir() if not p.name.startswith(".")) == ["a", "b", "c", "d"]
    assert build_syncer(cfg).sync().status == "rejected"  # remembered, not re-judged every poll
    assert build_syncer(cfg).sync(force=True).status == "deployed"


def test_a_setting_change_takes_effect_at_the_next_sync(repo: Any, tmp_path: Path) -> None:
    repo.write("pdf/SKILL.md", "---\nname: pdf\ndescription: PDF.\n---\n")
    repo.write("group/deep/SKILL.md", "---\ndescription: Deep.\n---\n")
    repo.commit("one")
    cfg = sync_cfg(repo, tmp_path, skill_depth=1)
    assert build_syncer(cfg).sync().status == "deployed"
    assert live(cfg) == {"pdf"}
    assert build_syncer(cfg).sync().status == "no_change"
    deeper = sync_cfg(repo, tmp_path, skill_depth=2)
    assert build_syncer(deeper).sync().status == "deployed"
    assert live(deeper) == {"pdf", "group/deep"}
    assert build_syncer(deeper).sync().status == "no_change"


def test_gateway_cap_and_layout_reach_status(repo: Any, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    for name in ("a", "b", "c"):
        repo.write(f"{name}/SKILL.md", f"---\ndescription: {name}.\n---\n")
        repo.write(f"skills/{name}/SKILL.md", f"---\ndescription: old {name}.\n---\n")
    repo.commit("three, and an older set under skills/")
    cfg = sync_cfg(repo, tmp_path, gateway_max_skills=2)
    assert build_syncer(cfg).sync().status == "deployed"
    layout = {f["rule"]: f for f in manifest(cfg)["layout"]}
    assert "it will not load 1: c;" in layout["layout.gateway-cap"]["message"]
    proc = subprocess.run([sys.executable, "-m", "skillsyncd", "status", "--json",
                           "--state-dir", str(cfg.state_dir)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    rules = {f["rule"] for f in info["layout"]}
    assert {"layout.skills-subfolder", "layout.gateway-cap"} <= rules
    assert {s["name"] for s in info["skills"]} == {"a", "b", "c"}
    text = subprocess.run([sys.executable, "-m", "skillsyncd", "status", "--state-dir", str(cfg.state_dir)],
                          capture_output=True, text=True, timeout=60).stdout
    assert "SKILLSYNC_SKILLS_PATH=skills" in text
