"""Benchmarks: skillsyncd against git's own CLI on the same machine, in the same run.

Generated repositories of skills are served over ``git://`` (``git daemon``, the
test peer in tests/gitserver.py) on 127.0.0.1. Every skillsyncd figure comes
from a real process: ``skillsyncd --once`` for first syncs, ``skillsyncd run``
(the daemon, poked with SIGHUP or a signed webhook push) for polls, changes,
CPU, RSS and disk; a second daemon in mirror mode for the published folder.
The baselines are plain ``git`` commands doing the same job.

What is observed is the on-disk contract, not the release layout: the
``current`` link naming the new commit, the published folder's bytes, ``du`` of
the state dir minus the mirror. So the harness measures a new layout unchanged.

    .venv/bin/python bench/run.py --out bench/results.json --readme   # make bench
    .venv/bin/python bench/run.py --quick                              # a look in ~30 s
    .venv/bin/python bench/run.py --readme                             # README from results.json only

Benchmarks are not tests: nothing here fails on a slow figure. The targets of
the release-store issue are evaluated (bench/report.py) and printed, met or not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(BENCH))

import report  # noqa: E402
from gitserver import run_git  # noqa: E402
from harness import PYTHON, SKILLSYNCD, TIMING, force_rmtree, run_checked, skillsyncd_env  # noqa: E402
from scenarios import MODES, Bench, Plan, mode_env  # noqa: E402

DEFAULT_SIZES = (100, 1_000, 10_000)
DEFAULT_SCALE_SIZES = (30_000,)  # only the rows that scale: first sync, 1 skill changed, RSS
README = ROOT / "README.md"
DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS = BENCH / "results.json"


# --------------------------------------------------------------------------- profile


PHASES = ("recover", "_probe", "_fetch", "_stage", "validate_one", "stage_release", "find_skills",
          "go_live", "publish", "readback_check", "verify_release", "_record", "prune")


def _stats_by_name(prof: Path) -> dict[str, float]:
    stats = pstats.Stats(str(prof))
    out: dict[str, float] = {}
    for (filename, _, func), (_, _, _, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "skillsyncd" in filename and func in PHASES:
            out[func] = max(out.get(func, 0.0), cumtime)
    return out


def profile_phases(prof: Path) -> dict[str, float]:
    """Cumulative seconds of the pipeline's named steps (those present in this code)."""
    return {k: round(v, 3) for k, v in sorted(_stats_by_name(prof).items(), key=lambda kv: -kv[1])}


def profile_text(prof: Path, phases: dict[str, float]) -> str:
    import io

    buf = io.StringIO()
    buf.write(f"cProfile of one `skillsyncd --once` first sync; pipeline steps (cumulative s): {phases}\n\n")
    stats = pstats.Stats(str(prof), stream=buf)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(30)
    return buf.getvalue().replace(str(ROOT) + "/", "")


# --------------------------------------------------------------------------- results


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import dulwich

    fs = subprocess.run(["df", "-T", tempfile.gettempdir()], capture_output=True, text=True).stdout
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "git": run_git("--version").strip().removeprefix("git version "),
        "dulwich": ".".join(map(str, dulwich.__version__)),
        "filesystem": fs.splitlines()[-1].split()[1] if fs.strip() else "unknown",
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def code_info(label: str | None) -> dict[str, Any]:
    """Which skillsyncd the child processes import (PYTHONPATH may point at another copy)."""
    where = subprocess.run([*SKILLSYNCD[:1], "-c", "import skillsyncd; print(skillsyncd.__file__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    top = Path(where).resolve().parent.parent
    commit = subprocess.run(["git", "-C", str(top), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(top), "status", "--porcelain", "--", "skillsyncd"],
                           capture_output=True, text=True)
    return {"label": label or "", "path": str(top), "commit": commit.stdout.strip() or "unknown",
            "dirty": bool(dirty.stdout.strip())}


def profiler(size: int) -> Callable[[str, Path, str], dict[str, Any]]:
    """One more ``--once`` under cProfile, in the default (link) mode only: the shares are what count."""

    def profile(mode: str, workdir: Path, url: str) -> dict[str, Any]:
        if mode != MODES[0]:
            return {}
        out_dir = BENCH / "profiles"
        out_dir.mkdir(parents=True, exist_ok=True)
        prof = out_dir / f"first-sync-{size}.prof"
        state, publish = workdir / "once-profiled", workdir / "once-profiled-pub"
        publish.mkdir()
        done = run_checked([str(PYTHON), "-m", "cProfile", "-o", str(prof), "-m", "skillsyncd", "--once"],
                           skillsyncd_env(url, state, **mode_env(mode, publish)),
                           workdir / "once-profiled.log", "skillsyncd --once under cProfile")
        force_rmtree(state)
        force_rmtree(publish)
        phases = profile_phases(prof)
        (out_dir / f"first-sync-{size}.txt").write_text(profile_text(prof, phases))
        return {"file": str(prof.relative_to(ROOT)), "mode": mode, "wall_s": round(done.wall, 3),
                "phases_s": phases}

    return profile


@dataclass(frozen=True)
class Options:
    sizes: tuple[int, ...]
    scale_sizes: tuple[int, ...]
    runs: int
    change_runs: int
    churn: int
    idle_window: float
    profile: bool

    def plan(self, n: int) -> Plan:
        """Sizes named only for scaling run one first sync per mode and the 1-skill change."""
        if n in self.scale_sizes and n not in self.sizes:
            return Plan(runs=0, change_runs=self.change_runs, churn=0, idle_window=0.0, scale_only=True)
        return Plan(runs=self.runs, change_runs=self.change_runs, churn=self.churn,
                    idle_window=self.idle_window)


QUICK = Options(sizes=(100,), scale_sizes=(300,), runs=1, change_runs=1, churn=3, idle_window=0.5,
                profile=False)


def run_bench(opts: Options, workdir: Path | None, label: str | None, say: Callable[[str], None],
              checkpoint: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every size in turn, both publish modes each; the results document (machine, code, sizes, targets)."""
    started = time.perf_counter()
    with _workdir(workdir) as base:
        results: dict[str, Any] = {
            "machine": machine(),
            "code": code_info(label),
            "command": "make bench  # .venv/bin/python bench/run.py --out bench/results.json --readme",
            "settings": {"runs": opts.runs, "change_runs": opts.change_runs, "churn": opts.churn,
                         "idle_window_s": opts.idle_window, "interval_s": TIMING.interval,
                         "transport": "git://", "modes": list(MODES), "scale_sizes": list(opts.scale_sizes),
                         "quick": opts == QUICK},
            "sizes": [],
        }
        for n in sorted(set(opts.sizes) | set(opts.scale_sizes)):
            work = base / f"n{n}"
            work.mkdir()
            profile = profiler(n) if opts.profile and n == max(opts.sizes) else None
            bench = Bench(n, opts.plan(n), work, profile, say)
            results["sizes"].append(bench.run())
            if checkpoint is not None:  # a run stopped later still leaves the sizes it finished
                checkpoint(results)
            force_rmtree(work)
    results["targets"] = [t.as_dict() for t in report.targets(results)]
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    return results


def rewrite_docs(results: dict[str, Any]) -> list[Path]:
    """Regenerate the README's and docs/benchmarks.md's generated blocks from ``results``."""
    block = report.readme_block(results)
    done = []
    for path in (README, DOCS):
        text = path.read_text()
        if report.BEGIN in text:
            path.write_text(report.rewrite_between(text, block))
            done.append(path)
    return done


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true",
                        help="100 skills (and 300 for scaling), one run of each, both modes: about a minute")
    parser.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")),
                        default=DEFAULT_SIZES, help="comma-separated skill counts")
    parser.add_argument("--scale-sizes", type=lambda s: tuple(int(x) for x in s.split(",") if x),
                        default=DEFAULT_SCALE_SIZES,
                        help="sizes that run only the scaling rows (first sync, 1 skill changed, RSS)")
    parser.add_argument("--runs", type=int, default=2, help="first-sync runs (no-change polls: at least 5)")
    parser.add_argument("--change-runs", type=int, default=3, help="runs of each change scenario")
    parser.add_argument("--churn", type=int, default=4, help="extra one-skill deploys (mirror pack growth)")
    parser.add_argument("--idle-window", type=float, default=10.0, help="seconds of idle CPU sampling")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile'd first sync")
    parser.add_argument("--label", help="names the code measured (e.g. '0.2.0-dev before the store')")
    parser.add_argument("--readme", action="store_true",
                        help="rewrite the README's table from the results (with no --sizes/--quick run: "
                             "from bench/results.json alone)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results read by a --readme-only call")
    parser.add_argument("--workdir", type=Path, help="keep the work here (default: a temp dir, removed)")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def options(args: argparse.Namespace) -> Options:
    if args.quick:
        return QUICK
    return Options(sizes=tuple(args.sizes), scale_sizes=tuple(args.scale_sizes), runs=args.runs,
                   change_runs=args.change_runs, churn=args.churn,
                   idle_window=args.idle_window, profile=not args.no_profile)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    readme_only = args.readme and not any(a.startswith(("--sizes", "--scale-sizes", "--quick", "--out"))
                                          for a in argv_list)
    if readme_only:
        results = json.loads(args.results.read_text())
        for path in rewrite_docs(results):
            print(f"rewrote {path.relative_to(ROOT)} from {args.results}")
        return 0

    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    partial = args.out.with_name(args.out.stem + ".partial.json") if args.out else None

    def checkpoint(doc: dict[str, Any]) -> None:
        assert partial is not None
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({**doc, "partial": True}, indent=2) + "\n")

    results = run_bench(options(args), args.workdir, args.label, say, checkpoint if partial else None)
    if not args.quiet:
        print(report.table(results))
        print()
        for t in results["targets"]:
            print(f"{report.verdict(t['met']).upper():12s}  {t['target']}: {t['value']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        if partial is not None:
            partial.unlink(missing_ok=True)
    if args.readme:
        for path in rewrite_docs(results):
            say(f"rewrote {path.relative_to(ROOT)}")
    return 0


@contextlib.contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="skillsyncd-bench-"))
    try:
        yield tmp
    finally:
        force_rmtree(tmp)


if __name__ == "__main__":
    sys.exit(main())
