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
import hashlib
import hmac
import json
import os
import platform
import pstats
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(BENCH))

import report  # noqa: E402
from gitserver import GitDaemonServer, GitRoot, RepoBuilder, free_port, git_env, run_git  # noqa: E402

PYTHON = Path(sys.executable)
SKILLSYNCD = [str(PYTHON), "-m", "skillsyncd"]
DEFAULT_SIZES = (100, 1_000, 10_000)
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = report.MB
README = ROOT / "README.md"
DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS = BENCH / "results.json"
FIVE = 5  # deploys after the first before the disk is measured again (keep_releases is 5)

# Token bucket of event triggers (skillsyncd.daemon.schedule.Timing): SIGHUPs beyond
# the burst are deferred, so the bench waits for a token before it starts a clock.
from skillsyncd.daemon.schedule import Timing  # noqa: E402

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


def change_skills(repo: RepoBuilder, indices: Sequence[int], revision: int) -> tuple[str, dict[str, bytes]]:
    """Rewrite the SKILL.md of the given skills (new body and version); one commit.

    Returns the commit and each changed skill's new SKILL.md, which the published
    folder must end up holding in mirror mode.
    """
    rng = random.Random(1_000_003 * revision + len(indices))
    wanted: dict[str, bytes] = {}
    for i in indices:
        name = skill_name(i)
        text = skill_md(name, rng, revision)
        (repo.path / name / "SKILL.md").write_text(text)
        wanted[name] = text.encode()
    run_git("add", "-A", cwd=repo.path, timeout=600)
    return repo.commit(f"change {len(indices)} skills (revision {revision})"), wanted


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


def skillsyncd_env(url: str, state: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SKILLSYNC_", "GITHUB_", "NEO4J_", "POLLING_", "MAX_SKILL"))}
    env.update(SKILLSYNC_REPO=url, SKILLSYNC_STATE_DIR=str(state), SKILLSYNC_REF="main",
               SKILLSYNC_HTTP_BIND=f"127.0.0.1:{free_port()}", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


class Daemon:
    """A real ``skillsyncd run`` process; its JSON log lines are read back from a file.

    It answers signed webhook pushes (a fresh secret per daemon, never logged).
    """

    def __init__(self, url: str, state: Path, log: Path, **extra: str) -> None:
        self.log_path = log
        self.secret = uuid.uuid4().hex
        env = skillsyncd_env(url, state, GITHUB_WEBHOOK_SECRET=self.secret, **extra)
        self.http = env["SKILLSYNC_HTTP_BIND"]
        self._fh = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([*SKILLSYNCD, "run", "--interval", "60"], env=env,
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

    def wait_event(self, event: str, timeout: float = 900.0, **match: Any) -> dict[str, Any]:
        """The next event named ``event`` (with ``match`` fields) after the last one returned."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.lines()
            while self._cursor < len(self.history):
                ev = self.history[self._cursor]
                self._cursor += 1
                if ev.get("event") == event and all(ev.get(k) == v for k, v in match.items()):
                    return ev
            self.alive()
            time.sleep(0.005)
        raise TimeoutError(f"no {event} {match} from the daemon after {timeout}s")

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"daemon exited {self.proc.returncode}:\n"
                               + self.log_path.read_text(errors="replace")[-3000:])

    def wait_for_token(self) -> None:
        """Sleep until the daemon's trigger bucket holds a token (mirrors Scheduler._refill)."""
        now = time.monotonic()
        self._tokens = min(float(_TIMING.trigger_burst),
                           self._tokens + (now - self._tokens_at) / _TIMING.trigger_refill)
        self._tokens_at = now
        if self._tokens < 1.05:
            time.sleep((1.05 - self._tokens) * _TIMING.trigger_refill)
            self._tokens, self._tokens_at = 1.05, time.monotonic()

    def sighup(self) -> None:
        self._tokens -= 1.0
        os.kill(self.pid, signal.SIGHUP)

    def push(self, commit: str) -> None:
        """A signed GitHub push of ``commit`` to main, as GitHub sends it (a new head skips the bucket)."""
        body = json.dumps({"ref": "refs/heads/main", "after": commit, "before": "0" * 40,
                           "repository": {"full_name": "bench/skills"}}).encode()
        sig = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        req = urllib.request.Request(f"http://{self.http}/webhook/github", data=body, method="POST", headers={
            "Content-Type": "application/json", "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": sig})
        with urllib.request.urlopen(req, timeout=30) as resp:
            if resp.status != 202:
                raise RuntimeError(f"webhook answered {resp.status}")

    def rss(self) -> dict[str, int]:
        return proc_status(self.pid)

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
    """The 12-hex commit the live release names (``readlink current`` alone, per the contract)."""
    try:
        return os.readlink(state / "current").rsplit("-", 1)[-1]
    except OSError:
        return None


def published(publish_dir: Path, wanted: dict[str, bytes]) -> bool:
    """Whether every changed skill's SKILL.md in the published folder has its new bytes."""
    for name, data in wanted.items():
        try:
            if (publish_dir / name / "SKILL.md").read_bytes() != data:
                return False
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Seen:
    """When (perf_counter) a change was observed: ``current`` naming it, the published folder holding it."""

    current: float
    published: float | None


def watch(state: Path, commit: str, publish_dir: Path | None = None,
          wanted: dict[str, bytes] | None = None, timeout: float = 900.0) -> Seen:
    """Poll (1 ms) until ``current`` names ``commit`` and, if given, the published folder has ``wanted``."""
    deadline = time.monotonic() + timeout
    want = commit[:12]
    at_current: float | None = None
    at_published: float | None = None
    while time.monotonic() < deadline:
        now = time.perf_counter()
        if at_current is None and current_commit(state) == want:
            at_current = now
        if publish_dir is not None and wanted and at_published is None and published(publish_dir, wanted):
            at_published = now
        if at_current is not None and (publish_dir is None or at_published is not None):
            return Seen(at_current, at_published)
        time.sleep(0.001)
    raise TimeoutError(f"{want} not live{' and published' if publish_dir else ''} within {timeout}s")


# --------------------------------------------------------------------------- git baselines


def flip(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def git_first_sync(url: str, work: Path) -> float:
    """Baseline: shallow single-branch clone with checkout into a fresh folder, then flip."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "releases").mkdir(parents=True)
    start = time.perf_counter()
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--single-branch", "--branch", "main",
                    url, str(work / "releases" / "r1")], env=git_env(), check=True, capture_output=True)
    flip(work / "current", "releases/r1")
    return time.perf_counter() - start


class GitSyncBaseline:
    """Baseline, what kubernetes/git-sync does on each change: ``fetch --depth 1``,
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
        try:
            st = os.lstat(p)
        except FileNotFoundError:  # retention removed it during the walk: it takes no room
            return
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


def state_disk(state: Path) -> dict[str, int]:
    """Disk of the state dir without the fetch mirror (releases, store, manifests, journal),
    each inode once: whatever the release layout, this is what the releases cost."""
    parts = [p for p in state.iterdir() if p.name != "mirror.git"]
    return {"state_bytes": disk_blocks(parts),
            "releases_store_bytes": disk_blocks([state / "releases", state / "store"]),
            "releases": sum(1 for p in (state / "releases").iterdir() if p.is_dir() and not p.is_symlink())}


def mirror_packs(state: Path) -> list[Path]:
    pack = state / "mirror.git" / "objects" / "pack"
    return sorted(pack.glob("*.pack")) if pack.is_dir() else []


def mirror_size(state: Path) -> tuple[int, int]:
    """Pack count and bytes (packs and their indexes) of the fetch mirror."""
    packs = mirror_packs(state)
    size = sum(p.stat().st_size + p.with_suffix(".idx").stat().st_size for p in packs
               if p.with_suffix(".idx").exists())
    return len(packs), size


def objects_in(state: Path, before: Sequence[Path]) -> int:
    """Objects in mirror packs that were not there before (0 for a poll that fetched nothing)."""
    total = 0
    for pack in sorted(set(mirror_packs(state)) - set(before)):
        with pack.with_suffix(".idx").open("rb") as idx:
            out = subprocess.run(["git", "show-index"], stdin=idx, capture_output=True, check=True)
        total += out.stdout.count(b"\n")
    return total


def ls_remote(url: str) -> float:
    """Wall time of ``git ls-remote`` of the one branch, as a process (what a shell poller pays)."""
    start = time.perf_counter()
    run_git("ls-remote", url, "refs/heads/main")
    return time.perf_counter() - start


# --------------------------------------------------------------------------- scenarios


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


@dataclass
class Bench:
    size: int
    runs: int
    change_runs: int
    churn: int
    idle_window: float
    workdir: Path
    profile: Path | None
    say: Callable[[str], None]

    def run(self) -> dict[str, Any]:
        n = self.size
        git_root = GitRoot(self.workdir / "served")
        t0 = time.perf_counter()
        repo = generate_repo(self.workdir / "src" / f"skills-{n}", n)
        gen = time.perf_counter() - t0
        files = run_git("ls-files", cwd=repo.path).count("\n")
        server = GitDaemonServer(git_root)
        try:
            url = server.url_for(repo)
            self.say(f"[{n}] repository: {files} files, generated in {gen:.1f}s; serving {url}")
            result: dict[str, Any] = {"skills": n, "files": files,
                                      "repo_bytes": disk_blocks([repo.git_dir / "objects"])}
            result["first_sync"] = self.first_sync(url)
            change = Change(repo, n)
            result.update(self.main_daemon(url, change))
            result["mirror_one_changed"] = self.mirror_daemon(url, change)
        finally:
            server.close()
        return result

    # -- first sync: --once against git clone, then one profiled run

    def first_sync(self, url: str) -> dict[str, Any]:
        ours, peaks, cpus, git = [], [], [], []
        for r in range(self.runs):
            state = self.workdir / f"once-{r}"
            log = self.workdir / f"once-{r}.log"
            done = run_timed([*SKILLSYNCD, "--once"], skillsyncd_env(url, state), log=log)
            _check(done, "skillsyncd --once", log)
            if current_commit(state) is None:
                raise RuntimeError("skillsyncd --once exited 0 without a live release")
            ours.append(done.wall)
            peaks.append(done.maxrss)
            cpus.append(done.cpu)
            git.append(git_first_sync(url, self.workdir / f"git-first-{r}"))
            shutil.rmtree(self.workdir / f"git-first-{r}", ignore_errors=True)
            _force_rmtree(state)
        self.say(f"[{self.size}] first sync: skillsyncd {statistics.median(ours):.2f}s "
                 f"git {statistics.median(git):.2f}s")
        out = {"skillsyncd_s": summary(ours), "git_s": summary(git),
               "ratio": round(statistics.median(ours) / statistics.median(git), 3),
               "once_peak_rss_bytes": summary(peaks, 0), "once_cpu_s": summary(cpus)}
        if self.profile is not None:
            out["profile"] = self.profile_first_sync(url)
        return out

    def profile_first_sync(self, url: str) -> dict[str, Any]:
        """One more ``--once`` under cProfile (inflates pure-Python parts; the shares are what count)."""
        assert self.profile is not None
        self.profile.mkdir(parents=True, exist_ok=True)
        prof = self.profile / f"first-sync-{self.size}.prof"
        state = self.workdir / "once-profiled"
        log = self.workdir / "once-profiled.log"
        done = run_timed([str(PYTHON), "-m", "cProfile", "-o", str(prof), "-m", "skillsyncd", "--once"],
                         skillsyncd_env(url, state), log=log)
        _check(done, "skillsyncd --once under cProfile", log)
        _force_rmtree(state)
        phases = profile_phases(prof)
        (self.profile / f"first-sync-{self.size}.txt").write_text(profile_text(prof, phases))
        self.say(f"[{self.size}] profile: {phases}")
        return {"file": str(prof.relative_to(ROOT)) if prof.is_relative_to(ROOT) else str(prof),
                "wall_s": round(done.wall, 3), "phases_s": phases}

    # -- one long-lived daemon in mirror mode, the container's: polls, changes, disk, packs, RSS

    def main_daemon(self, url: str, change: Change) -> dict[str, Any]:
        state = self.workdir / "daemon-state"
        published = self.workdir / "daemon-published"
        published.mkdir()
        daemon = Daemon(url, state, self.workdir / "daemon.log",
                        SKILLSYNC_PUBLISH_MODE="mirror", SKILLSYNC_PUBLISH_DIR=str(published))
        track = Tracker(state)
        out: dict[str, Any] = {}
        try:
            start = time.perf_counter()
            daemon.wait_event("sync_finished", status="deployed")
            startup = time.perf_counter() - start
            peak = daemon.rss()["VmHWM"]
            daemon.wait_event("next_sync")
            idle = settled_rss(daemon)
            track.first()
            cpu0, w0 = proc_cpu(daemon.pid), time.perf_counter()
            time.sleep(self.idle_window)  # a window with no sync: what the idle loop costs
            idle_rate = (proc_cpu(daemon.pid) - cpu0) / (time.perf_counter() - w0)
            out["no_change_poll"] = self.no_change(daemon, url, state, idle_rate)
            out["one_changed_sighup"] = self.changes(daemon, change, "sighup", 1, track, url)
            out["one_changed_webhook"] = self.changes(daemon, change, "webhook", 1, track)
            one_percent = max(1, self.size // 100)
            out["one_percent_changed"] = self.changes(daemon, change, "webhook", one_percent, track)
            for _ in range(max(self.churn, FIVE - track.deploys)):
                self.deploy(daemon, change, "webhook", 1, track)
            out["rss"] = {"startup_first_sync_s": round(startup, 3), "peak_first_sync_bytes": peak,
                          "idle_bytes": idle, "idle_end_bytes": settled_rss(daemon),
                          "peak_end_bytes": daemon.rss()["VmHWM"]}
            out["disk"] = track.disk()
            out["mirror_packs"] = track.packs()
            self.say(f"[{self.size}] rss {out['rss']}, disk {out['disk']}, packs {out['mirror_packs']}")
        finally:
            daemon.stop()
            _force_rmtree(state)
            _force_rmtree(published)
        return out

    def no_change(self, daemon: Daemon, url: str, state: Path, idle_rate: float) -> dict[str, Any]:
        """SIGHUPs with nothing new, each followed by a ``git ls-remote`` of the same ref."""
        durations, cpu, git = [], [], []
        packs_before = mirror_packs(state)
        mark = len(daemon.history)
        for _ in range(max(3, self.runs)):
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
            git.append(ls_remote(url))
        fetches = sum(1 for ev in daemon.history[mark:] if ev.get("event") == "fetched")
        per_poll_cpu = sum(cpu) / len(cpu)  # /proc counts in 10 ms ticks: average, not median
        cpu_hour = idle_rate * 3600 + per_poll_cpu * 3600 / _TIMING.interval
        ratio = statistics.median(durations) / statistics.median(git)
        self.say(f"[{self.size}] no-change poll: {statistics.median(durations) * 1000:.1f} ms, "
                 f"ls-remote {statistics.median(git) * 1000:.1f} ms ({ratio:.2f}x), CPU {cpu_hour:.1f} s/h")
        return {"duration_s": summary(durations), "git_ls_remote_s": summary(git), "ratio": round(ratio, 3),
                "fetches": fetches, "objects_fetched": objects_in(state, packs_before),
                "cpu_per_poll_s": summary(cpu), "idle_cpu_s_per_s": round(idle_rate, 6),
                "cpu_s_per_hour_at_60s": round(cpu_hour, 2)}

    def changes(self, daemon: Daemon, change: Change, how: str, count: int, track: Tracker,
                git_url: str | None = None) -> dict[str, Any]:
        """``change_runs`` commits of ``count`` skills, each triggered by ``how``; git-sync's way too."""
        to_current, total, git = [], [], []
        baseline = GitSyncBaseline(git_url, self.workdir / "git-sync") if git_url else None
        for _ in range(self.change_runs):
            seen, ev, commit = self.deploy(daemon, change, how, count, track)
            to_current.append(seen)
            total.append(float(ev["duration"]))
            if baseline is not None:
                git.append(baseline.sync(commit))
        shutil.rmtree(self.workdir / "git-sync", ignore_errors=True)
        self.say(f"[{self.size}] {count} changed via {how}: current moved after "
                 f"{statistics.median(to_current):.3f}s"
                 + (f", git {statistics.median(git):.3f}s" if git else ""))
        return {"skills_changed": count, "trigger": how, "to_current_s": summary(to_current),
                "sync_total_s": summary(total), "git_s": summary(git)}

    def deploy(self, daemon: Daemon, change: Change, how: str, count: int,
               track: Tracker) -> tuple[float, dict[str, Any], str]:
        """One commit, one trigger; seconds from the trigger to ``current`` naming the commit."""
        if how == "sighup":
            daemon.wait_for_token()
        daemon.skip()
        commit, _ = change.next(count)
        start = time.perf_counter()
        daemon.sighup() if how == "sighup" else daemon.push(commit)
        seen = watch(daemon.state, commit)
        ev = daemon.wait_event("sync_finished", status="deployed")
        track.deployed()
        return seen.current - start, ev, commit

    # -- a second daemon in mirror mode: how soon the published folder follows `current`

    def mirror_daemon(self, url: str, change: Change) -> dict[str, Any]:
        state = self.workdir / "mirror-state"
        publish = self.workdir / "published"
        publish.mkdir()
        daemon = Daemon(url, state, self.workdir / "mirror-daemon.log",
                        SKILLSYNC_PUBLISH_MODE="mirror", SKILLSYNC_PUBLISH_DIR=str(publish))
        to_current, to_published, lag = [], [], []
        try:
            daemon.wait_event("sync_finished", status="deployed")
            daemon.wait_event("next_sync")
            for _ in range(self.change_runs):
                daemon.skip()
                commit, wanted = change.next(1)
                start = time.perf_counter()
                daemon.push(commit)
                seen = watch(state, commit, publish, wanted)
                assert seen.published is not None
                daemon.wait_event("sync_finished", status="deployed")
                to_current.append(seen.current - start)
                to_published.append(seen.published - start)
                lag.append(seen.published - seen.current)
        finally:
            daemon.stop()
            _force_rmtree(state)
            _force_rmtree(publish)
        self.say(f"[{self.size}] mirror: current {statistics.median(to_current):.3f}s, "
                 f"published +{statistics.median(lag):.3f}s")
        return {"trigger": "webhook", "to_current_s": summary(to_current),
                "to_published_s": summary(to_published), "published_after_current_s": summary(lag)}


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


def _force_rmtree(path: Path) -> None:
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, d), 0o755)
        with contextlib.suppress(OSError):
            os.chmod(dirpath, 0o755)
    shutil.rmtree(path, ignore_errors=True)


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


@dataclass(frozen=True)
class Options:
    sizes: tuple[int, ...]
    runs: int
    change_runs: int
    churn: int
    idle_window: float
    profile: bool


QUICK = Options(sizes=(100,), runs=1, change_runs=1, churn=3, idle_window=0.5, profile=False)


def run_bench(opts: Options, workdir: Path | None, label: str | None,
              say: Callable[[str], None]) -> dict[str, Any]:
    """Every size in turn; returns the results document (machine, code, sizes, targets)."""
    started = time.perf_counter()
    with _workdir(workdir) as base:
        results: dict[str, Any] = {
            "machine": machine(),
            "code": code_info(label),
            "command": "make bench  # .venv/bin/python bench/run.py --out bench/results.json --readme",
            "settings": {"runs": opts.runs, "change_runs": opts.change_runs, "churn": opts.churn,
                         "idle_window_s": opts.idle_window, "interval_s": _TIMING.interval,
                         "transport": "git://"},
            "sizes": [],
        }
        for n in opts.sizes:
            work = base / f"n{n}"
            work.mkdir()
            profile = BENCH / "profiles" if opts.profile and n == max(opts.sizes) else None
            bench = Bench(n, opts.runs, opts.change_runs, opts.churn, opts.idle_window, work, profile, say)
            results["sizes"].append(bench.run())
            _force_rmtree(work)
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
    parser.add_argument("--quick", action="store_true", help="100 skills, one run of each: about 30 s")
    parser.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")),
                        default=DEFAULT_SIZES, help="comma-separated skill counts")
    parser.add_argument("--runs", type=int, default=3, help="first-sync runs (no-change polls: at least 3)")
    parser.add_argument("--change-runs", type=int, default=4, help="runs of each change scenario")
    parser.add_argument("--churn", type=int, default=10, help="extra one-skill deploys (mirror pack growth)")
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
    return Options(sizes=tuple(args.sizes), runs=args.runs, change_runs=args.change_runs, churn=args.churn,
                   idle_window=args.idle_window, profile=not args.no_profile)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    readme_only = args.readme and not any(a.startswith(("--sizes", "--quick", "--out")) for a in argv_list)
    if readme_only:
        results = json.loads(args.results.read_text())
        for path in rewrite_docs(results):
            print(f"rewrote {path.relative_to(ROOT)} from {args.results}")
        return 0

    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    results = run_bench(options(args), args.workdir, args.label, say)
    if not args.quiet:
        print(report.table(results))
        print()
        for t in results["targets"]:
            print(f"{report._verdict(t['met']).upper():12s}  {t['target']}: {t['value']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
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
        _force_rmtree(tmp)


if __name__ == "__main__":
    sys.exit(main())
