"""Publish modes: the pure mirror plan, and mirror mode against real directories.

Order, ownership, idempotence and crash recovery are proved on hand-built
releases (fast, every file system operation observable); rollback and the
Syncer's wiring with real syncs from the local git fixtures.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import skillsyncd.publish.publisher as publish_mod
from skillsyncd.config import Config, load_config
from skillsyncd.errors import ConfigError
from skillsyncd.publish.publisher import (
    MARKER_PREFIX,
    OWNERSHIP_FILE,
    PENDING,
    STATE_TMP_DIR,
    TMP_DIR,
    Mirror,
    MirrorPlan,
    PublishError,
    load_owned,
    plan_mirror,
    publish,
    verify_published,
)
from skillsyncd.release.manifest import Manifest, SkillRecord
from skillsyncd.release.releases import Releases
from skillsyncd.release.verify import tree_sha_of
from skillsyncd.sync.assembly import build_syncer

Files = dict[str, bytes]


# --- the pure plan -----------------------------------------------------------------


def test_plan_sorts_each_name_into_one_action() -> None:
    wanted = {"new": "n1", "same": "s1", "edited": "e2", "pending": "p1", "vanished": "v1",
              "theirs": "t1", "build": "b1"}
    owned = {"same": "s1", "edited": "e1", "pending": PENDING, "vanished": "v1", "gone": "g1"}
    present = {"same", "edited", "pending", "theirs", "gone", "unrelated"}
    plan = plan_mirror(wanted, owned, present)
    assert plan == MirrorPlan(add=("new",), change=("edited", "pending", "vanished"),
                              remove=("gone",), foreign=("theirs",), ignored=("build",),
                              keep=("same",))
    assert plan.touches


def test_plan_rewrites_a_damaged_skill_of_ours_only() -> None:
    plan = plan_mirror({"a": "1", "b": "2"}, {"a": "1", "b": "2"}, {"a", "b"}, damaged={"a"})
    assert plan.change == ("a",) and plan.keep == ("b",)


def test_plan_of_a_converged_directory_does_nothing() -> None:
    plan = plan_mirror({"a": "1", "b": "2"}, {"a": "1", "b": "2"}, {"a", "b", "c"})
    assert plan == MirrorPlan(keep=("a", "b"))
    assert not plan.touches


def test_plan_unpublishes_an_owned_name_that_became_watcher_ignored() -> None:
    plan = plan_mirror({"dist": "2"}, {"dist": "1"}, {"dist"})
    assert plan.remove == ("dist",) and plan.ignored == ("dist",) and not plan.change


names = st.sampled_from(["a", "b", "c", "d", "e", "node_modules", "venv"])
shas = st.sampled_from(["1", "2", PENDING])


@given(st.dictionaries(names, shas), st.dictionaries(names, shas), st.sets(names))
def test_plan_properties(wanted: dict[str, str], owned: dict[str, str], present: set[str]) -> None:
    wanted = {k: v for k, v in wanted.items() if v != PENDING}
    plan = plan_mirror(wanted, owned, present)
    acted = [*plan.add, *plan.change, *plan.foreign, *plan.ignored, *plan.keep]
    assert sorted(acted) == sorted(wanted)  # every wanted name gets exactly one verdict
    assert set(plan.remove) <= set(owned)  # only our own names are ever removed
    assert not set(plan.add + plan.change) & (set(present) - set(owned))  # never overwrite others
    assert not set(plan.add + plan.change + plan.keep) & publish_mod.WATCHER_IGNORED_NAMES
    again = plan_mirror(wanted, {n: wanted[n] for n in (*plan.add, *plan.change, *plan.keep)},
                        (present | set(plan.add + plan.change)) - set(plan.remove))
    assert not again.touches  # applying the plan converges


# --- hand-built releases -----------------------------------------------------------


def make_release(base: Path, rid: str, skills: dict[str, Files]) -> tuple[Path, Manifest]:
    """A release folder like stage_release makes one: read-only files, a manifest of tree ids."""
    root = base / "releases" / rid
    for name, files in skills.items():
        for rel, data in files.items():
            path = root / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(0o555 if rel.endswith(".sh") else 0o444)
    root.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(release=rid, commit="c" * 40, skills=tuple(
        SkillRecord(name=n, content_sha=tree_sha_of(root / n)) for n in sorted(skills)))
    return root, manifest


def skill(desc: str, **extra: bytes) -> Files:
    files = {"SKILL.md": f"---\nname: x\ndescription: {desc}\n---\nbody\n".encode()}
    files.update({k.replace("__", "/"): v for k, v in extra.items()})
    return files


def snapshot(root: Path) -> dict[str, bytes]:
    """Every regular file under root (markers and tmp excluded), path -> bytes."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith((MARKER_PREFIX, TMP_DIR)):
            continue
        if path.is_file():
            out[rel] = path.read_bytes()
    return out


def expected_view(skills: dict[str, Files], foreign: dict[str, bytes] | None = None) -> dict[str, bytes]:
    out = {f"{n}/{rel}": data for n, files in skills.items() for rel, data in files.items()
           if not publish_mod.is_watcher_ignored(n)}
    out.update(foreign or {})
    return dict(sorted(out.items()))


V1: dict[str, Files] = {
    "alpha": skill("Alpha one.", ref__notes_md=b"alpha notes v1\n"),
    "beta": skill("Beta one.", **{"scripts__run.sh": b"echo beta\n", "assets__old.txt": b"old\n"}),
    "gamma": skill("Gamma, about to go.", extra_md=b"gamma extra\n"),
}
V2: dict[str, Files] = {
    "alpha": V1["alpha"],
    "beta": skill("Beta two.", **{"scripts__run.sh": b"echo beta 2\n", "assets__new.txt": b"new\n"}),
    "delta": skill("Delta, new.", data__deep__file_txt=b"deep\n"),
}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, Path]:
    state = tmp_path / "state"
    state.mkdir()
    return {"state": state, "pub": tmp_path / "published", "base": state}


def mirror_of(env: dict[str, Path], marker: bool = True) -> Mirror:
    return Mirror(env["pub"], env["state"] / OWNERSHIP_FILE, marker)


class FsRecorder:
    """Records renames, unlinks, rmtrees and mkdirs under one root, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self.root = str(root.resolve())
        self.ops: list[tuple[str, str]] = []
        real_replace, real_unlink, real_rmtree, real_mkdir = os.replace, os.unlink, shutil.rmtree, os.mkdir

        def rel(p: Any) -> str | None:
            s = os.path.abspath(os.fspath(p))
            return os.path.relpath(s, self.root) if s.startswith(self.root + os.sep) else None

        def replace(src: Any, dst: Any, *a: Any, **k: Any) -> None:
            if (r := rel(dst)) is not None:
                self.ops.append(("replace", r))
            real_replace(src, dst, *a, **k)

        def unlink(path: Any, *a: Any, **k: Any) -> None:
            if k.get("dir_fd") is None and (r := rel(path)) is not None:
                self.ops.append(("unlink", r))
            real_unlink(path, *a, **k)

        def rmtree(path: Any, *a: Any, **k: Any) -> None:
            if (r := rel(path)) is not None and os.path.exists(path):
                self.ops.append(("rmtree", r))
            real_rmtree(path, *a, **k)

        def mkdir(path: Any, *a: Any, **k: Any) -> None:
            if (r := rel(path)) is not None:
                self.ops.append(("mkdir", r))
            real_mkdir(path, *a, **k)

        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "unlink", unlink)
        monkeypatch.setattr(shutil, "rmtree", rmtree)
        monkeypatch.setattr(os, "mkdir", mkdir)

    def of(self, skill_name: str) -> list[tuple[str, str]]:
        return [(op, p) for op, p in self.ops if p == skill_name or p.startswith(skill_name + "/")]


# --- mirror mode: content, order, ownership ------------------------------------------


def test_mirror_add_change_remove(env: dict[str, Path]) -> None:
    r1, m1 = make_release(env["base"], "r1", V1)
    first = mirror_of(env).sync(r1, m1)
    assert first.added == ("alpha", "beta", "gamma") and not first.changed and not first.removed
    assert snapshot(env["pub"]) == expected_view(V1)
    assert (env["pub"] / "beta/scripts/run.sh").stat().st_mode & 0o111
    assert not (env["pub"] / "alpha/SKILL.md").stat().st_mode & 0o111

    r2, m2 = make_release(env["base"], "r2", V2)
    second = mirror_of(env).sync(r2, m2)
    assert (second.added, second.changed, second.removed) == (("delta",), ("beta",), ("gamma",))
    assert snapshot(env["pub"]) == expected_view(V2)
    assert not (env["pub"] / "beta/assets/old.txt").exists() and not (env["pub"] / "gamma").exists()
    owned = json.loads((env["state"] / OWNERSHIP_FILE).read_text())
    assert owned["dir"] == str(env["pub"].resolve())
    assert owned["skills"] == m2.live_shas()
    for name in V2:  # the published tree is the release's tree, byte for byte and mode for mode
        assert tree_sha_of(env["pub"] / name) == tree_sha_of(r2 / name)


def test_supporting_files_land_before_skill_md_and_removed_skill_md_goes_first(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    r1, m1 = make_release(env["base"], "r1", V1)
    r2, m2 = make_release(env["base"], "r2", V2)
    mirror_of(env).sync(r1, m1)
    rec = FsRecorder(monkeypatch, env["pub"])
    mirror_of(env).sync(r2, m2)

    for name in ("beta", "delta"):  # changed and added
        ops = rec.of(name)
        assert ops[-1] == ("replace", f"{name}/SKILL.md"), ops
        assert sum(1 for op in ops if op[1] == f"{name}/SKILL.md") == 1
        placed = {p for op, p in ops if op == "replace"}
        expected = ({"beta/SKILL.md", "beta/scripts/run.sh", "beta/assets/new.txt"} if name == "beta"
                    else {f"delta/{rel}" for rel in V2["delta"]})
        assert placed == expected
    beta = rec.of("beta")
    assert beta.index(("unlink", "beta/assets/old.txt")) < beta.index(("replace", "beta/SKILL.md"))

    gamma = rec.of("gamma")
    assert gamma[0] == ("unlink", "gamma/SKILL.md"), gamma
    assert ("rmtree", "gamma") in gamma[1:]
    # removals run before any new content lands
    first_write = next(i for i, (op, p) in enumerate(rec.ops) if op == "replace")
    assert rec.ops.index(("unlink", "gamma/SKILL.md")) < first_write


def test_unchanged_files_of_a_changed_skill_are_not_rewritten(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = {"big": skill("One.", **{f"assets__{i}.bin": bytes([i]) * 100 for i in range(5)})}
    v2 = {"big": {**v1["big"], "SKILL.md": b"---\nname: big\ndescription: Two.\n---\n"}}
    r1, m1 = make_release(env["base"], "r1", v1)
    r2, m2 = make_release(env["base"], "r2", v2)
    mirror_of(env).sync(r1, m1)
    rec = FsRecorder(monkeypatch, env["pub"])
    mirror_of(env).sync(r2, m2)
    assert [op for op in rec.of("big") if op[0] == "replace"] == [("replace", "big/SKILL.md")]


def test_foreign_skills_in_a_shared_directory_are_never_touched(env: dict[str, Path]) -> None:
    pub = env["pub"]
    (pub / "mine-by-hand").mkdir(parents=True)
    (pub / "mine-by-hand/SKILL.md").write_bytes(b"hand-made\n")
    (pub / "gamma").mkdir()  # a user's own skill that happens to share a name with ours
    (pub / "gamma/SKILL.md").write_bytes(b"the user's gamma\n")
    (pub / "README.txt").write_bytes(b"loose file\n")
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in pub.rglob("*")}
    foreign = {"mine-by-hand/SKILL.md": b"hand-made\n", "gamma/SKILL.md": b"the user's gamma\n",
               "README.txt": b"loose file\n"}

    r1, m1 = make_release(env["base"], "r1", V1)
    out = mirror_of(env).sync(r1, m1)
    assert out.foreign == ("gamma",) and out.added == ("alpha", "beta")
    r2, m2 = make_release(env["base"], "r2", V2)
    mirror_of(env).sync(r2, m2)
    r3, m3 = make_release(env["base"], "r3", {})
    mirror_of(env).sync(r3, m3)  # everything of ours removed
    assert snapshot(pub) == dict(sorted(foreign.items()))
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in pub.rglob("*")
             if not p.name.startswith(MARKER_PREFIX)}
    assert after == before


def test_idempotent_rerun_touches_nothing(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    r1, m1 = make_release(env["base"], "r1", V1)
    first = mirror_of(env).sync(r1, m1)
    marker = first.marker
    assert marker is not None and (env["pub"] / marker).is_dir()
    owned_bytes = (env["state"] / OWNERSHIP_FILE).read_bytes()
    rec = FsRecorder(monkeypatch, env["pub"])
    again = mirror_of(env).sync(r1, m1)
    assert rec.ops == []
    assert (again.added, again.changed, again.removed, again.marker) == ((), (), (), None)
    assert (env["state"] / OWNERSHIP_FILE).read_bytes() == owned_bytes
    assert [p.name for p in env["pub"].iterdir() if p.name.startswith(MARKER_PREFIX)] == [marker]


def test_a_fresh_marker_after_each_change_and_only_one_kept(env: dict[str, Path]) -> None:
    r1, m1 = make_release(env["base"], "r1", V1)
    r2, m2 = make_release(env["base"], "r2", V2)
    a = mirror_of(env).sync(r1, m1).marker
    b = mirror_of(env).sync(r2, m2).marker
    assert a and b and a != b and b.startswith(f"{MARKER_PREFIX}r2-")
    assert [p.name for p in env["pub"].iterdir() if p.name.startswith(MARKER_PREFIX)] == [b]
    assert mirror_of(env, marker=False).sync(r1, m1).marker is None


def test_staging_happens_outside_the_published_tree(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A watcher on the published root sees skill files and the marker, never staging."""
    env["pub"].mkdir()
    r1, m1 = make_release(env["base"], "r1", V1)
    rec = FsRecorder(monkeypatch, env["pub"])
    mirror_of(env).sync(r1, m1)
    tops = {p.split("/")[0] for _op, p in rec.ops}
    assert {t for t in tops if not t.startswith(MARKER_PREFIX)} == set(V1)
    assert not (env["pub"] / TMP_DIR).exists() and not (env["state"] / STATE_TMP_DIR).exists()


def test_published_files_are_private_copies(env: dict[str, Path]) -> None:
    """OpenClaw refuses a SKILL.md with more than one link ("path must not be hardlinked")."""
    r1, m1 = make_release(env["base"], "r1", V1)
    r2, m2 = make_release(env["base"], "r2", V2)
    for rel, man in ((r1, m1), (r2, m2), (r2, m2)):
        mirror_of(env).sync(rel, man)
        files = [p for p in env["pub"].rglob("*") if p.is_file()]
        assert files and all(p.stat().st_nlink == 1 for p in files)
    # a mirror left by an older skillsyncd that hard-linked SKILL.md is repaired
    os.unlink(env["pub"] / "alpha/SKILL.md")
    os.link(r2 / "alpha/SKILL.md", env["pub"] / "alpha/SKILL.md")
    out = mirror_of(env).sync(r2, m2)
    assert out.changed == ("alpha",)
    assert (env["pub"] / "alpha/SKILL.md").stat().st_nlink == 1
    assert snapshot(env["pub"]) == expected_view(V2)


def test_type_changes_inside_a_skill(env: dict[str, Path]) -> None:
    v1 = {"t": skill("One.", docs=b"a file\n", tools__x_py=b"x\n")}
    v2 = {"t": skill("Two.", docs__index_md=b"now a folder\n", tools=b"now a file\n")}
    for rid, skills in (("r1", v1), ("r2", v2), ("r3", v1)):
        rel, man = make_release(env["base"], rid, skills)
        mirror_of(env).sync(rel, man)
        assert snapshot(env["pub"]) == expected_view(skills)


def test_watcher_ignored_skill_names_are_not_published(env: dict[str, Path]) -> None:
    skills = {"build": skill("Builds."), "dist": skill("Dists."),
              "ok": skill("Fine.", **{"dist__bundle.js": b"inner dist is content\n"})}
    rel, man = make_release(env["base"], "r1", skills)
    out = mirror_of(env).sync(rel, man)
    assert out.ignored == ("build", "dist") and out.added == ("ok",)
    assert sorted(p.name for p in env["pub"].iterdir() if not p.name.startswith(".")) == ["ok"]
    # a folder inside a skill is the skill's content: published as in git
    assert (env["pub"] / "ok/dist/bundle.js").read_bytes() == b"inner dist is content\n"
    # no published path runs through an ignored name at the levels a watcher must see
    for path in env["pub"].iterdir():
        assert not publish_mod.is_watcher_ignored(path.name)


def test_corrupt_ownership_file_is_a_clear_error(env: dict[str, Path]) -> None:
    (env["state"] / OWNERSHIP_FILE).write_text("{not json")
    rel, man = make_release(env["base"], "r1", V1)
    with pytest.raises(PublishError, match=r"corrupt.*remove it"):
        mirror_of(env).sync(rel, man)


def test_a_new_publish_dir_leaves_the_old_one_alone(env: dict[str, Path], tmp_path: Path) -> None:
    rel, man = make_release(env["base"], "r1", V1)
    mirror_of(env).sync(rel, man)
    old = snapshot(env["pub"])
    other = Mirror(tmp_path / "elsewhere", env["state"] / OWNERSHIP_FILE)
    out = other.sync(rel, man)
    assert out.added == ("alpha", "beta", "gamma") and not out.removed
    assert snapshot(env["pub"]) == old
    assert load_owned(env["state"] / OWNERSHIP_FILE, env["pub"]) == {}


# --- crash at any point ------------------------------------------------------------


class Crash(BaseException):
    """The process died: not an OSError, so nothing in publish catches it."""


@pytest.fixture
def crash_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], dict[str, int]]]:
    """Make the n-th file system operation, and every one after it, die."""
    names = [(os, "replace"), (os, "rename"), (os, "link"), (os, "unlink"), (os, "rmdir"),
             (os, "mkdir"), (os, "fsync"), (os, "open"), (shutil, "rmtree"), (shutil, "copy2")]
    real = {(mod.__name__, n): getattr(mod, n) for mod, n in names}
    state = {"n": -1, "seen": 0}

    def wrap(mod_name: str, name: str) -> Callable[..., Any]:
        fn = real[(mod_name, name)]

        def inner(*a: Any, **k: Any) -> Any:
            if state["n"] >= 0:
                if state["seen"] >= state["n"]:
                    raise Crash(f"{name} #{state['seen']}")
                state["seen"] += 1
            return fn(*a, **k)
        return inner

    for mod, n in names:
        monkeypatch.setattr(mod, n, wrap(mod.__name__, n))

    def arm(n: int) -> dict[str, int]:
        state["n"], state["seen"] = n, 0
        return state

    yield arm
    state["n"] = -1


def test_crash_at_every_operation_then_rerun_converges(
    env: dict[str, Path], crash_at: Callable[[int], dict[str, int]]
) -> None:
    r1, m1 = make_release(env["base"], "r1", V1)
    r2, m2 = make_release(env["base"], "r2", V2)
    foreign = env["pub"] / "theirs"
    foreign.mkdir(parents=True)
    (foreign / "SKILL.md").write_bytes(b"not ours\n")
    crashes = 0
    for n in range(10_000):
        shutil.rmtree(env["pub"] / "alpha", ignore_errors=True)
        for name in ("beta", "gamma", "delta"):
            shutil.rmtree(env["pub"] / name, ignore_errors=True)
        (env["state"] / OWNERSHIP_FILE).unlink(missing_ok=True)
        mirror_of(env).sync(r1, m1)
        crash_at(n)
        try:
            mirror_of(env).sync(r2, m2)
        except Crash:
            crashes += 1
        else:
            crash_at(-1)
            break
        crash_at(-1)
        # the next start publishes `current` again: which release it is depends on the crash
        target, manifest, view = (r2, m2, V2) if n % 2 == 0 else (r1, m1, V1)
        mirror_of(env).sync(target, manifest)
        assert snapshot(env["pub"]) == expected_view(view, {"theirs/SKILL.md": b"not ours\n"}), n
        owned = load_owned(env["state"] / OWNERSHIP_FILE, env["pub"])
        assert owned == manifest.live_shas(), n
    assert crashes > 20  # the scenario has many steps, and every one was cut


# --- real syncs: the Syncer, rollback, verify ------------------------------------------


def mirror_cfg(repo_path: str, tmp_path: Path, **extra: Any) -> Config:
    return load_config(flags={"repo": repo_path, "state_dir": str(tmp_path / "state"),
                              "publish_mode": "mirror", "publish_dir": str(tmp_path / "skills"),
                              **extra}, env={})


def published_skill_mds(cfg: Config) -> dict[str, str]:
    assert cfg.publish_dir is not None
    return {p.parent.name: p.read_text() for p in sorted(cfg.publish_dir.glob("*/SKILL.md"))}


def test_syncs_and_rollbacks_keep_the_mirror_equal_to_current(repo: Any, tmp_path: Path) -> None:
    repo.add_skill("alpha", description="Alpha v1.")
    repo.add_skill("beta", description="Beta v1.", extra_files={"ref/a.md": "a\n"})
    repo.commit("v1")
    cfg = mirror_cfg(str(repo.path), tmp_path)
    syncer = build_syncer(cfg)
    first = syncer.sync()
    assert first.status == "deployed"
    assert set(published_skill_mds(cfg)) == {"alpha", "beta"}
    assert verify_published(cfg, first.release) == []

    repo.add_skill("alpha", description="Alpha v2.")
    repo.remove("beta")
    repo.add_skill("gamma", description="Gamma v1.")
    repo.commit("v2")
    second = syncer.sync()
    view = published_skill_mds(cfg)
    assert set(view) == {"alpha", "gamma"} and "Alpha v2." in view["alpha"]
    assert verify_published(cfg, second.release) == []

    back = syncer.rollback()
    assert back.release == first.release
    view = published_skill_mds(cfg)
    assert set(view) == {"alpha", "beta"} and "Alpha v1." in view["alpha"]
    assert (cfg.publish_dir / "beta/ref/a.md").read_text() == "a\n"  # type: ignore[operator]
    assert verify_published(cfg, first.release) == []


def test_failed_health_check_rolls_the_mirror_back(repo: Any, tmp_path: Path) -> None:
    repo.add_skill("alpha", description="Alpha v1.")
    repo.commit("v1")
    cfg = mirror_cfg(str(repo.path), tmp_path)
    verdict = {"fail": False}

    def flaky(_cfg: Config, _release: str) -> list[str]:
        return ["gateway unhealthy"] if verdict["fail"] else []

    syncer = build_syncer(cfg, extra_checks=(flaky,))
    good = syncer.sync().release
    repo.add_skill("alpha", description="Alpha v2, bad.")
    repo.add_skill("extra", description="Comes with the bad commit.")
    repo.commit("v2")
    verdict["fail"] = True
    out = syncer.sync()
    assert out.status == "rolled_back"
    view = published_skill_mds(cfg)
    assert set(view) == {"alpha"} and "Alpha v1." in view["alpha"]
    assert verify_published(cfg, good) == []


def test_startup_publish_repairs_a_damaged_mirror(repo: Any, tmp_path: Path) -> None:
    repo.add_skill("alpha", description="Alpha.")
    repo.add_skill("beta", description="Beta.")
    repo.commit("v1")
    cfg = mirror_cfg(str(repo.path), tmp_path)
    release = build_syncer(cfg).sync().release
    assert cfg.publish_dir is not None
    shutil.rmtree(cfg.publish_dir / "beta")
    (cfg.publish_dir / "alpha/SKILL.md").unlink()
    assert verify_published(cfg, release) != []
    out = build_syncer(cfg).sync()  # a new process: publishes `current` once on start
    assert out.status == "no_change"
    assert set(published_skill_mds(cfg)) == {"alpha", "beta"}
    assert verify_published(cfg, release) == []


def test_verify_published_reports_tampering(repo: Any, tmp_path: Path) -> None:
    repo.add_skill("alpha", description="Alpha.")
    repo.commit("v1")
    cfg = mirror_cfg(str(repo.path), tmp_path)
    release = build_syncer(cfg).sync().release
    assert cfg.publish_dir is not None
    target = cfg.publish_dir / "alpha/SKILL.md"
    target.unlink()
    target.write_text("edited by hand\n")
    assert any("alpha: published content" in p for p in verify_published(cfg, release))
    shutil.rmtree(cfg.publish_dir / "alpha")
    assert verify_published(cfg, release) == [f"alpha: missing from {cfg.publish_dir}"]


def test_link_mode_publish_is_the_flip_itself(repo: Any, tmp_path: Path) -> None:
    repo.add_skill("alpha", description="Alpha.")
    repo.commit("v1")
    cfg = load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "state")}, env={})
    assert cfg.publish_mode == "link"
    release = build_syncer(cfg).sync().release
    assert release is not None
    out = publish(cfg, Releases(cfg.state_dir).dir(release))
    assert out.mode == "link" and out.path == str(cfg.current_link)
    assert verify_published(cfg, release) == []
    assert verify_published(cfg, "20000101T000000Z-000000000000") != []
    assert not (cfg.state_dir / OWNERSHIP_FILE).exists()


@pytest.mark.parametrize("inside", ["releases", "current", "mirror.git", "releases/x", "."])
def test_publish_dir_inside_skillsyncds_own_state_is_refused(tmp_path: Path, inside: str) -> None:
    with pytest.raises(ConfigError, match="publish_dir"):
        load_config(flags={"state_dir": str(tmp_path / "s"), "publish_mode": "mirror",
                           "publish_dir": str(tmp_path / "s" / inside)}, env={})
    ok = load_config(flags={"state_dir": str(tmp_path / "s"), "publish_mode": "mirror",
                            "publish_dir": str(tmp_path / "s" / "published")}, env={})
    assert ok.publish_dir == tmp_path / "s" / "published"


# --- releases whose skill folders are links into <state>/store ---------------------


def make_store_release(state: Path, rid: str, skills: dict[str, Files]) -> tuple[Path, Manifest]:
    """A release in the store layout: each version once in store/<tree id>, a relative link
    per skill in the release (a grouped skill's link sits in a real group folder)."""
    root = state / "releases" / rid
    root.mkdir(parents=True)
    records = []
    for name, files in sorted(skills.items()):
        scratch = state / "scratch" / name
        for rel, data in files.items():
            path = scratch / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(0o555 if rel.endswith(".sh") else 0o444)
        sha = tree_sha_of(scratch)
        version = state / "store" / sha
        if version.exists():
            shutil.rmtree(scratch)
        else:
            version.parent.mkdir(parents=True, exist_ok=True)
            os.rename(scratch, version)
        link = root / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(version, link.parent), link)
        records.append(SkillRecord(name=name, content_sha=sha))
    return root, Manifest(release=rid, commit="c" * 40, skills=tuple(records))


def test_mirror_reads_a_release_of_links_into_the_store(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = {**V1, "team/inner": skill("Grouped one.", ref__g_md=b"grouped\n")}
    v2 = {**V2, "team/inner": v1["team/inner"]}  # unchanged: the same store version
    r1, m1 = make_store_release(env["state"], "r1", v1)
    assert os.readlink(r1 / "alpha") == f"../../store/{m1.live_shas()['alpha']}"
    assert os.readlink(r1 / "team" / "inner").startswith("../../../store/")
    first = mirror_of(env).sync(r1, m1)
    assert first.added == ("alpha", "beta", "gamma", "team/inner")
    assert snapshot(env["pub"]) == expected_view(v1)

    r2, m2 = make_store_release(env["state"], "r2", v2)
    second = mirror_of(env).sync(r2, m2)
    assert (second.added, second.changed, second.removed) == (("delta",), ("beta",), ("gamma",))
    assert snapshot(env["pub"]) == expected_view(v2)
    for name, sha in m2.live_shas().items():  # real folders of private, single-link copies
        folder = env["pub"] / name
        assert not folder.is_symlink() and folder.is_dir() and tree_sha_of(folder) == sha
        for path in folder.rglob("*"):
            assert not path.is_symlink()
            assert path.is_dir() or path.stat().st_nlink == 1
    assert verify_published_dirs(env, m2) == []
    rec = FsRecorder(monkeypatch, env["pub"])
    again = mirror_of(env).sync(r2, m2)  # intact through the links: nothing to do
    assert rec.ops == [] and (again.added, again.changed, again.removed) == ((), (), ())


def verify_published_dirs(env: dict[str, Path], manifest: Manifest) -> list[str]:
    return [n for n, sha in manifest.live_shas().items() if tree_sha_of(env["pub"] / n) != sha]


def test_a_skill_link_leading_out_of_the_store_is_refused(env: dict[str, Path], tmp_path: Path) -> None:
    r1, m1 = make_store_release(env["state"], "r1", {"alpha": V1["alpha"]})
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(env["state"] / "store" / m1.live_shas()["alpha"], elsewhere)
    (r1 / "alpha").unlink()
    os.symlink(elsewhere, r1 / "alpha")
    with pytest.raises(PublishError, match="does not lead to a skill version"):
        mirror_of(env).sync(r1, m1)
    assert not any(p.name == "alpha" for p in env["pub"].iterdir())


def test_kept_skills_are_compared_once_per_mirror(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deploy of one skill among thousands does not stat every kept skill again: this
    Mirror (a Syncer keeps one for its life) published them. A new one (a restart after a
    power cut) and drift repair compare them all."""
    r1, m1 = make_release(env["base"], "r1", V1)
    r2, m2 = make_release(env["base"], "r2", V2)
    mirror = mirror_of(env)
    mirror.sync(r1, m1)
    compared: list[str] = []
    real = publish_mod._intact

    def counting(src: Path, dest: Path) -> bool:
        compared.append(dest.name)
        return real(src, dest)

    monkeypatch.setattr(publish_mod, "_intact", counting)
    mirror.sync(r2, m2)
    assert compared == []  # every kept skill was published through this Mirror
    target = env["pub"] / "alpha" / "SKILL.md"
    os.chmod(target, 0o644)
    target.write_bytes(b"edited by hand")
    assert mirror.sync(r2, m2).changed == ()  # trusted by the Mirror that published it...
    out = mirror.sync(r2, m2, recheck=True)  # ...until drift repair asks
    assert out.changed == ("alpha",) and "alpha" in compared
    assert tree_sha_of(env["pub"] / "alpha") == m2.live_shas()["alpha"]
    target.chmod(0o644)
    target.write_bytes(b"edited again")
    compared.clear()
    restarted = mirror_of(env)  # a new process: everything is compared, the edit repaired
    assert restarted.sync(r2, m2).changed == ("alpha",)
    assert sorted(compared) == sorted(n for n in m2.live_shas() if (env["pub"] / n).is_dir())
    assert mirror_of(env).sync(r2, m2).changed == ()  # and a second new one finds it intact




def test_a_syncer_publishes_through_one_mirror_for_its_life(
    repo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's Syncer trusts the skills it published itself; a new Syncer (a restart)
    compares every kept skill with the release again."""
    repo.add_skill("alpha", description="Alpha.")
    repo.add_skill("beta", description="Beta.")
    repo.commit("v1")
    cfg = mirror_cfg(str(repo.path), tmp_path)
    syncer = build_syncer(cfg)
    assert syncer.sync().status == "deployed"
    compared: list[str] = []
    real = publish_mod._intact

    def counting(src: Path, dest: Path) -> bool:
        compared.append(dest.name)
        return real(src, dest)

    monkeypatch.setattr(publish_mod, "_intact", counting)
    repo.add_skill("beta", description="Beta two.")
    repo.commit("v2")
    assert syncer.sync().status == "deployed"
    assert compared == []  # alpha was kept, and this Syncer's Mirror published it
    repo.add_skill("beta", description="Beta three.")
    repo.commit("v3")
    assert build_syncer(cfg).sync().status == "deployed"
    assert "alpha" in compared
