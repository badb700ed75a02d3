"""Drift repair: real edits in the published folder are noticed and undone within seconds,
foreign folders are reported and left alone, and a real chokidar watcher (as the gateway
uses) sees the repaired state. Times are liveness bounds for a loaded machine; the
measured figures are in docs/publish.md."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for
from structlog.testing import capture_logs
from test_publish_watchers import mirror_cfg, node, skill_md, watchers  # noqa: F401  (fixtures)

from skillsyncd.config import Config
from skillsyncd.publish.drift import DriftWatcher, classify
from skillsyncd.release.releases import Releases
from skillsyncd.release.verify import tree_sha_of
from skillsyncd.sync.assembly import build_syncer

LIVENESS = 20.0  # seconds: a bound that load cannot trip, not a speed target


def test_classify_splits_owned_skills_and_foreign_entries() -> None:
    owned = ["pdf", "data/scraper"]
    touched, foreign = classify(
        ["pdf/SKILL.md", "pdf", "data/scraper/x.md", "data", "stray/a.md", ".skillsyncd-reload-1", "new"],
        owned, lambda p: p.startswith(".skillsyncd-"))
    assert touched == {"pdf", "data/scraper"} and foreign == {"stray", "new"}
    # the published folder itself (an attribute change of it, e.g. chown -R) is nobody's drift
    assert classify([".", "pdf"], owned, lambda p: False) == ({"pdf"}, set())


def armed(watcher: DriftWatcher, root: Path) -> None:
    """Wait until the watcher reports a change of ours: from then on it sees every edit."""
    for n in range(200):
        seen = watcher.batches
        canary = root / f".skillsyncd-reload-canary-{n}"
        canary.mkdir()
        canary.rmdir()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:
            if watcher.batches > seen:
                return
            time.sleep(0.02)
    raise AssertionError("the drift watcher never reported a change")


@pytest.fixture
def deployed(repo: Any, tmp_path: Path) -> Iterator[tuple[Config, Path, list[str]]]:
    for name in ("alpha", "beta"):
        repo.write(f"{name}/SKILL.md", skill_md(name, f"{name} skill."))
        repo.write(f"{name}/scripts/run.sh", "#!/bin/sh\necho hi\n")
    repo.commit("two skills")
    cfg = dataclasses.replace(mirror_cfg(repo, tmp_path), drift="repair")
    assert build_syncer(cfg).sync().status == "deployed"
    counted: list[str] = []
    watcher = DriftWatcher(cfg, counted.append)
    watcher.start()
    armed(watcher, cfg.publish_dir or Path())
    yield cfg, Releases(cfg.state_dir).dir(Releases(cfg.state_dir).current() or ""), counted
    watcher.stop()


def intact(cfg: Config, release: Path, name: str) -> bool:
    folder = (cfg.publish_dir or Path("/nonexistent")) / name
    return folder.is_dir() and tree_sha_of(folder) == tree_sha_of(release / name) and all(
        (folder / p.relative_to(release / name)).stat().st_mode == p.stat().st_mode
        for p in (release / name).rglob("*") if p.is_file())


def repaired(logs: list[dict[str, Any]], name: str, seen: int) -> Callable[[], bool]:
    """True once more than ``seen`` ``drift_repaired`` events name ``name``.

    The event is logged after the repair's mirror pass ends, so the next edit cannot be
    swallowed by a pass still running (that race lost a drift count under load).
    """
    return lambda: sum(name in e["skills"] for e in list(logs)
                       if e["event"] == "drift_repaired") > seen


def test_edits_deletes_and_chmods_are_repaired(deployed: tuple[Config, Path, list[str]]) -> None:
    cfg, release, counted = deployed
    published = cfg.publish_dir
    assert published is not None
    with capture_logs() as logs:
        md = published / "alpha" / "SKILL.md"
        md.chmod(0o644)
        md.write_text("---\nname: alpha\ndescription: hijacked\n---\n")
        wait_for(repaired(logs, "alpha", 0), LIVENESS, "repair of an edited SKILL.md")
        assert intact(cfg, release, "alpha")
        shutil.rmtree(published / "beta")
        wait_for(repaired(logs, "beta", 0), LIVENESS, "repair of a deleted skill")
        assert intact(cfg, release, "beta")
        os.chmod(published / "alpha" / "scripts" / "run.sh", 0o777)
        wait_for(repaired(logs, "alpha", 1), LIVENESS, "repair of a chmod")
        assert intact(cfg, release, "alpha")
        (published / "alpha" / "notes.txt").write_text("debris")
        wait_for(repaired(logs, "alpha", 2), LIVENESS, "removal of debris in a skill")
        assert not (published / "alpha" / "notes.txt").exists()
    detected = [e for e in logs if e["event"] == "drift_detected"]
    assert {s for e in detected for s in e["skills"]} == {"alpha", "beta"}
    assert counted.count("skill") >= 4


def test_foreign_folder_is_reported_and_never_touched(deployed: tuple[Config, Path, list[str]]) -> None:
    cfg, _, counted = deployed
    published = cfg.publish_dir
    assert published is not None
    with capture_logs() as logs:
        stray = published / "hand-made"
        stray.mkdir()
        (stray / "SKILL.md").write_text("---\ndescription: mine\n---\n")
        wait_for(lambda: any(e["event"] == "drift_detected" and "hand-made" in e["foreign"]
                             for e in list(logs)), LIVENESS, "the foreign folder's report")
    assert (stray / "SKILL.md").read_text() == "---\ndescription: mine\n---\n"
    assert counted == ["foreign"]


def test_a_chown_to_the_same_owner_is_not_drift(deployed: tuple[Config, Path, list[str]]) -> None:
    """The image's entrypoint runs ``chown -R`` over /data at every gateway start: the
    published folder itself and every skill get an attribute event, and nothing changed."""
    cfg, release, counted = deployed
    published = cfg.publish_dir
    assert published is not None
    with capture_logs() as logs:
        for path in (published, *sorted(published.rglob("*"))):
            st = path.lstat()
            os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
        # A real foreign folder afterwards: its report proves the chown's events were judged.
        (published / "after-chown").mkdir()
        wait_for(lambda: any(e["event"] == "drift_detected" and "after-chown" in e["foreign"]
                             for e in list(logs)), LIVENESS, "the foreign folder's report")
    detected = [e for e in logs if e["event"] == "drift_detected"]
    assert [(e["skills"], e["foreign"]) for e in detected] == [([], ["after-chown"])]
    assert not [e for e in logs if e["event"] == "drift_repaired"]
    assert counted == ["foreign"] and intact(cfg, release, "alpha") and intact(cfg, release, "beta")


def test_report_mode_reports_and_leaves_the_edit(repo: Any, tmp_path: Path) -> None:
    repo.write("alpha/SKILL.md", skill_md("alpha", "alpha skill."))
    repo.commit("one")
    cfg = dataclasses.replace(mirror_cfg(repo, tmp_path), drift="report")
    assert build_syncer(cfg).sync().status == "deployed"
    watcher = DriftWatcher(cfg)
    found = watcher.check(["alpha/SKILL.md"])  # nothing changed yet: no drift
    assert not found
    md = (cfg.publish_dir or Path()) / "alpha" / "SKILL.md"
    md.chmod(0o644)
    md.write_text("edited by hand\n")
    found = watcher.check(["alpha/SKILL.md"])
    assert found.damaged == ("alpha",) and md.read_text() == "edited by hand\n"


def test_the_gateways_watcher_sees_the_repaired_state(
    repo: Any, tmp_path: Path, watchers: Callable[..., Any]  # noqa: F811
) -> None:
    """The edit reaches a chokidar watcher configured as the gateway's, then the repair does.

    The repair restores the file's bytes, size and mtime exactly, so a watcher that never
    saw the edit has nothing to report (and nothing wrong to show). To prove the repair
    reaches it, the edit is made first and seen, then the check runs (as the watch would).
    """
    repo.write("alpha/SKILL.md", skill_md("alpha", "alpha skill."))
    repo.commit("one")
    cfg = dataclasses.replace(mirror_cfg(repo, tmp_path), drift="repair")
    assert build_syncer(cfg).sync().status == "deployed"
    published = cfg.publish_dir
    assert published is not None
    release = Releases(cfg.state_dir).dir(Releases(cfg.state_dir).current() or "")
    good = (release / "alpha" / "SKILL.md").read_text()
    w = watchers(published)
    md = published / "alpha" / "SKILL.md"
    md.chmod(0o644)
    # A watcher under load can attach its folder watch just after "ready" and miss a first
    # write; the edit is repeated (each one a new content) until the watcher has seen one.
    seen: list[Any] = []
    for attempt in range(5):
        md.write_text(f"---\nname: alpha\ndescription: hijacked {attempt}\n---\n")
        seen = w.until(lambda evs: any("hijacked" in str(e.get("content")) for e in evs),
                       time.monotonic() + LIVENESS / 4)
        if any("hijacked" in str(e.get("content")) for e in seen):
            break
    assert any("hijacked" in str(e.get("content")) for e in seen), seen
    assert DriftWatcher(cfg).check(["alpha/SKILL.md"]).damaged == ("alpha",)
    events = w.until(lambda evs: any(e.get("path") == "alpha/SKILL.md" and e.get("content") == good
                                     for e in evs), time.monotonic() + LIVENESS)
    assert any(e.get("content") == good for e in events if e.get("path") == "alpha/SKILL.md"), events


def test_drift_is_judged_and_repaired_through_a_link_into_the_store(repo: Any, tmp_path: Path) -> None:
    repo.write("alpha/SKILL.md", skill_md("alpha", "alpha skill."))
    repo.write("alpha/scripts/run.sh", "#!/bin/sh\necho hi\n")
    repo.commit("one")
    cfg = dataclasses.replace(mirror_cfg(repo, tmp_path), drift="repair")
    assert build_syncer(cfg).sync().status == "deployed"
    releases = Releases(cfg.state_dir)
    release = releases.dir(releases.current() or "")
    assert (release / "alpha").is_symlink()  # a mirror-mode release: one link per skill into store/
    watcher = DriftWatcher(cfg)
    assert not watcher.check(["alpha/SKILL.md"])  # the copy matches the store version
    md = (cfg.publish_dir or Path()) / "alpha" / "SKILL.md"
    md.chmod(0o644)
    md.write_text("edited by hand\n")
    assert watcher.check(["alpha/SKILL.md"]).damaged == ("alpha",)
    assert intact(cfg, release, "alpha") and not md.is_symlink() and md.stat().st_nlink == 1


def test_classify_splits_paths_by_owner_for_thousands_of_skills() -> None:
    """A first publish of 10,000 skills reports 20,000 paths: each is judged by its own prefixes."""

    owned = {f"s{i:05d}" for i in range(10_000)} | {"tools/pdf", "tools/deep/x"}
    paths = [f"s{i:05d}/SKILL.md" for i in range(10_000)]
    paths += [f"s{i:05d}/ref/a.md" for i in range(0, 10_000, 7)]
    paths += ["tools", "tools/pdf/SKILL.md", "tools/deep", "tools/deep/x/run.sh", "stray/file.txt",
              "tools/other/SKILL.md", ".skillsyncd-reload-1", "s1"]
    touched, foreign = classify(paths, owned, lambda p: p.startswith(".skillsyncd-reload-"))
    assert touched == {f"s{i:05d}" for i in range(10_000)} | {"tools/pdf", "tools/deep/x"}
    assert foreign == {"stray", "tools", "s1"}  # 'tools/other' is nobody's: its top folder is named
