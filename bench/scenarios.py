"""The scenarios of one repository size, run once per publish mode (link, the default; mirror).

Every row that depends on how a release is published is measured in both modes
in the same run, against the same served repository and the same git baselines,
so the ratios (skillsyncd / git CLI, link / mirror) come from one machine state.
"""

from __future__ import annotations

import random
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gitserver import GitDaemonServer, GitRoot, RepoBuilder, run_git
from harness import (
    SKILLSYNCD,
    TIMING,
    Daemon,
    GitSyncBaseline,
    change_skills,
    current_commit,
    disk_blocks,
    force_rmtree,
    generate_repo,
    git_first_sync,
    ls_remote,
    mirror_packs,
    mirror_size,
    objects_in,
    proc_cpu,
    run_checked,
    skillsyncd_env,
    state_disk,
    summary,
    watch,
)

MODES = ("link", "mirror")  # link is the default publish mode
FIVE = 5  # deploys after the first before the disk is measured again (keep_releases is 5)


@dataclass(frozen=True)
class Plan:
    """How much of one size runs; ``scale_only`` sizes run only the rows that scale (30k)."""

    runs: int
    change_runs: int
    churn: int
    idle_window: float
    scale_only: bool = False


@dataclass
class Change:
    """Edits the repository one commit at a time (a skill picked at random each time)."""

    repo: RepoBuilder
    size: int
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    revision: int = 1

    def next(self, count: int = 1) -> tuple[str, dict[str, bytes]]:
        picks = sorted(self.rng.sample(range(self.size), count))
        self.revision += 1
        return change_skills(self.repo, picks, self.revision)


def mode_env(mode: str, publish: Path) -> dict[str, str]:
    """The environment of one publish mode (mirror needs a real folder to publish into)."""
    if mode == "mirror":
        return {"SKILLSYNC_PUBLISH_MODE": "mirror", "SKILLSYNC_PUBLISH_DIR": str(publish)}
    return {"SKILLSYNC_PUBLISH_MODE": "link"}


@dataclass
class Bench:
    """One size: a generated repository served over git://, first syncs, then a daemon per mode."""

    size: int
    plan: Plan
    workdir: Path
    profile: Callable[[str, Path, str], dict[str, Any]] | None
    say: Callable[[str], None]

    def run(self) -> dict[str, Any]:
        n = self.size
        t0 = time.perf_counter()
        repo = generate_repo(self.workdir / "src" / f"skills-{n}", n)
        gen = time.perf_counter() - t0
        files = run_git("ls-files", cwd=repo.path).count("\n")
        server = GitDaemonServer(GitRoot(self.workdir / "served"))
        try:
            url = server.url_for(repo)
            self.say(f"[{n}] repository: {files} files, generated in {gen:.1f}s; serving {url}")
            result: dict[str, Any] = {"skills": n, "files": files, "scale_only": self.plan.scale_only,
                                      "repo_bytes": disk_blocks([repo.git_dir / "objects"])}
            # a scaling size's first sync is the daemon's own (start-up to deployed), not --once
            clone, firsts = self.first_syncs(url) if not self.plan.scale_only else ([], {})
            result["git"] = {"clone_s": summary(clone)}
            change = Change(repo, n)
            result["modes"] = {}
            for mode in MODES:
                daemon = ModeDaemon(self, mode, url, change).run()
                result["modes"][mode] = {**({"first_sync": firsts[mode]} if mode in firsts else {}), **daemon}
        finally:
            server.close()
        return result

    def first_syncs(self, url: str) -> tuple[list[float], dict[str, dict[str, Any]]]:
        """``--once`` in each mode and ``git clone --depth 1`` interleaved, run by run."""
        clone: list[float] = []
        walls: dict[str, list[float]] = {m: [] for m in MODES}
        peaks: dict[str, list[float]] = {m: [] for m in MODES}
        cpus: dict[str, list[float]] = {m: [] for m in MODES}
        for r in range(self.plan.runs):
            for mode in MODES:
                state, publish = self.workdir / f"once-{mode}-{r}", self.workdir / f"once-{mode}-{r}-pub"
                publish.mkdir()
                env = skillsyncd_env(url, state, **mode_env(mode, publish))
                done = run_checked([*SKILLSYNCD, "--once"], env, self.workdir / f"once-{mode}-{r}.log",
                                   f"skillsyncd --once ({mode})")
                if current_commit(state) is None:
                    raise RuntimeError(f"skillsyncd --once ({mode}) exited 0 without a live release")
                walls[mode].append(done.wall)
                peaks[mode].append(done.maxrss)
                cpus[mode].append(done.cpu)
                force_rmtree(state)
                force_rmtree(publish)
            clone.append(git_first_sync(url, self.workdir / f"git-first-{r}"))
            shutil.rmtree(self.workdir / f"git-first-{r}", ignore_errors=True)
        git_med = statistics.median(clone)
        out: dict[str, dict[str, Any]] = {}
        for mode in MODES:
            out[mode] = {"skillsyncd_s": summary(walls[mode]),
                         "ratio": round(statistics.median(walls[mode]) / git_med, 3),
                         "once_peak_rss_bytes": summary(peaks[mode], 0), "once_cpu_s": summary(cpus[mode])}
            profiled = self.profile(mode, self.workdir, url) if self.profile is not None else {}
            if profiled:
                out[mode]["profile"] = profiled
            self.say(f"[{self.size}] first sync ({mode}): {statistics.median(walls[mode]):.2f}s, "
                     f"git clone {git_med:.2f}s ({out[mode]['ratio']:.2f}x)")
        return clone, out


class ModeDaemon:
    """One long-lived ``skillsyncd run`` in one publish mode: RSS, polls, changes, disk, retention."""

    def __init__(self, bench: Bench, mode: str, url: str, change: Change) -> None:
        self.bench, self.mode, self.url, self.change = bench, mode, url, change
        self.plan = bench.plan
        self.state = bench.workdir / f"{mode}-state"
        self.publish = bench.workdir / f"{mode}-published"
        self.tag = f"[{bench.size} {mode}]"

    def run(self) -> dict[str, Any]:
        self.publish.mkdir()
        daemon = Daemon(self.url, self.state, self.bench.workdir / f"{self.mode}-daemon.log",
                        **mode_env(self.mode, self.publish))
        track = Tracker(self.state)
        out: dict[str, Any] = {}
        try:
            start = time.perf_counter()
            daemon.wait_event("sync_finished", status="deployed")
            startup = time.perf_counter() - start
            peak = daemon.rss()["VmHWM"]
            daemon.wait_event("next_sync")
            idle = settled_rss(daemon)
            track.first()
            if not self.plan.scale_only:
                out["no_change_poll"] = self.no_change(daemon, self.idle_rate(daemon))
            out["one_changed_sighup"] = self.changes(daemon, "sighup", 1, track, with_git=True)
            if self.plan.scale_only:  # enough deploys for the disk of 5 kept releases and one retention
                while track.deploys < FIVE:
                    self.deploy(daemon, "webhook", 1, track)
            else:
                out["one_changed_webhook"] = self.changes(daemon, "webhook", 1, track)
                out["one_percent_changed"] = self.changes(daemon, "webhook", max(1, self.bench.size // 100),
                                                          track)
                for _ in range(max(self.plan.churn, FIVE - track.deploys)):
                    self.deploy(daemon, "webhook", 1, track)
            out["rss"] = {"startup_first_sync_s": round(startup, 3), "peak_first_sync_bytes": peak,
                          "idle_bytes": idle, "idle_end_bytes": settled_rss(daemon),
                          "peak_end_bytes": daemon.rss()["VmHWM"]}
            out["disk"] = track.disk()
            out["mirror_packs"] = track.packs()
            out["retention"] = retention(daemon.history)
            self.bench.say(f"{self.tag} rss {out['rss']}, disk {out['disk']}, retention {out['retention']}")
        finally:
            daemon.stop()
            force_rmtree(self.state)
            force_rmtree(self.publish)
        return out

    def idle_rate(self, daemon: Daemon) -> float:
        """CPU seconds per second over a window with no sync: what the idle loop costs."""
        cpu0, w0 = proc_cpu(daemon.pid), time.perf_counter()
        time.sleep(self.plan.idle_window)
        return (proc_cpu(daemon.pid) - cpu0) / (time.perf_counter() - w0)

    def no_change(self, daemon: Daemon, idle_rate: float) -> dict[str, Any]:
        """SIGHUPs with nothing new, each followed by a ``git ls-remote`` of the same ref."""
        durations, cpu, git, git_cpu = [], [], [], []
        packs_before = mirror_packs(self.state)
        mark = len(daemon.history)
        for _ in range(max(5, self.plan.runs)):
            daemon.wait_for_token()
            daemon.skip()
            c0 = proc_cpu(daemon.pid)
            daemon.sighup()
            ev = daemon.wait_event("sync_finished")
            if ev.get("status") != "no_change":
                raise RuntimeError(f"expected a no-change poll, got {ev}")
            daemon.wait_event("next_sync")
            cpu.append(proc_cpu(daemon.pid) - c0)
            durations.append(float(ev["duration"]))
            done = ls_remote(self.url)
            git.append(done.wall)
            git_cpu.append(done.cpu)
        fetches = sum(1 for ev in daemon.history[mark:] if ev.get("event") == "fetched")
        per_poll_cpu = sum(cpu) / len(cpu)  # /proc counts in 10 ms ticks: average, not median
        git_per_cpu = sum(git_cpu) / len(git_cpu)
        cpu_hour = idle_rate * 3600 + per_poll_cpu * 3600 / TIMING.interval
        ratio = statistics.median(durations) / statistics.median(git)
        self.bench.say(f"{self.tag} no-change poll: {statistics.median(durations) * 1000:.1f} ms, "
                       f"ls-remote {statistics.median(git) * 1000:.1f} ms ({ratio:.2f}x), "
                       f"CPU {per_poll_cpu * 1000:.0f} ms vs {git_per_cpu * 1000:.0f} ms")
        return {"duration_s": summary(durations), "git_ls_remote_s": summary(git), "ratio": round(ratio, 3),
                "fetches": fetches, "objects_fetched": objects_in(self.state, packs_before),
                "cpu_per_poll_s": summary(cpu), "cpu_per_poll_mean_s": round(per_poll_cpu, 4),
                "git_ls_remote_cpu_s": summary(git_cpu), "git_ls_remote_cpu_mean_s": round(git_per_cpu, 4),
                "cpu_ratio": round(per_poll_cpu / git_per_cpu, 3) if git_per_cpu > 0 else None,
                "idle_cpu_s_per_s": round(idle_rate, 6), "cpu_s_per_hour_at_60s": round(cpu_hour, 2)}

    def changes(self, daemon: Daemon, how: str, count: int, track: Tracker,
                with_git: bool = False) -> dict[str, Any]:
        """``change_runs`` commits of ``count`` skills, each triggered by ``how``; git-sync's way too."""
        to_current, to_published, total, git = [], [], [], []
        work = self.bench.workdir / f"git-sync-{self.mode}"
        baseline = GitSyncBaseline(self.url, work) if with_git else None
        for _ in range(self.plan.change_runs):
            seen, ev, commit = self.deploy(daemon, how, count, track)
            to_current.append(seen[0])
            if seen[1] is not None:
                to_published.append(seen[1])
            total.append(float(ev["duration"]))
            if baseline is not None:
                git.append(baseline.sync(commit))
        shutil.rmtree(work, ignore_errors=True)
        med = statistics.median(to_current)
        self.bench.say(f"{self.tag} {count} changed via {how}: current moved after {med:.3f}s"
                       + (f", git-sync's way {statistics.median(git):.3f}s" if git else ""))
        out = {"skills_changed": count, "trigger": how, "to_current_s": summary(to_current),
               "published_after_current_s": summary(to_published), "sync_total_s": summary(total),
               "git_s": summary(git)}
        if git:
            out["ratio_to_git"] = round(med / statistics.median(git), 3)
        return out

    def deploy(self, daemon: Daemon, how: str, count: int,
               track: Tracker) -> tuple[tuple[float, float | None], dict[str, Any], str]:
        """One commit, one trigger; seconds from the trigger to ``current`` naming the commit
        (and, in mirror mode, from ``current`` moving to the published folder holding it)."""
        if how == "sighup":
            daemon.wait_for_token()
        daemon.skip()
        commit, wanted = self.change.next(count)
        mirror = self.mode == "mirror"
        start = time.perf_counter()
        daemon.sighup() if how == "sighup" else daemon.push(commit)
        seen = watch(self.state, commit, self.publish if mirror else None, wanted if mirror else None)
        ev = daemon.wait_event("sync_finished", status="deployed")
        daemon.wait_event("next_sync")  # retention has run: the next trigger is served
        track.deployed()
        lag = seen.published - seen.current if seen.published is not None else None
        return (seen.current - start, lag), ev, commit


def _ts(ev: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(ev["timestamp"]).replace("Z", "+00:00")).timestamp()


def retention(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Seconds of each deploy's retention: from its ``sync_finished`` to the loop's ``next_sync``,
    for the deploys that pruned a release (retention runs between the two; triggers wait)."""
    times: list[float] = []
    finished: dict[str, Any] | None = None
    pruned = 0
    for ev in history:
        name = ev.get("event")
        if name == "sync_finished":
            finished, pruned = (ev if ev.get("status") == "deployed" else None), 0
        elif name == "release_pruned" and finished is not None:
            pruned += 1
        elif name == "next_sync" and finished is not None:
            if pruned:
                times.append(_ts(ev) - _ts(finished))
            finished = None
    return {"deploys_pruning": len(times), "seconds": summary(times)}


def settled_rss(daemon: Daemon) -> int:
    """VmRSS once the loop is idle: two seconds after the sync ended (the trim runs after it)."""
    time.sleep(2.0)
    return daemon.rss()["VmRSS"]


class Tracker:
    """Disk after the first deploy and after FIVE more; mirror packs after every deploy."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.deploys = 0
        self.one: dict[str, int] | None = None
        self.five: dict[str, int] | None = None
        self.series: list[tuple[int, int]] = []

    def first(self) -> None:
        self.one = state_disk(self.state)
        self.series.append(mirror_size(self.state))

    def deployed(self) -> None:
        self.deploys += 1
        self.series.append(mirror_size(self.state))
        if self.deploys == FIVE:
            self.five = state_disk(self.state)

    def disk(self) -> dict[str, Any]:
        assert self.one is not None
        out: dict[str, Any] = {"one_bytes": self.one["state_bytes"],
                               "one_releases_store_bytes": self.one["releases_store_bytes"],
                               "five_bytes": None, "ratio": None, "releases_after_five": None}
        if self.five is not None:
            out.update(five_bytes=self.five["state_bytes"],
                       five_releases_store_bytes=self.five["releases_store_bytes"],
                       releases_after_five=self.five["releases"],
                       ratio=round(self.five["state_bytes"] / self.one["state_bytes"], 3),
                       releases_store_ratio=round(self.five["releases_store_bytes"]
                                                  / max(1, self.one["releases_store_bytes"]), 3))
        return out

    def packs(self) -> dict[str, Any]:
        counts = [c for c, _ in self.series]
        sizes = [b for _, b in self.series]
        # bounded: the pack count never passes the mirror's repack threshold (max_packs, 20)
        return {"syncs": len(self.series), "series": self.series, "final_count": counts[-1],
                "final_bytes": sizes[-1], "max_count": max(counts), "max_bytes": max(sizes),
                "first_bytes": sizes[0], "bounded": max(counts) <= 20}
