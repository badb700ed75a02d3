"""Smoke run of bench/run.py at its smallest sizes, and the verdict logic of bench/report.py.

No timing is asserted (machines are noisy; the figures live in bench/results.json).
What is asserted are facts the benchmark must establish on any machine: every
scenario ran in both publish modes (link and mirror), a no-change poll moves no
objects, every change reached ``current`` (and the published folder in mirror
mode), the disk, pack and retention figures exist, and every target of the issue
is judged per mode (met / not met) and rendered into the README block.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str) -> ModuleType:
    sys.path.insert(0, str(ROOT / "bench"))  # run.py imports report.py as a sibling
    spec = importlib.util.spec_from_file_location(f"skillsyncd_bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _load("run")


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return _load("report")


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    return _load("harness")


@pytest.fixture(scope="module")
def results(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One full size (20 skills) and one scaling size (40 skills), both publish modes."""
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "results.json"
    rc = bench.main(["--sizes", "20", "--scale-sizes", "40", "--runs", "1", "--change-runs", "1",
                     "--churn", "4", "--idle-window", "0.5", "--no-profile", "--workdir", str(tmp / "work"),
                     "--out", str(out), "--quiet"])
    assert rc == 0
    return json.loads(out.read_text())


MODES = ("link", "mirror")
SCENARIOS = ("one_changed_sighup", "one_changed_webhook", "one_percent_changed")


def test_every_scenario_runs_in_both_modes(results: dict[str, Any]) -> None:
    assert {"cpu", "cores", "python", "git", "dulwich", "date"} <= results["machine"].keys()
    assert results["settings"]["transport"] == "git://"
    assert results["settings"]["modes"] == list(MODES)
    full, scale = results["sizes"]
    assert (full["skills"], full["scale_only"], scale["skills"], scale["scale_only"]) == (20, False, 40, True)
    assert full["files"] > 20  # some skills carry extra files
    assert full["git"]["clone_s"]["min"] > 0
    for mode in MODES:
        m = full["modes"][mode]
        assert m["first_sync"]["skillsyncd_s"]["min"] > 0 and m["first_sync"]["ratio"] > 0
        poll = m["no_change_poll"]
        assert poll["objects_fetched"] == 0 and poll["fetches"] == 0, mode
        assert poll["git_ls_remote_s"]["min"] > 0 and poll["ratio"] > 0
        for key in SCENARIOS:
            stats = m[key]["to_current_s"]
            assert 0 < stats["min"] <= stats["median"] <= stats["max"], (mode, key)
        assert m["one_changed_sighup"]["git_s"]["min"] > 0 and m["one_changed_sighup"]["ratio_to_git"] > 0
        assert m["rss"]["idle_bytes"] > 0
        assert m["rss"]["peak_first_sync_bytes"] >= m["rss"]["idle_bytes"] // 2
        # the scaling size runs the 1-skill change, RSS, disk and retention, not the polls
        s = scale["modes"][mode]
        assert s["one_changed_sighup"]["to_current_s"]["min"] > 0 and "no_change_poll" not in s
        assert s["disk"]["releases_after_five"] == 5 and s["retention"]["deploys_pruning"] >= 1
    # only mirror mode has a published folder, and it got the new bytes after `current` moved
    assert full["modes"]["mirror"]["one_changed_webhook"]["published_after_current_s"]["min"] >= 0
    assert full["modes"]["link"]["one_changed_webhook"]["published_after_current_s"]["runs"] == []


def test_disk_packs_and_retention_follow_the_deploys(results: dict[str, Any]) -> None:
    full = results["sizes"][0]
    for mode in MODES:
        m = full["modes"][mode]
        disk = m["disk"]
        assert disk["releases_after_five"] == 5, mode  # keep_releases 5: the first and 5 more, oldest gone
        assert disk["one_bytes"] < disk["five_bytes"]
        packs = m["mirror_packs"]
        # first sync + 1 SIGHUP + 1 webhook + 1 one-percent + 4 churn deploys, each measured once
        assert packs["syncs"] == 1 + 3 + 4 == len(packs["series"])
        assert packs["final_count"] >= 1 and packs["final_bytes"] > 0
        # 7 deploys over keep_releases 5: the 5th, 6th and 7th each pruned the oldest release
        assert m["retention"]["deploys_pruning"] == 3, mode
        assert len(m["retention"]["seconds"]["runs"]) == 3


KEYS = ("one_changed", "one_changed_scaling", "disk", "retention_scaling", "mirror_packs", "first_sync",
        "rss_idle", "rss_peak", "no_change_poll")


def _verdicts(doc: dict[str, Any], report: ModuleType) -> dict[str, bool | None]:
    return {t.key: t.met for t in report.targets(doc)}


def test_every_target_is_judged_in_both_modes_and_rendered(results: dict[str, Any],
                                                           report: ModuleType) -> None:
    judged = results["targets"]
    assert all(t["met"] in (True, False) for t in judged), judged  # 20 and 40 skills stand for 10k and 30k
    keys = [t["key"] for t in judged]
    wanted = [f"{m}.{k}" for m in MODES for k in KEYS] + ["mirror.published_after_current"]
    assert sorted(keys) == sorted(wanted)
    assert all(t["target"].startswith(f"[{t['key'].split('.')[0]}] ") for t in judged)  # the mode, named
    block = report.readme_block(results)
    for t in judged:
        assert f"**{report.verdict(t['met'])}**: {t['target']}: {t['value']}" in block
    for mode in MODES:
        assert f"| **{mode}**: 1 skill changed: SIGHUP to `current` moved |" in block
        assert f"- {mode}: 1 skill changed at 40 skills / 20 skills:" in block  # the scaling ratio
    assert "QUICK run" not in block  # only `--quick` runs are labelled so
    doc = f"intro\n{report.BEGIN}\nold table\n{report.END}\nafter\n"
    new = report.rewrite_between(doc, block)
    assert "old table" not in new and new.startswith("intro\n") and new.endswith(f"{report.END}\nafter\n")
    assert report.rewrite_between(new, block) == new  # regenerating is idempotent


def test_targets_flip_at_their_thresholds(results: dict[str, Any], report: ModuleType) -> None:
    doc = copy.deepcopy(results)
    full, scale = doc["sizes"]
    link, mirror = full["modes"]["link"], full["modes"]["mirror"]
    for key in ("one_changed_sighup", "one_changed_webhook"):
        link[key]["to_current_s"]["median"] = 0.5
        mirror[key]["to_current_s"]["median"] = 0.2
    mirror["one_changed_webhook"]["to_current_s"]["median"] = 0.51  # one trigger over decides
    scale["modes"]["link"]["one_changed_sighup"]["to_current_s"]["median"] = 0.75  # 1.5x link's 0.5
    link["first_sync"]["ratio"] = 2.01
    mirror["first_sync"]["ratio"] = 2.0
    for mode in (link, mirror, scale["modes"]["link"], scale["modes"]["mirror"]):
        mode["rss"]["idle_bytes"] = mode["rss"]["idle_end_bytes"] = 40 * report.MB
    scale["modes"]["mirror"]["rss"]["idle_end_bytes"] = 40 * report.MB + 1  # any size, after any sync
    link["disk"]["ratio"], mirror["disk"]["ratio"] = 1.2, 1.21
    link["no_change_poll"]["ratio"] = 1.0
    link["no_change_poll"]["objects_fetched"] = 3
    v = _verdicts(doc, report)
    assert v["link.one_changed"] is True
    assert v["mirror.one_changed"] is False
    assert v["link.one_changed_scaling"] is True
    assert v["link.first_sync"] is False
    assert v["mirror.first_sync"] is True
    assert v["link.rss_idle"] is True
    assert v["mirror.rss_idle"] is False
    assert v["link.disk"] is True
    assert v["mirror.disk"] is False
    assert v["link.no_change_poll"] is False


def test_a_missing_size_is_not_measured_not_met(results: dict[str, Any], report: ModuleType) -> None:
    doc = copy.deepcopy(results)
    doc["sizes"] = doc["sizes"][:1]  # no second size: nothing to scale against
    v = _verdicts(doc, report)
    assert v["link.one_changed_scaling"] is None and v["mirror.one_changed_scaling"] is None
    assert v["link.retention_scaling"] is None and v["mirror.retention_scaling"] is None
    assert v["link.first_sync"] in (True, False)  # what one size measures is still judged


def test_disk_blocks_counts_a_hard_link_once(harness: ModuleType, tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "f").write_bytes(b"x" * 10_000)
    alone = harness.disk_blocks([a])
    (b / "f").hardlink_to(a / "f")
    both = harness.disk_blocks([a, b])
    assert both - alone == harness.disk_blocks([b]) - harness.disk_blocks([b / "f"])  # only b's folder


def test_summary_is_median_min_max(harness: ModuleType) -> None:
    s = harness.summary([3.0, 1.0, 2.0, 10.0])
    assert (s["median"], s["min"], s["max"]) == (2.5, 1.0, 10.0)
    assert s["runs"] == [3.0, 1.0, 2.0, 10.0]
