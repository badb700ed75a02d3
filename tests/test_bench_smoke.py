"""Smoke run of bench/run.py at its smallest size, and the verdict logic of bench/report.py.

No timing is asserted (machines are noisy; the figures live in bench/results.json).
What is asserted are facts the benchmark must establish on any machine: a
no-change poll moves no objects, every change reached ``current`` (and the
published folder in mirror mode), the disk and pack figures exist, and every
target of the issue is judged and rendered into the README block.
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
def results(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "results.json"
    rc = bench.main(["--sizes", "20", "--runs", "1", "--change-runs", "1", "--churn", "4",
                     "--idle-window", "0.5", "--no-profile", "--workdir", str(tmp / "work"),
                     "--out", str(out), "--quiet"])
    assert rc == 0
    return json.loads(out.read_text())


def test_smallest_run_reports_every_scenario(results: dict[str, Any]) -> None:
    assert {"cpu", "cores", "python", "git", "dulwich", "date"} <= results["machine"].keys()
    assert results["settings"]["transport"] == "git://"
    [size] = results["sizes"]
    assert size["skills"] == 20
    assert size["files"] > 20  # some skills carry extra files

    poll = size["no_change_poll"]
    assert poll["objects_fetched"] == 0
    assert poll["fetches"] == 0
    assert poll["git_ls_remote_s"]["min"] > 0 and poll["ratio"] > 0

    for key in ("one_changed_sighup", "one_changed_webhook", "one_percent_changed", "mirror_one_changed"):
        stats = size[key]["to_current_s"]
        assert 0 < stats["min"] <= stats["median"] <= stats["max"], key
    assert size["one_changed_sighup"]["git_s"]["min"] > 0
    assert size["mirror_one_changed"]["to_published_s"]["min"] > 0  # the folder got the new bytes

    assert size["rss"]["idle_bytes"] > 0
    assert size["rss"]["peak_first_sync_bytes"] >= size["rss"]["idle_bytes"] // 2


def test_disk_and_packs_follow_the_deploys(results: dict[str, Any]) -> None:
    [size] = results["sizes"]
    disk = size["disk"]
    assert disk["releases_after_five"] == 5  # keep_releases: the first and 5 more, the oldest pruned
    assert disk["one_bytes"] < disk["five_bytes"]
    packs = size["mirror_packs"]
    # first sync + 1 SIGHUP + 1 webhook + 1 one-percent + 4 churn deploys, each measured once
    assert packs["syncs"] == 1 + 3 + 4 == len(packs["series"])
    assert packs["final_count"] >= 1 and packs["final_bytes"] > 0


def test_every_target_is_judged_and_rendered(results: dict[str, Any], report: ModuleType) -> None:
    judged = results["targets"]
    assert all(t["met"] in (True, False) for t in judged), judged  # the one size stands for both
    block = report.readme_block(results)
    for t in judged:
        assert t["target"] in block
    doc = f"intro\n{report.BEGIN}\nold table\n{report.END}\nafter\n"
    new = report.rewrite_between(doc, block)
    assert "old table" not in new and new.startswith("intro\n") and new.endswith(f"{report.END}\nafter\n")
    assert report.rewrite_between(new, block) == new  # regenerating is idempotent


def test_targets_flip_at_their_thresholds(results: dict[str, Any], report: ModuleType) -> None:
    doc = copy.deepcopy(results)
    [size] = doc["sizes"]
    size["one_changed_sighup"]["to_current_s"]["median"] = 0.5
    size["first_sync"]["ratio"] = 2.01
    size["rss"]["idle_bytes"] = 45 * report.MB
    size["no_change_poll"]["ratio"] = 1.0
    size["no_change_poll"]["objects_fetched"] = 3
    verdicts = {t.name.split(" (")[0]: t.met for t in report.targets(doc)}
    assert verdicts["1 changed skill: SIGHUP to `current` moved <= 0.5 s"] is True
    assert verdicts["first sync <= 2x `git clone --depth 1` + checkout"] is False
    assert verdicts["idle RSS <= 45 MB"] is True
    assert verdicts["no-change poll <= 1.2x `git ls-remote`, 0 objects fetched"] is False


def test_disk_blocks_counts_a_hard_link_once(bench: ModuleType, tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "f").write_bytes(b"x" * 10_000)
    alone = bench.disk_blocks([a])
    (b / "f").hardlink_to(a / "f")
    both = bench.disk_blocks([a, b])
    assert both - alone == bench.disk_blocks([b]) - bench.disk_blocks([b / "f"])  # only b's folder


def test_summary_is_median_min_max(bench: ModuleType) -> None:
    s = bench.summary([3.0, 1.0, 2.0, 10.0])
    assert (s["median"], s["min"], s["max"]) == (2.5, 1.0, 10.0)
    assert s["runs"] == [3.0, 1.0, 2.0, 10.0]
