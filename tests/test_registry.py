"""registry: the reference consumer, against real syncs in both publish modes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polling
import pytest
from registry import SkillRegistry, Snapshot, describe, load_skills

from skillsyncd.config import Config, load_config
from skillsyncd.release.releases import Releases
from skillsyncd.sync.assembly import build_syncer

DEADLINE = 2.0


def test_load_skills_reads_one_level_and_skips_non_skills(tmp_path: Path) -> None:
    root = tmp_path / "pub"
    (root / "alpha").mkdir(parents=True)
    (root / "alpha/SKILL.md").write_text("---\nname: Alpha Tool\ndescription: Does A.\n---\nBody\n")
    (root / "broken").mkdir()
    (root / "broken/SKILL.md").write_text("---\nname: [unclosed\n---\n")
    (root / "notes").mkdir()  # no SKILL.md: not a skill
    (root / "notes/README.md").write_text("x")
    (root / ".skillsyncd-reload-r1-abc").mkdir()  # a marker
    (root / "group/deep").mkdir(parents=True)  # two levels down is not loaded
    (root / "group/deep/SKILL.md").write_text("---\nname: deep\ndescription: d\n---\n")
    (root / "loose.md").write_text("not a folder")
    snap = load_skills(root)
    assert sorted(snap.skills) == ["alpha", "broken"]
    alpha = snap.skills["alpha"]
    assert (alpha.name, alpha.description, alpha.folder) == ("Alpha Tool", "Does A.", "alpha")
    assert alpha.path == root.resolve() / "alpha" and alpha.content.endswith("Body\n")
    assert (snap.skills["broken"].name, snap.skills["broken"].description) == ("broken", None)
    assert snap.release is None and snap.names() == ["Alpha Tool", "broken"]
    assert load_skills(tmp_path / "absent").skills == {}


def test_describe_tolerates_missing_fields() -> None:
    assert describe("no frontmatter at all\n", "f") == ("f", None)
    assert describe("---\ndescription: only this\n---\n", "f") == ("f", "only this")


def wait_for(registry: SkillRegistry, ok: Callable[[Snapshot], bool], t0: float) -> Snapshot:
    """The registry's snapshot once ``ok`` holds, through the suite's one polling helper."""
    polling.wait_for(lambda: ok(registry.snapshot), timeout=max(0.0, t0 + DEADLINE - time.monotonic()),
                     what=f"the registry to catch up within {DEADLINE} s")
    return registry.snapshot


def descriptions(snap: Snapshot) -> dict[str, str | None]:
    return {n: s.description for n, s in snap.skills.items()}


@pytest.fixture
def running() -> Iterator[Callable[..., SkillRegistry]]:
    regs: list[SkillRegistry] = []

    def start(root: Path, **kw: Any) -> SkillRegistry:
        reg = SkillRegistry(root, **kw)
        reg.start()
        regs.append(reg)
        assert reg.armed.wait(15), "the registry's watcher never armed"
        return reg

    yield start
    for reg in regs:
        reg.stop()


def config(mode: str, repo: Any, tmp_path: Path) -> tuple[Config, Path]:
    flags: dict[str, Any] = {"repo": str(repo.path), "state_dir": str(tmp_path / "state")}
    if mode == "mirror":
        flags.update(publish_mode="mirror", publish_dir=str(tmp_path / "skills"))
    cfg = load_config(flags=flags, env={})
    return cfg, (cfg.publish_dir if mode == "mirror" else cfg.current_link)  # type: ignore[return-value]


@pytest.mark.parametrize("mode", ["link", "mirror"])
def test_registry_follows_syncs_and_rollbacks(
    mode: str, repo: Any, tmp_path: Path, running: Callable[..., SkillRegistry]
) -> None:
    repo.add_skill("alpha", description="Alpha v1.")
    repo.add_skill("beta", description="Beta v1.")
    repo.commit("v1")
    cfg, root = config(mode, repo, tmp_path)
    syncer = build_syncer(cfg)
    first = syncer.sync().release
    changes: list[tuple[Snapshot, Snapshot]] = []
    registry = running(root, on_change=lambda old, new: changes.append((old, new)))
    assert descriptions(registry.snapshot) == {"alpha": "Alpha v1.", "beta": "Beta v1."}


    def commit_v2() -> Any:
        repo.add_skill("alpha", description="Alpha v2.")
        repo.remove("beta")
        repo.add_skill("gamma", description="Gamma v2.")
        repo.commit("v2")
        return syncer.sync()

    def commit_v3() -> Any:
        repo.add_skill("gamma", description="Gamma v3.")
        repo.commit("v3")
        return syncer.sync()

    steps: list[tuple[str, Callable[[], Any], dict[str, str]]] = [
        ("v2", commit_v2, {"alpha": "Alpha v2.", "gamma": "Gamma v2."}),
        ("v3", commit_v3, {"alpha": "Alpha v2.", "gamma": "Gamma v3."}),  # a second flip
        ("rollback", lambda: syncer.rollback(to=first), {"alpha": "Alpha v1.", "beta": "Beta v1."}),
    ]
    for label, action, want in steps:
        t0 = time.monotonic()
        action()
        snap = wait_for(registry, lambda s, w=want: descriptions(s) == w, t0)  # type: ignore[misc]
        current = Releases(cfg.state_dir).current()
        if mode == "link":
            assert snap.release == current, label
            assert snap.skills["alpha"].path == Releases(cfg.state_dir).dir(current).resolve() / "alpha"
        else:
            assert snap.release is None and snap.source == root.resolve()
        for skill in snap.skills.values():  # content read at that moment is whole
            assert skill.content == (skill.path / "SKILL.md").read_text()
    assert changes and changes[-1][1] == registry.snapshot


def test_registry_started_before_the_first_publish(
    repo: Any, tmp_path: Path, running: Callable[..., SkillRegistry]
) -> None:
    repo.add_skill("alpha", description="Alpha.")
    repo.commit("v1")
    cfg, root = config("mirror", repo, tmp_path)
    cfg.state_dir.mkdir(parents=True)
    registry = running(root)
    assert registry.skills == {}
    t0 = time.monotonic()
    build_syncer(cfg).sync()
    wait_for(registry, lambda s: descriptions(s) == {"alpha": "Alpha."}, t0)


def test_reload_from_many_threads_is_consistent(tmp_path: Path) -> None:
    root = tmp_path / "pub"
    (root / "a").mkdir(parents=True)
    (root / "a/SKILL.md").write_text("---\nname: a\ndescription: one\n---\n")
    seen: list[int] = []
    reg = SkillRegistry(root, on_change=lambda _o, _n: seen.append(1))
    (root / "a/SKILL.md").write_text("---\nname: a\ndescription: two\n---\n")
    threads = [threading.Thread(target=reg.reload) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reg.skills["a"].description == "two" and len(seen) == 1 and reg.reloads == 1
