"""Benchmarks: skillsyncd against git's own CLI on the same machine, in the same run.

Repositories of generated skills are served over smart HTTP on 127.0.0.1 (the
test peer in tests/gitserver.py, ``git http-backend`` behind a Python server).
Every skillsyncd figure comes from a real process: ``skillsyncd --once`` for
first syncs, ``skillsyncd run`` (the daemon, poked with SIGHUP) for polls,
changes, CPU and RSS. The baselines are plain ``git`` commands doing the same
job the way kubernetes/git-sync does it.

    .venv/bin/python bench/run.py --out bench/results.json
    .venv/bin/python bench/run.py --sizes 100 --runs 1      # a quick look

Benchmarks are not tests: nothing here fails on a slow figure. The targets of
issue 5 are evaluated and printed, met or not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import statistics
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
sys.path.insert(0, str(ROOT / "tests"))

from gitserver import GitRoot, HttpGitServer, RepoBuilder, free_port, git_env, run_git  # noqa: E402

PYTHON = Path(sys.executable)
SKILLSYNCD = [str(PYTHON), "-m", "skillsyncd"]
DEFAULT_SIZES = (100, 1_000, 10_000)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = 4096

# Token bucket of event triggers (skillsyncd.daemon.schedule.Timing): SIGHUPs beyond
# the burst are deferred, so the bench waits for a token before it starts a clock.
from skillsyncd.daemon.schedule import Timing  # noqa: E402
from skillsyncd.validation import secrets as secret_scan  # noqa: E402

_TIMING = Timing(interval=60.0, jitter=0.1, backoff_max=600.0)


# --------------------------------------------------------------------------- statistics


def summary(values: Sequence[float], digits: int = 4) -> dict[str, Any]:
    """Median, min and max of repeated runs (and the runs themselves)."""
    vals = [float(v) for v in values]
    if not vals:
        return {"median": None, "min": None, "max": None, "runs": []}
    return {
        "median": round(statistics.median(vals), digits),
        "min": round(min(vals), digits),
        "max": round(max(vals), digits),
        "runs": [round(v, digits) for v in vals],
    }


# --------------------------------------------------------------------------- workload

_VOCAB = (
    "agent skill tool request response gateway folder release commit branch review summary "
    "context prompt model answer document table query search index cache retry backoff "
    "timeout header payload schema field value record report chart metric signal error "
    "warning check health status version manifest script template example reference guide "
    "step input output format parse render filter sort group merge split limit offset page "
    "token budget plan task goal result source target path file line word number date time"
)
_WORDS = tuple(_VOCAB.split())


def _text(rng: random.Random, nbytes: int) -> str:
    """Prose-like filler that compresses like real Markdown, not like a run of one byte."""
    out: list[str] = []
    size = 0
    while size < nbytes:
        line = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."
        out.append(line)
        size += len(line) + 1
    return "\n".join(out) + "\n"


def skill_name(i: int) -> str:
    return f"skill-{i:05d}"


def skill_md(name: str, rng: random.Random, revision: int = 0) -> str:
    body = _text(rng, rng.randint(2_000, 4_000))
    return (
        f"---\nname: {name}\ndescription: Generated skill {name} for benchmarks, revision {revision}.\n"
        f"metadata:\n  version: \"1.{revision}.0\"\n---\n\n# {name}\n\n{body}"
    )


def extra_files(rng: random.Random) -> dict[str, tuple[str, int]]:
    """2-5 supporting files: references, a template, sometimes an executable script."""
    files: dict[str, tuple[str, int]] = {}
    for k in range(rng.randint(2, 5)):
        kind = k % 3
        if kind == 0:
            files[f"references/notes-{k}.md"] = (_text(rng, rng.randint(500, 3_000)), 0o644)
        elif kind == 1:
            files[f"templates/t{k}.txt"] = (_text(rng, rng.randint(200, 1_500)), 0o644)
        else:
            files[f"scripts/run-{k}.sh"] = ("#!/bin/sh\necho " + rng.choice(_WORDS) + "\n", 0o755)
    return files


def generate_repo(path: Path, n: int, seed: int = 5) -> RepoBuilder:
    """A repository of ``n`` skills; one in four has 2-5 extra files. One commit."""
    repo = RepoBuilder(path, name=f"skills-{n}")
    rng = random.Random(seed)
    for i in range(n):
        name = skill_name(i)
        folder = path / name
        folder.mkdir()
        (folder / "SKILL.md").write_text(skill_md(name, rng))
        if i % 4 == 0:
            for rel, (content, mode) in extra_files(rng).items():
                dest = folder / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(content)
                dest.chmod(mode)
    run_git("add", "-A", cwd=path, timeout=600)
    repo.commit(f"{n} skills")
    return repo


def change_skills(repo: RepoBuilder, indices: Sequence[int], revision: int) -> str:
    """Rewrite the SKILL.md of the given skills (new body and version); one commit."""
    rng = random.Random(1_000_003 * revision + len(indices))
    for i in indices:
        name = skill_name(i)
        (repo.path / name / "SKILL.md").write_text(skill_md(name, rng, revision))
    run_git("add", "-A", cwd=repo.path, timeout=600)
    return repo.commit(f"change {len(indices)} skills (revision {revision})")


# --------------------------------------------------------------------------- processes


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM of a live process, in bytes."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds a live process has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass(frozen=True)
class Finished:
    wall: float
    maxrss: int  # bytes, from wait4
    cpu: float
    returncode: int


def run_timed(cmd: Sequence[str], env: dict[str, str], cwd: Path | None = None,
              log: Path | None = None) -> Finished:
    """Run a command to completion; wall time, peak RSS and CPU from the kernel (wait4)."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), env=env, cwd=cwd, stdout=out, stderr=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    return Finished(wall, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime, proc.returncode)


def _check(done: Finished, what: str, log: Path | None = None) -> None:
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
        raise RuntimeError(f"{what} exited {done.returncode}\n{tail}")


def skillsyncd_env(url: str, state: Path, bind: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SKILLSYNC_", "GITHUB_", "NEO4J_", "POLLING_", "MAX_SKILL"))}
    env.update(SKILLSYNC_REPO=url, SKILLSYNC_STATE_DIR=str(state), SKILLSYNC_REF="main",
               SKILLSYNC_HTTP_BIND=bind or f"127.0.0.1:{free_port()}", PYTHONDONTWRITEBYTECODE="1")
    return env


class Daemon:
    """A real ``skillsyncd run`` process; its JSON log lines are read back from a file."""

    def __init__(self, url: str, state: Path, log: Path, interval: float = 60.0) -> None:
        self.log_path = log
        env = skillsyncd_env(url, state)
        self._fh = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([*SKILLSYNCD, "run", "--interval", str(interval)], env=env,
                                     stdout=self._fh, stderr=self._fh, start_new_session=True)
        self.pid = self.proc.pid
        self.state = state
        self._seen = 0
        self.history: list[dict[str, Any]] = []  # every event read so far
        self._cursor = 0  # wait_event has looked at history[:_cursor]
        self._tokens = float(_TIMING.trigger_burst)
        self._tokens_at = time.monotonic()

    def lines(self) -> list[dict[str, Any]]:
        """Read the log events written since the last read into ``history``; return them."""
        data = self.log_path.read_bytes()
        end = data.rfind(b"\n") + 1
        chunk = data[self._seen:end] if end > self._seen else b""
        self._seen += len(chunk)
        events = []
        for raw in chunk.splitlines():
            with contextlib.suppress(ValueError):
                events.append(json.loads(raw))
        self.history.extend(events)
        return events

    def skip(self) -> None:
        """Forget every event so far: the next wait_event looks only at newer ones."""
        self.lines()
        self._cursor = len(self.history)

    def wait_event(self, event: str, timeout: float = 600.0, **match: Any) -> dict[str, Any]:
        """The next event named ``event`` (with ``match`` fields) after the last one returned."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.lines()
            while self._cursor < len(self.history):
                ev = self.history[self._cursor]
                self._cursor += 1
                if ev.get("event") == event and all(ev.get(k) == v for k, v in match.items()):
                    return ev
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}:\n"
                                   + self.log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.005)
        raise TimeoutError(f"no {event} {match} from the daemon after {timeout}s")

    def wait_for_token(self) -> None:
        """Sleep until the daemon's trigger bucket holds a token (mirrors Scheduler._refill)."""
        now = time.monotonic()
        self._tokens = min(float(_TIMING.trigger_burst),
                           self._tokens + (now - self._tokens_at) / _TIMING.trigger_refill)
        self._tokens_at = now
        if self._tokens < 1.05:
            time.sleep((1.05 - self._tokens) * _TIMING.trigger_refill)
            self._tokens, self._tokens_at = 1.05, time.monotonic()

    def trigger(self) -> None:
        self._tokens -= 1.0
        os.kill(self.pid, signal.SIGHUP)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()


def current_commit(state: Path) -> str | None:
    """The 12-hex commit the live release names (from ``readlink current`` alone)."""
    try:
        return os.readlink(state / "current").rsplit("-", 1)[-1]
    except OSError:
        return None


def wait_visible(state: Path, commit: str, timeout: float = 600.0) -> float:
    """Block until ``current`` names ``commit``; returns the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    want = commit[:12]
    while time.monotonic() < deadline:
        if current_commit(state) == want:
            return time.perf_counter()
        time.sleep(0.001)
    raise TimeoutError(f"current did not reach {want} within {timeout}s")


# --------------------------------------------------------------------------- git baselines


def flip(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def git_first_sync(url: str, work: Path) -> float:
    """Baseline 2: shallow single-branch clone with checkout into a fresh folder, then flip."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "releases").mkdir(parents=True)
    env = git_env()
    start = time.perf_counter()
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--single-branch", "--branch", "main",
                    url, str(work / "releases" / "r1")], env=env, check=True, capture_output=True)
    flip(work / "current", "releases/r1")
    return time.perf_counter() - start


class GitSyncBaseline:
    """Baseline 3/4, what kubernetes/git-sync does on each change: ``fetch --depth 1``,
    ``worktree add`` of the fetched commit, flip the link."""

    def __init__(self, url: str, work: Path) -> None:
        self.work = work
        self.repo = work / "repo"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        env = git_env()
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--single-branch", "--branch", "main",
                        "--no-checkout", url, str(self.repo)], env=env, check=True, capture_output=True)

    def sync(self, commit: str) -> float:
        env = git_env()
        dest = self.work / f"wt-{commit[:12]}"
        start = time.perf_counter()
        subprocess.run(["git", "-C", str(self.repo), "fetch", "-q", "--depth", "1", "origin", "main"],
                       env=env, check=True, capture_output=True)
        subprocess.run(["git", "-C", str(self.repo), "worktree", "add", "-q", "--detach", str(dest),
                        "FETCH_HEAD"], env=env, check=True, capture_output=True)
        flip(self.work / "current", dest.name)
        elapsed = time.perf_counter() - start
        got = subprocess.run(["git", "-C", str(dest), "rev-parse", "HEAD"], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
        if got != commit:
            raise RuntimeError(f"git baseline checked out {got}, expected {commit}")
        return elapsed


# --------------------------------------------------------------------------- disk


def disk_blocks(paths: Sequence[Path]) -> int:
    """Bytes allocated under ``paths`` (st_blocks), each inode counted once (hard links)."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def add(p: Path) -> None:
        nonlocal total
        st = os.lstat(p)
        key = (st.st_dev, st.st_ino)
        if key not in seen:
            seen.add(key)
            total += st.st_blocks * 512

    for top in paths:
        if not top.exists():
            continue
        add(top)
        if top.is_dir() and not top.is_symlink():
            for dirpath, dirnames, filenames in os.walk(top):
                for name in dirnames + filenames:
                    add(Path(dirpath) / name)
    return total


def release_disk(state: Path) -> dict[str, Any]:
    """Disk of the retained releases (folders and manifests) against the live one alone."""
    root = state / "releases"
    ids = sorted(p.name for p in root.iterdir() if p.is_dir())
    live = os.readlink(state / "current").rsplit("/", 1)[-1]

    def parts(rid: str) -> list[Path]:
        return [root / rid, root / f"{rid}.json"]

    one = disk_blocks(parts(live))
    everything = disk_blocks([p for rid in ids for p in parts(rid)])
    one_files = disk_blocks([root / live])
    all_files = disk_blocks([root / rid for rid in ids])
    return {
        "releases": len(ids),
        "one_bytes": one,
        "all_bytes": everything,
        "ratio": round(everything / one, 3) if one else None,
        "tree_only_ratio": round(all_files / one_files, 3) if one_files else None,
        "manifest_bytes": (root / f"{live}.json").stat().st_size,
        "mirror_bytes": disk_blocks([state / "mirror.git"]),
    }


def mirror_packs(state: Path) -> list[str]:
    pack = state / "mirror.git" / "objects" / "pack"
    return sorted(p.name for p in pack.glob("*.pack")) if pack.is_dir() else []


# --------------------------------------------------------------------------- scenarios


@dataclass
class Bench:
    size: int
    runs: int
    change_runs: int
    idle_window: float
    workdir: Path
    say: Callable[[str], None]

    def run(self) -> dict[str, Any]:
        n = self.size
        git_root = GitRoot(self.workdir / "served")
        t0 = time.perf_counter()
        repo = generate_repo(self.workdir / "src" / f"skills-{n}", n)
        gen = time.perf_counter() - t0
        files = int(run_git("ls-files", cwd=repo.path).count("\n"))
        server = HttpGitServer(git_root)
        try:
            url = server.url_for(repo)
            self.say(f"[{n}] repository: {files} files, generated in {gen:.1f}s; serving {url}")
            result: dict[str, Any] = {"skills": n, "files": files,
                                      "repo_bytes": disk_blocks([repo.git_dir / "objects"])}
            result["first_sync"] = self.first_sync(url, server)
            daemon_part = self.with_daemon(url, repo, server)
            result.update(daemon_part)
        finally:
            server.close()
        return result

    # -- 2. first sync

    def first_sync(self, url: str, server: HttpGitServer) -> dict[str, Any]:
        ours, peaks, cpus, git, nbytes = [], [], [], [], []
        for r in range(self.runs):
            state = self.workdir / f"once-{r}"
            log = self.workdir / f"once-{r}.log"
            server.requests.clear()
            done = run_timed([*SKILLSYNCD, "--once"], skillsyncd_env(url, state), log=log)
            _check(done, "skillsyncd --once", log)
            if current_commit(state) is None:
                raise RuntimeError("skillsyncd --once exited 0 without a live release")
            ours.append(done.wall)
            nbytes.append(server.bytes_sent())
            peaks.append(done.maxrss)
            cpus.append(done.cpu)
            git.append(git_first_sync(url, self.workdir / f"git-first-{r}"))
            shutil.rmtree(self.workdir / f"git-first-{r}", ignore_errors=True)
            if r:
                _force_rmtree(state)
        self.say(f"[{self.size}] first sync: skillsyncd {statistics.median(ours):.2f}s "
                 f"git {statistics.median(git):.2f}s")
        return {"skillsyncd_s": summary(ours), "git_s": summary(git),
                "ratio": round(statistics.median(ours) / statistics.median(git), 3),
                "once_peak_rss_bytes": summary(peaks, 0), "once_cpu_s": summary(cpus),
                "bytes_from_server": summary(nbytes, 0)}

    # -- 1, 3, 4, 5 with one long-lived daemon

    def with_daemon(self, url: str, repo: RepoBuilder, server: HttpGitServer) -> dict[str, Any]:
        state = self.workdir / "daemon-state"
        out: dict[str, Any] = {}
        daemon = Daemon(url, state, self.workdir / "daemon.log")
        try:
            start = time.perf_counter()
            daemon.wait_event("sync_finished", status="deployed")
            startup_sync = time.perf_counter() - start
            first_hwm = proc_status(daemon.pid)["VmHWM"]
            daemon.wait_event("next_sync")
            time.sleep(2.0)  # let the event loop settle after the first sync
            idle_rss = proc_status(daemon.pid)["VmRSS"]

            # Idle CPU between polls: a window with no sync at all.
            cpu0, w0 = proc_cpu(daemon.pid), time.perf_counter()
            time.sleep(self.idle_window)
            idle_rate = (proc_cpu(daemon.pid) - cpu0) / (time.perf_counter() - w0)

            out["no_change_poll"] = self.no_change(daemon, server, url, state, idle_rate)
            out["rss"] = {"startup_first_sync_s": round(startup_sync, 3),
                          "peak_first_sync_bytes": first_hwm, "idle_bytes": idle_rss}

            baseline = GitSyncBaseline(url, self.workdir / "git-sync")
            rng = random.Random(11)
            revision = 1
            for label, count in (("one_changed", 1), ("one_percent_changed", max(1, self.size // 100))):
                visible, total, git, fetched, git_bytes = [], [], [], [], []
                for _ in range(self.change_runs):
                    daemon.wait_for_token()
                    daemon.skip()
                    picks = sorted(rng.sample(range(self.size), count))
                    commit = change_skills(repo, picks, revision)
                    revision += 1
                    server.requests.clear()
                    t_commit = time.perf_counter()
                    daemon.trigger()
                    visible.append(wait_visible(state, commit) - t_commit)
                    ev = daemon.wait_event("sync_finished", status="deployed")
                    total.append(float(ev["duration"]))
                    fetched.append(server.bytes_sent())
                    server.requests.clear()
                    git.append(baseline.sync(commit))
                    git_bytes.append(server.bytes_sent())
                shutil.rmtree(self.workdir / "git-sync", ignore_errors=True)
                baseline = GitSyncBaseline(url, self.workdir / "git-sync")
                out[label] = {
                    "skills_changed": count,
                    "visible_s": summary(visible),
                    "sync_total_s": summary(total),
                    "git_s": summary(git),
                    "ratio": round(statistics.median(visible) / statistics.median(git), 3),
                    "bytes_from_server": summary(fetched, 0),
                    "git_bytes_from_server": summary(git_bytes, 0),
                }
                self.say(f"[{self.size}] {label}: visible {statistics.median(visible):.3f}s "
                         f"(sync {statistics.median(total):.3f}s) git {statistics.median(git):.3f}s")
            out["rss"]["peak_bytes"] = proc_status(daemon.pid)["VmHWM"]
            out["rss"]["after_changes_bytes"] = proc_status(daemon.pid)["VmRSS"]
            out["disk"] = release_disk(state)
        finally:
            daemon.stop()
        return out

    def no_change(self, daemon: Daemon, server: HttpGitServer, url: str, state: Path,
                  idle_rate: float) -> dict[str, Any]:
        """Probes with nothing new: server-side bytes and requests, objects, CPU per poll."""
        polls = max(1, self.runs)
        durations, requests, nbytes, cpu = [], [], [], []
        packs_before = mirror_packs(state)
        mark = len(daemon.history)
        for _ in range(polls):
            daemon.wait_for_token()
            daemon.skip()
            server.requests.clear()
            c0 = proc_cpu(daemon.pid)
            daemon.trigger()
            ev = daemon.wait_event("sync_finished")
            if ev.get("status") != "no_change":
                raise RuntimeError(f"expected a no-change poll, got {ev}")
            daemon.wait_event("next_sync")
            cpu.append(proc_cpu(daemon.pid) - c0)
            durations.append(float(ev["duration"]))
            reqs = list(server.requests)
            requests.append(reqs)
            if os.environ.get("BENCH_DEBUG"):
                say_reqs = [str(r) for r in reqs]
                print(say_reqs, ev, file=sys.stderr)
            nbytes.append(sum(r.nbytes for r in reqs))
        packs_after = mirror_packs(state)
        fetches = sum(1 for ev in daemon.history[mark:] if ev.get("event") == "fetched")
        git_ls = ls_remote_baseline(server, url)
        per_poll_cpu = sum(cpu) / len(cpu)  # /proc counts in 10 ms ticks: average, not median
        shape = [_shape(r) for r in requests[-1]]
        cpu_hour = idle_rate * 3600 + per_poll_cpu * 3600 / _TIMING.interval
        self.say(f"[{self.size}] no-change poll: {statistics.median(durations) * 1000:.1f} ms, "
                 f"{statistics.median(nbytes):.0f} B, requests {shape}, CPU {cpu_hour:.1f} s/h")
        return {
            "duration_s": summary(durations),
            "response_bytes": summary(nbytes, 0),
            "requests_per_probe": shape,
            "ref_round_trips": max(len(r) for r in requests),
            "fetch_requests": fetches,
            "git_ls_remote": git_ls,
            "objects_fetched": 0 if packs_after == packs_before else _objects_in(state, packs_before),
            "cpu_per_poll_s": summary(cpu),
            "idle_cpu_s_per_s": round(idle_rate, 6),
            "cpu_s_per_hour_at_60s": round(cpu_hour, 2),
        }


def ls_remote_baseline(server: HttpGitServer, url: str) -> dict[str, Any]:
    """What ``git ls-remote`` of the one branch costs against the same server."""
    server.requests.clear()
    start = time.perf_counter()
    run_git("-c", "protocol.version=2", "ls-remote", url, "refs/heads/main")
    elapsed = time.perf_counter() - start
    reqs = list(server.requests)
    return {"duration_s": round(elapsed, 4), "response_bytes": sum(r.nbytes for r in reqs),
            "requests": [_shape(r) for r in reqs]}


def _shape(req: Any) -> str:
    path = req.path.split("?")[0]
    return f"{req.method} {path.split('/', 2)[-1]}"


def _objects_in(state: Path, before: Sequence[str]) -> int:
    pack_dir = state / "mirror.git" / "objects" / "pack"
    total = 0
    for pack in sorted(set(mirror_packs(state)) - set(before)):
        idx = pack_dir / pack.replace(".pack", ".idx")
        out = subprocess.run(["git", "show-index"], stdin=idx.open("rb"), capture_output=True, check=True)
        total += out.stdout.count(b"\n")
    return total


def _force_rmtree(path: Path) -> None:
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, d), 0o755)
        with contextlib.suppress(OSError):
            os.chmod(dirpath, 0o755)
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- targets & report


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


MB = 1024 * 1024


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 5's targets against this run; a size missing from the run is not judged."""
    out: list[dict[str, Any]] = []

    def add(name: str, ok: bool, value: str) -> None:
        out.append({"target": name, "met": ok, "value": value})

    sizes = {r["skills"]: r for r in results["sizes"]}
    for n, r in sorted(sizes.items()):
        p = r["no_change_poll"]
        add(f"no-change poll fetches 0 objects, one ref round trip ({n})",
            p["objects_fetched"] == 0 and p["fetch_requests"] == 0,
            f"{p['objects_fetched']} objects, requests {p['requests_per_probe']}")
    big = sizes.get(max(sizes))
    if big is not None:
        n = big["skills"]
        one = big["one_changed"]
        add(f"one skill changed in {n}: <= 0.5 s end to end",
            one["visible_s"]["median"] <= 0.5,
            f"{one['visible_s']['median']:.3f} s visible, {one['sync_total_s']['median']:.3f} s whole sync")
        add(f"one skill changed in {n}: <= 1/10 of git", one["ratio"] <= 0.1,
            f"{one['ratio']:.3f} x git ({one['git_s']['median']:.3f} s)")
        first = big["first_sync"]
        add(f"first sync of {n} <= 2x git", first["ratio"] <= 2.0,
            f"{first['ratio']:.2f} x git ({first['skillsyncd_s']['median']:.2f} s vs "
            f"{first['git_s']['median']:.2f} s)")
        add(f"peak RSS during first sync of {n} <= 120 MB", big["rss"]["peak_first_sync_bytes"] <= 120 * MB,
            f"{big['rss']['peak_first_sync_bytes'] / MB:.1f} MB (daemon); --once "
            f"{first['once_peak_rss_bytes']['median'] / MB:.1f} MB")
        add(f"5 releases <= 1.2x the disk of one ({n})", big["disk"]["ratio"] <= 1.2,
            f"{big['disk']['ratio']:.2f}x ({big['disk']['releases']} releases)")
    idle = max(r["rss"]["idle_bytes"] for r in sizes.values())
    add("idle RSS <= 45 MB (every size)", idle <= 45 * MB, f"{idle / MB:.1f} MB at most")
    return out


def _kb(n: float) -> str:
    return f"{n / 1024:.1f} KB" if n < MB else f"{n / MB:.1f} MB"


def _fmt_s(s: dict[str, Any]) -> str:
    med, lo, hi = s["median"], s["min"], s["max"]
    if med < 1:
        return f"{med * 1000:.0f} ms ({lo * 1000:.0f}-{hi * 1000:.0f})"
    return f"{med:.2f} s ({lo:.2f}-{hi:.2f})"


def table(results: dict[str, Any]) -> str:
    """The Markdown table of a run (median, then min-max of the runs)."""
    rows = ["| scenario | " + " | ".join(f"{r['skills']:,} skills" for r in results["sizes"]) + " |",
            "| --- |" + " --- |" * len(results["sizes"])]

    def row(label: str, cell: Callable[[dict[str, Any]], str]) -> None:
        rows.append(f"| {label} | " + " | ".join(cell(r) for r in results["sizes"]) + " |")

    row("files in the repository", lambda r: f"{r['files']:,}")
    row("no-change poll: time", lambda r: _fmt_s(r["no_change_poll"]["duration_s"]))
    row("no-change poll: bytes from server",
        lambda r: f"{r['no_change_poll']['response_bytes']['median']:.0f} B")
    row("no-change poll: requests / objects",
        lambda r: f"{len(r['no_change_poll']['requests_per_probe'])} / "
                  f"{r['no_change_poll']['objects_fetched']}")
    row("git ls-remote of the branch: bytes / requests",
        lambda r: f"{r['no_change_poll']['git_ls_remote']['response_bytes']} B / "
                  f"{len(r['no_change_poll']['git_ls_remote']['requests'])}")
    row("idle CPU at 60 s interval", lambda r: f"{r['no_change_poll']['cpu_s_per_hour_at_60s']:.1f} s/h")
    row("first sync: skillsyncd --once", lambda r: _fmt_s(r["first_sync"]["skillsyncd_s"]))
    row("first sync: git clone --depth 1 + flip", lambda r: _fmt_s(r["first_sync"]["git_s"]))
    row("first sync: ratio", lambda r: f"{r['first_sync']['ratio']:.2f}x")
    for key, label in (("one_changed", "1 skill changed"), ("one_percent_changed", "1% changed")):
        row(f"{label}: push to visible", lambda r, k=key: _fmt_s(r[k]["visible_s"]))
        row(f"{label}: whole sync (incl. checks)", lambda r, k=key: _fmt_s(r[k]["sync_total_s"]))
        row(f"{label}: git fetch + worktree add + flip", lambda r, k=key: _fmt_s(r[k]["git_s"]))
        row(f"{label}: ratio", lambda r, k=key: f"{r[k]['ratio']:.3f}x")
        row(f"{label}: bytes from server, skillsyncd / git",
            lambda r, k=key: f"{_kb(r[k]['bytes_from_server']['median'])} / "
                             f"{_kb(r[k]['git_bytes_from_server']['median'])}")
    row("daemon RSS idle", lambda r: f"{r['rss']['idle_bytes'] / MB:.1f} MB")
    row("daemon RSS peak, first sync", lambda r: f"{r['rss']['peak_first_sync_bytes'] / MB:.1f} MB")
    row("--once peak RSS, first sync",
        lambda r: f"{r['first_sync']['once_peak_rss_bytes']['median'] / MB:.1f} MB")
    row("disk: one release", lambda r: f"{r['disk']['one_bytes'] / MB:.1f} MB")
    row("disk: retained releases / one",
        lambda r: f"{r['disk']['ratio']:.2f}x ({r['disk']['releases']})")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=list(DEFAULT_SIZES), help="comma-separated skill counts")
    parser.add_argument("--runs", type=int, default=3, help="first-sync runs and no-change polls")
    parser.add_argument("--change-runs", type=int, default=4, help="runs of each change scenario")
    parser.add_argument("--idle-window", type=float, default=10.0, help="seconds of idle CPU sampling")
    parser.add_argument("--workdir", type=Path, help="keep the work here (default: a temp dir, removed)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    results = run_bench(args.sizes, args.runs, args.change_runs, args.idle_window, args.workdir, say)
    print(table(results))
    scan = results["secret_scan"]
    print(f"\nsecret scan: {scan['prose_mb_s']:.1f} MB/s prose, {scan['code_mb_s']:.1f} MB/s code, "
          f"{scan['per_3kb_file_ms']:.2f} ms per 3 KB file (part of every first sync above)")
    print()
    for t in results["targets"]:
        print(f"{'MET ' if t['met'] else 'MISS'}  {t['target']}: {t['value']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def scan_speed(nbytes: int = 2 * MB, seed: int = 11) -> dict[str, Any]:
    """The secret scanner's throughput on prose (generated Markdown) and on code (this
    repository's Python), and its cost per small file: the part of every first sync that
    reads each blob of every skill."""
    rng = random.Random(seed)
    prose = _text(rng, nbytes).encode()
    source = b"".join(p.read_bytes() for p in sorted((ROOT / "skillsyncd").rglob("*.py"))
                      if "secret" not in p.name)  # the rule table itself is all prefixes
    code = (source * (nbytes // len(source) + 1))[:nbytes]
    out: dict[str, Any] = {}
    for name, data in (("prose", prose), ("code", code)):
        started = time.perf_counter()
        hits = sum(1 for _ in secret_scan.scan_bytes(data))
        elapsed = time.perf_counter() - started
        out[f"{name}_mb_s"] = round(len(data) / MB / elapsed, 2)
        out[f"{name}_hits"] = hits
    small = [prose[i:i + 3000] for i in range(0, 300 * 3000, 3000)]
    started = time.perf_counter()
    for blob in small:
        for _ in secret_scan.scan_bytes(blob):
            pass
    out["per_3kb_file_ms"] = round((time.perf_counter() - started) / len(small) * 1000, 3)
    return out


def run_bench(sizes: Sequence[int], runs: int, change_runs: int, idle_window: float,
              workdir: Path | None, say: Callable[[str], None]) -> dict[str, Any]:
    """Every size in turn; returns the results document (machine, sizes, targets)."""
    started = time.perf_counter()
    with _workdir(workdir) as base:
        results: dict[str, Any] = {
            "machine": machine(),
            "command": "make bench  # .venv/bin/python bench/run.py --out bench/results.json",
            "settings": {"runs": runs, "change_runs": change_runs, "idle_window_s": idle_window,
                         "interval_s": _TIMING.interval},
            "sizes": [],
        }
        for n in sizes:
            work = base / f"n{n}"
            work.mkdir()
            results["sizes"].append(Bench(n, runs, change_runs, idle_window, work, say).run())
            _force_rmtree(work)
    results["secret_scan"] = scan_speed()
    say(f"secret scan: {results['secret_scan']}")
    results["targets"] = targets(results)
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    return results


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
        _force_rmtree(tmp)


if __name__ == "__main__":
    sys.exit(main())
