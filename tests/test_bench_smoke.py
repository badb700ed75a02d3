"""Smoke run of bench/run.py at its smallest size: the harness works end to end.

No timing is asserted (machines are noisy; the figures live in bench/results.json).
What is asserted are facts the benchmark must establish on any machine: a
no-change poll moves no objects and costs one ref exchange, every change became
visible under ``current``, and every figure the report prints is present.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("skillsyncd_bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _load_bench()


def test_smallest_run_reports_every_scenario(bench: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    rc = bench.main(["--sizes", "20", "--runs", "1", "--change-runs", "1", "--idle-window", "0.5",
                     "--workdir", str(tmp_path / "work"), "--out", str(out), "--quiet"])
    assert rc == 0
    results = json.loads(out.read_text())

    assert {"cpu", "cores", "python", "git", "dulwich", "date"} <= results["machine"].keys()
    [size] = results["sizes"]
    assert size["skills"] == 20
    assert size["files"] > 20  # some skills carry extra files

    poll = size["no_change_poll"]
    assert poll["objects_fetched"] == 0
    assert poll["fetch_requests"] == 0
    # protocol v2: the capability advertisement, then one ls-refs command; nothing else
    assert poll["requests_per_probe"] == ["GET info/refs", "POST git-upload-pack"]
    assert poll["response_bytes"]["median"] > 0
    assert poll["cpu_s_per_hour_at_60s"] >= 0

    for key in ("one_changed", "one_percent_changed"):
        scenario = size[key]
        assert scenario["skills_changed"] == 1
        for figure in ("visible_s", "sync_total_s", "git_s"):
            stats = scenario[figure]
            assert stats["min"] <= stats["median"] <= stats["max"]
            assert stats["min"] > 0

        # only what changed crosses the wire: far less than the first sync's full pack
        assert 0 < scenario["bytes_from_server"]["max"] < size["first_sync"]["bytes_from_server"]["min"] / 2

    first = size["first_sync"]
    assert first["skillsyncd_s"]["median"] > 0 and first["git_s"]["median"] > 0
    assert size["rss"]["idle_bytes"] > 0
    assert size["rss"]["peak_first_sync_bytes"] >= size["rss"]["idle_bytes"] // 2

    disk = size["disk"]
    # first sync + two changes: three releases, the later ones mostly hard links
    assert disk["releases"] == 3
    assert disk["one_bytes"] < disk["all_bytes"] < 3 * disk["one_bytes"]

    names = {t["target"] for t in results["targets"]}
    assert any("no-change poll" in n for n in names)
    assert any("idle RSS" in n for n in names)


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
