"""The bench's parts: workload, real processes, git baselines, disk; no scenario logic.

bench/scenarios.py drives these per publish mode and bench/run.py writes the
results; kept apart so each stays a readable size.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from gitserver import RepoBuilder, free_port, git_env, run_git  # noqa: E402

# Token bucket of event triggers (skillsyncd.daemon.schedule.Timing): SIGHUPs beyond
# the burst are deferred, so the bench waits for a token before it starts a clock.
from skillsyncd.daemon.schedule import Timing  # noqa: E402

TIMING = Timing(interval=60.0, jitter=0.1, backoff_max=600.0)
PYTHON = Path(sys.executable)
SKILLSYNCD = [str(PYTHON), "-m", "skillsyncd"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


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


def run_checked(cmd: Sequence[str], env: dict[str, str], log: Path, what: str) -> Finished:
    """``run_timed`` that raises, with the log's tail, when the command failed."""
    done = run_timed(cmd, env, log=log)
    _check(done, what, log)
    return done


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
        self._tokens = float(TIMING.trigger_burst)
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
        self._tokens = min(float(TIMING.trigger_burst),
                           self._tokens + (now - self._tokens_at) / TIMING.trigger_refill)
        self._tokens_at = now
        if self._tokens < 1.05:
            time.sleep((1.05 - self._tokens) * TIMING.trigger_refill)
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


def ls_remote(url: str) -> Finished:
    """``git ls-remote`` of the one branch, as a process (what a shell poller pays): wall and CPU."""
    done = run_timed(["git", "ls-remote", url, "refs/heads/main"], git_env())
    _check(done, "git ls-remote")
    return done


def force_rmtree(path: Path) -> None:
    """Remove a tree the daemon may have left read-only (releases are made read-only)."""
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, d), 0o755)
        with contextlib.suppress(OSError):
            os.chmod(dirpath, 0o755)
    shutil.rmtree(path, ignore_errors=True)
