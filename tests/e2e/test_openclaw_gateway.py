"""The real OpenClaw gateway hot-reloads what skillsyncd publishes, without a restart.

OpenClaw caches its ``skills.status`` answer and refreshes it only when its
skills watcher fires; the watcher is armed by the first call. So each test
calls it once, syncs a commit that adds, changes and removes skills, and
expects the new set within 2 s, then rolls back and expects the old set.
Both publish modes docs/publish.md recommends for OpenClaw are covered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gitserver import free_port
from openclaw_peer import Gateway, Install

from skillsyncd.config import load_config
from skillsyncd.sync.assembly import build_syncer

pytestmark = pytest.mark.e2e

DEADLINE = 2.0
HARDLINK_REFUSED = "path must not be hardlinked"


@pytest.fixture
def gateway(openclaw: Install, tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def start(extra_dirs: list[str], **kw: Any) -> Gateway:
        gw = Gateway(openclaw, tmp_path / f"gw{len(started)}", free_port(), extra_dirs, **kw)
        started.append(gw)
        gw.wait_ready()
        return gw

    yield start
    for gw in started:
        gw.stop()


def wait_for(gw: Gateway, under: Path, want: dict[str, str], t0: float) -> float:
    """Seconds from t0 until skills.status shows exactly ``want``; fails after DEADLINE."""
    seen: dict[str, str | None] = {}
    while time.monotonic() - t0 <= DEADLINE:
        seen = gw.skills(under)
        if seen == want:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"skills.status did not show {want} within {DEADLINE} s; last saw {seen}\n"
                         f"gateway log tail:\n{gw.log_tail(2000)}")


V1 = {"alpha": "Alpha v1.", "beta": "Beta v1.", "gamma": "Gamma v1."}
V2 = {"alpha": "Alpha v2.", "gamma": "Gamma v1.", "delta": "Delta v2."}


@pytest.mark.parametrize("mode", ["mirror", "link"])
def test_gateway_sees_add_change_remove_and_rollback(
    mode: str, repo: Any, tmp_path: Path, gateway: Callable[..., Gateway]
) -> None:
    for name, description in V1.items():
        repo.add_skill(name, description=description, extra_files={"ref/notes.md": f"{name}\n"})
    repo.commit("v1")
    flags: dict[str, Any] = {"repo": str(repo.path), "state_dir": str(tmp_path / "state")}
    if mode == "mirror":
        flags.update(publish_mode="mirror", publish_dir=str(tmp_path / "published"))
    cfg = load_config(flags=flags, env={})
    syncer = build_syncer(cfg)
    first = syncer.sync()
    assert first.status == "deployed"
    # link mode: the link itself is the root (never a path through it)
    extra = cfg.publish_dir if mode == "mirror" else cfg.current_link
    assert extra is not None
    gw = gateway([str(extra)])
    ours = cfg.publish_dir if mode == "mirror" else cfg.state_dir  # skills.status baseDir prefix
    assert ours is not None

    assert gw.skills(ours) == V1  # the first call arms the gateway's watcher

    repo.add_skill("alpha", description=V2["alpha"])
    repo.remove("beta")
    repo.add_skill("delta", description=V2["delta"])
    repo.commit("v2: change alpha, remove beta, add delta")
    t0 = time.monotonic()
    assert syncer.sync().status == "deployed"
    # OpenClaw refuses any SKILL.md with more than one link (HARDLINK_REFUSED): a skill
    # version's files are never hard-linked anywhere.
    took = wait_for(gw, ours, V2, t0)
    print(f"openclaw {mode}: v2 visible {took:.2f} s after the sync began")

    t0 = time.monotonic()
    assert syncer.rollback(to=first.release).status == "manual_rollback"
    took = wait_for(gw, ours, V1, t0)
    print(f"openclaw {mode}: rollback visible {took:.2f} s after it began")
    assert gw.proc.poll() is None  # the same gateway process all along: no restart
    assert HARDLINK_REFUSED not in gw.log_tail(50_000)


OUTSIDE = "symlink prefix resolves outside the root ancestry"


def test_symlinked_skill_folders_read_through_current_are_refused_even_when_trusted(
    repo: Any, tmp_path: Path, gateway: Callable[..., Gateway]
) -> None:
    """Why link mode gives each release real skill folders.

    A mirror-mode release is one symlink per skill into store/. A gateway that
    reads it through the `current` link refuses every skill, even with
    ``skills.load.allowSymlinkTargets`` trusting the store: the path crosses the
    `current` link, whose target is no ancestor of the skill's real folder.
    """
    repo.add_skill("alpha", description="Alpha v1.")
    repo.commit("v1")
    cfg = load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "state"),
                             "publish_mode": "mirror", "publish_dir": str(tmp_path / "pub")}, env={})
    assert build_syncer(cfg).sync().status == "deployed"
    assert (cfg.current_link / "alpha").is_symlink()
    gw = gateway([str(cfg.current_link)], allow_symlink_targets=[str(cfg.state_dir / "store")])
    assert gw.skills(cfg.state_dir) == {}
    deadline = time.monotonic() + 30
    while OUTSIDE not in gw.log_tail(200_000):
        assert time.monotonic() < deadline, f"no {OUTSIDE!r} in the gateway log:\n{gw.log_tail(3000)}"
        time.sleep(0.1)


def test_mirror_into_the_managed_dir_overrides_bundled_and_spares_the_users_skills(
    repo: Any, tmp_path: Path, gateway: Callable[..., Gateway]
) -> None:
    """Publishing into $OPENCLAW_STATE_DIR/skills: ours beat bundled skills of the same name,
    a skill the user put there by hand is never touched, and changes hot-reload there too.
    The same name in an extra dir loses to the bundled skill (extra < bundled < managed)."""
    managed = tmp_path / "gw0" / "openclaw-state" / "skills"  # the first gateway's state dir
    handmade = managed / "handmade" / "SKILL.md"
    handmade.parent.mkdir(parents=True)
    handmade.write_text("---\nname: handmade\ndescription: By hand.\n---\nMine.\n")
    extra = tmp_path / "extra" / "weather"
    extra.mkdir(parents=True)
    (extra / "SKILL.md").write_text("---\nname: weather\ndescription: Ours, in an extra dir.\n---\n")

    repo.add_skill("github", description="Ours v1.")
    repo.add_skill("mine", description="Mine v1.")
    repo.commit("v1")
    cfg = load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "state"),
                             "publish_mode": "mirror", "publish_dir": str(managed)}, env={})
    syncer = build_syncer(cfg)
    assert syncer.sync().status == "deployed"
    gw = gateway([str(tmp_path / "extra")])
    assert gw.skills(managed) == {"github": "Ours v1.", "mine": "Mine v1.", "handmade": "By hand."}
    report = gw.call("skills.status")
    by_name = {s["name"]: s for s in report["skills"]}
    assert report["managedSkillsDir"] == str(managed)
    assert by_name["github"]["source"] == "openclaw-managed"  # managed beats bundled
    assert by_name["weather"]["source"] == "openclaw-bundled"  # bundled beats extra dirs

    before = handmade.stat()
    repo.add_skill("github", description="Ours v2.")
    repo.remove("mine")
    repo.commit("v2")
    t0 = time.monotonic()
    assert syncer.sync().status == "deployed"
    wait_for(gw, managed, {"github": "Ours v2.", "handmade": "By hand."}, t0)
    after = handmade.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize("where", ["link", "mirror-named-skills", "mirror-elsewhere"])
def test_the_gateway_loads_grouped_skills_as_deep_as_config_says(
    where: str, repo: Any, tmp_path: Path, gateway: Callable[..., Gateway]
) -> None:
    """The depth rule behind Config.gateway_depth, seen in the real gateway.

    skillsyncd refuses a skill_depth deeper than this in run and --once; the release
    here is built with depth 3 through the Syncer directly, to see what the gateway does.
    """
    for path, description in (("top", "One down."), ("g/mid", "Two down."), ("g/h/deep", "Three down.")):
        repo.write(f"{path}/SKILL.md", f"---\nname: {path.rsplit('/', 1)[-1]}\n"
                                       f"description: {description}\n---\nbody\n")
    repo.commit("skills one, two and three folder levels down")
    flags: dict[str, Any] = {"repo": str(repo.path), "state_dir": str(tmp_path / "state"),
                             "skill_depth": 3}
    if where != "link":
        folder = "skills" if where == "mirror-named-skills" else "pub"
        flags.update(publish_mode="mirror", publish_dir=str(tmp_path / "extra" / folder))
    cfg = load_config(flags=flags, env={})
    assert build_syncer(cfg).sync().skills_live == 3
    levels, root = cfg.gateway_depth()
    assert levels == (6 if where == "mirror-named-skills" else 2)
    gw = gateway([str(root)])
    loaded = set(gw.skills(cfg.publish_dir if where != "link" else cfg.state_dir))
    expected = {"top", "mid", "deep"} if levels >= 3 else {"top", "mid"}
    assert loaded == expected, (where, levels, sorted(loaded), gw.log_tail(2000))
