"""Crash-consistency harness: SIGKILL real skillsyncd processes, restart, check the promises.

Each trial changes the skills repository (adds, changes, removes skills), starts a
real ``skillsyncd --once`` (or ``skillsyncd run`` while the head keeps moving),
and kills it with SIGKILL: at a random instant, at a named point of the sync
(tests/chaos/killer.py), or just before the N-th file-system mutation. Every sync
runs a pre-flip command (SKILLSYNC_PRE_FLIP_COMMAND, a script that says yes), so
the named points include kills before it starts, while it runs and once it has
answered. Then:

* right after the kill: ``current`` (if anything was ever deployed) resolves to a
  complete release whose files match its manifest; the journal's complete lines
  are valid events with unique ids and contiguous seqs (a torn last line is allowed);
* a plain restart (``skillsyncd --once``) exits 0, and afterwards ``current`` is
  complete and intact, the published mirror equals it, nothing incomplete or
  temporary is left, the journal has no torn line and at most one ``deployed``
  event per release, ``skillsyncd status`` agrees, and the deployed commit is
  the head with exactly the repository's skills at the repository's tree ids.

    .venv/bin/python tests/chaos/run.py --trials 500 [--seed S] [--out FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
sys.path.insert(0, str(TESTS))

from gitserver import GitRoot, HttpGitServer, RepoBuilder, run_git  # noqa: E402

from skillsyncd.config import Config, load_config  # noqa: E402
from skillsyncd.publish.publisher import TMP_DIR, verify_published  # noqa: E402
from skillsyncd.release.releases import RELEASE_ID_RE, Releases  # noqa: E402
from skillsyncd.release.verify import verify_release  # noqa: E402
from skillsyncd.status import status_dict  # noqa: E402
from skillsyncd.sync.state import load_state  # noqa: E402

KILLER = HERE / "killer.py"
SKILLSYNCD = str(Path(sys.executable).parent / "skillsyncd")
POINT_NAMES = ("mid-fetch", "after-fetch", "before-stage", "mid-stage", "mid-place", "mid-link",
               "manifest-write", "before-flip", "after-flip", "mid-publish", "publish-claim",
               "publish-remove", "before-check", "before-veto", "mid-veto", "after-veto",
               "journal-then-state", "before-state",
               "mid-journal", "before-prune", "mid-prune", "mid-collect")
MODES = ("random", "point", "syscall", "daemon")
# The pre-flip command of every trial: it reads its stdin and the staged release, takes a
# moment (so a kill lands while it runs), and lets the release go live.
PRE_FLIP = """#!/bin/sh
cat > /dev/null
ls "$SKILLSYNC_RELEASE_PATH" > /dev/null || exit 1
sleep 0.05
exit 0
"""


class TrialFailure(AssertionError):
    """One broken promise, with enough context to reproduce it."""


@dataclass
class Report:
    trials: int = 0
    killed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    by_mode: Counter[str] = field(default_factory=Counter)
    by_point: Counter[str] = field(default_factory=Counter)
    restart_outcomes: Counter[str] = field(default_factory=Counter)
    torn_tails_seen: int = 0
    seconds: float = 0.0
    seed: int = 0
    transport: str = "http"

    def as_json(self) -> dict[str, Any]:
        return {"trials": self.trials, "killed": self.killed, "failures": len(self.failures),
                "failure_details": self.failures[:50], "by_mode": dict(self.by_mode),
                "by_point": dict(sorted(self.by_point.items())),
                "restart_outcomes": dict(self.restart_outcomes),
                "torn_tails_seen": self.torn_tails_seen, "seconds": round(self.seconds, 1),
                "seed": self.seed, "transport": self.transport}


# --- the repository whose head keeps changing ------------------------------------------


class Origin:
    """A skills repository plus the harness's model of which skills it holds."""

    def __init__(self, repo: RepoBuilder, rng: random.Random) -> None:
        self.repo = repo
        self.rng = rng
        self.skills: set[str] = set()
        self.counter = 0

    def _write_skill(self, name: str) -> None:
        rng = self.rng
        extra: dict[str, str | bytes] = {}
        for i in range(rng.randint(0, 3)):
            folder = rng.choice(("", "scripts/", "references/", "assets/deep/"))
            extra[f"{folder}file{i}.txt"] = f"{name} {self.counter} {i}\n" * rng.randint(1, 40)
        if rng.random() < 0.15:  # now and then a bigger file, so staging takes a while
            extra["assets/big.bin"] = rng.randbytes(rng.randint(50_000, 400_000))
        self.repo.add_skill(name, description=f"Skill {name}, revision {self.counter}.",
                            extra_files=extra)
        if rng.random() < 0.2:
            self.repo.write(f"{name}/scripts/run.sh", f"#!/bin/sh\necho {self.counter}\n", mode=0o755)

    def mutate(self) -> str:
        """Add, change and remove a few skills, commit, and return the new head."""
        rng = self.rng
        self.counter += 1
        for _ in range(rng.randint(0 if self.skills else 1, 3)):
            name = f"skill-{rng.randint(0, 40):02d}"
            self._write_skill(name)
            self.skills.add(name)
        for name in rng.sample(sorted(self.skills), k=min(len(self.skills), rng.randint(0, 3))):
            self._write_skill(name)
        if len(self.skills) > 3:
            for name in rng.sample(sorted(self.skills), k=rng.randint(0, 2)):
                self.repo.remove(name)
                self.skills.discard(name)
        return self.repo.commit(f"change {self.counter}")

    def tree_ids(self) -> dict[str, str]:
        """Top-level folder name -> git tree id at HEAD."""
        out = run_git("ls-tree", "HEAD", cwd=self.repo.path)
        ids = {}
        for line in out.splitlines():
            meta, _, name = line.partition("\t")
            _mode, kind, sha = meta.split()
            if kind == "tree":
                ids[name] = sha
        return ids


# --- checks -----------------------------------------------------------------------------


def journal_lines(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Parsed complete events, and whether the file ends in a torn (newline-less) line."""
    if not path.exists():
        return [], False
    raw = path.read_bytes()
    torn = bool(raw) and not raw.endswith(b"\n")
    body = raw.rsplit(b"\n", 1)[0] if torn else raw
    events = []
    for n, line in enumerate(body.splitlines(), 1):
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise TrialFailure(f"journal line {n} is not JSON: {line[:120]!r}") from exc
        if not isinstance(event, dict) or "id" not in event or "seq" not in event:
            raise TrialFailure(f"journal line {n} is not an event: {line[:120]!r}")
        events.append(event)
    return events, torn


def check_journal(cfg: Config, allow_torn: bool) -> bool:
    events, torn = journal_lines(cfg.journal_file)
    if torn and not allow_torn:
        raise TrialFailure("journal ends in a torn line after a clean append")
    ids = [e["id"] for e in events]
    if len(set(ids)) != len(ids):
        raise TrialFailure("journal holds a duplicate event id")
    seqs = [int(e["seq"]) for e in events]
    for a, b in itertools.pairwise(seqs):
        if b != a + 1:
            raise TrialFailure(f"journal seq jumps from {a} to {b}")
    deployed = Counter(e["release"] for e in events if e.get("kind") == "deployed")
    twice = [r for r, n in deployed.items() if n > 1]
    if twice:
        raise TrialFailure(f"release {twice[0]} has {deployed[twice[0]]} deployed events")
    return torn


def check_current(cfg: Config) -> str:
    rel = Releases(cfg.state_dir)
    current = rel.current()
    if current is None:
        target = os.readlink(cfg.current_link) if cfg.current_link.is_symlink() else None
        raise TrialFailure(f"current does not resolve to a complete release (link: {target})")
    if os.readlink(cfg.current_link) != f"releases/{current}":
        raise TrialFailure(f"current is not the relative link releases/{current}")
    problems = verify_release(rel, current)
    if problems:
        raise TrialFailure(f"release {current} does not match its manifest: {problems[:3]}")
    return current


def check_after_restart(cfg: Config, origin: Origin, head: str) -> None:
    current = check_current(cfg)
    rel = Releases(cfg.state_dir)
    problems = verify_published(cfg, current)
    if problems:
        raise TrialFailure(f"published view differs from {current}: {problems[:3]}")
    leftovers = [p.name for p in rel.root.iterdir()
                 if p.name.startswith(".") or (p.is_dir() and not rel.manifest_path(p.name).is_file())
                 or (p.suffix == ".json" and not rel.dir(p.stem).is_dir())
                 or not RELEASE_ID_RE.match(p.name.removesuffix(".json"))]
    leftovers += [p.name for p in cfg.state_dir.iterdir() if p.name.startswith(".")]
    leftovers += [str(p.relative_to(cfg.mirror_dir)) for p in cfg.mirror_dir.rglob("*")
                  if p.name.endswith(".lock") or p.name.startswith("tmp_pack_")
                  or (p.suffix == ".pack" and not p.with_suffix(".idx").exists())]
    assert cfg.publish_dir is not None
    leftovers += [p.name for p in cfg.publish_dir.iterdir() if p.name == TMP_DIR]
    if rel.store.work.is_dir():  # half-written or half-removed skill versions
        leftovers += [f"store/.work/{p.name}" for p in rel.store.work.iterdir()]
    if leftovers:
        raise TrialFailure(f"leftovers after restart: {leftovers}")
    for rid in rel.complete():  # every kept release is still a rollback target: no version lost
        missing = verify_release(rel, rid, only=set())
        if missing:
            raise TrialFailure(f"kept release {rid} lost what it serves: {missing[:3]}")
    check_journal(cfg, allow_torn=False)
    manifest = rel.manifest(current)
    if manifest.commit != head:
        raise TrialFailure(f"did not converge: {current} is commit {manifest.commit[:12]}, "
                           f"head is {head[:12]}")
    live = manifest.live_shas()
    want = {n: sha for n, sha in origin.tree_ids().items() if n in origin.skills}
    if live != want:
        raise TrialFailure(f"live skills {sorted(live)} differ from the repository's {sorted(want)}")
    published = {p.name for p in cfg.publish_dir.iterdir()
                 if p.is_dir() and not p.name.startswith(".")}
    if published != set(live):
        raise TrialFailure(f"publish dir holds {sorted(published)}, release {sorted(live)}")
    state = load_state(cfg.state_file)
    if state.release != current or state.commit != head:
        raise TrialFailure(f"state.json says {state.release}/{(state.commit or '-')[:12]}, "
                           f"disk says {current}")
    status = status_dict(cfg)
    if status["current_release"] != current or status["deployed_commit"] != head:
        raise TrialFailure(f"status disagrees: {status['current_release']}")


# --- running skillsyncd -------------------------------------------------------------------


class Runner:
    """Starts skillsyncd processes for one state dir, publish dir and repository URL."""

    def __init__(self, work: Path, url: str) -> None:
        self.work = work
        self.url = url
        self.state = work / "state"
        self.publish = work / "published"
        self.count_file = work / "mutations"
        veto = work / "pre-flip.sh"  # a veto that reads what it is given, looks, and says yes
        veto.write_text(PRE_FLIP)
        veto.chmod(0o755)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("SKILLSYNC_", "GITHUB_", "NEO4J_", "POLLING_"))}
        self.env.update(SKILLSYNC_PUBLISH_MODE="mirror", SKILLSYNC_PUBLISH_DIR=str(self.publish),
                        SKILLSYNC_JITTER="0", SKILLSYNC_NETWORK_TIMEOUT="10",
                        SKILLSYNC_LOCK_TIMEOUT="10", CHAOS_COUNT_FILE=str(self.count_file),
                        # the random commits may remove most skills at once: that is the
                        # workload here, not a mistake for the mass-removal guard to refuse
                        SKILLSYNC_ALLOW_MASS_REMOVAL="true",
                        SKILLSYNC_PRE_FLIP_COMMAND=str(veto), SKILLSYNC_PRE_FLIP_TIMEOUT="20")
        self.cfg = load_config(flags={"repo": url, "state_dir": str(self.state)},
                               env={k: v for k, v in self.env.items() if k.startswith("SKILLSYNC_")})
        self.mutations = 60  # refined from every clean run
        self.duration = 0.6  # seconds of a clean --once, refined likewise

    def args(self) -> list[str]:
        return ["--once", "--repo", self.url, "--state-dir", str(self.state)]

    def once(self, spec: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        self.count_file.unlink(missing_ok=True)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(KILLER), spec, *self.args()], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode == 0:
            self.duration = 0.8 * self.duration + 0.2 * (time.monotonic() - started)
            if spec == "none" and self.count_file.exists():
                seen = int(self.count_file.read_text() or 0)
                self.mutations = max(20, int(0.7 * self.mutations + 0.3 * seen))
        return proc

    def kill_at_random(self, rng: random.Random) -> int:
        proc = subprocess.Popen([SKILLSYNCD, *self.args()], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, self.duration * 1.1))
        proc.send_signal(signal.SIGKILL)
        return proc.wait(30)

    def daemon(self, origin: Origin, rng: random.Random) -> int:
        """``skillsyncd run`` polling fast while the head moves; SIGKILLed at a random instant."""
        argv = [SKILLSYNCD, "run", "--repo", self.url, "--state-dir", str(self.state),
                "--http-bind", "127.0.0.1:0"]
        env = {**self.env, "SKILLSYNC_INTERVAL": "0.05"}
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + rng.uniform(0.3, 3.0)
        while time.monotonic() < end and proc.poll() is None:
            origin.mutate()
            time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        return proc.wait(30)


# --- trials -------------------------------------------------------------------------------


def one_trial(i: int, runner: Runner, origin: Origin, rng: random.Random, report: Report,
              mode: str, point: str | None = None) -> None:
    ever_deployed = Releases(runner.state).current() is not None
    spec = "-"
    if mode == "daemon":
        code = runner.daemon(origin, rng)
    else:
        origin.mutate()
        if mode == "random":
            code = runner.kill_at_random(rng)
        elif mode == "point":
            assert point is not None
            k = rng.randint(0, 2) if point in ("mid-stage", "mid-place", "mid-publish", "mid-link",
                                                "mid-journal", "publish-claim") else 0
            spec = f"point:{point}:{k}"
            report.by_point[point] += 1
            code = runner.once(spec).returncode
        else:
            spec = f"syscall:{rng.randint(1, runner.mutations)}"
            code = runner.once(spec).returncode
    head = origin.repo.head()
    report.by_mode[mode] += 1
    if code == -signal.SIGKILL:
        report.killed += 1
    elif code not in (0,):
        raise TrialFailure(f"{mode} {spec}: exited {code} instead of being killed or succeeding")

    # Right after the kill: the live release is intact; the journal may only be torn at the end.
    if ever_deployed or Releases(runner.state).current() is not None:
        check_current(runner.cfg)
    if check_journal(runner.cfg, allow_torn=True):
        report.torn_tails_seen += 1

    restart = runner.once("none")
    if restart.returncode != 0:
        raise TrialFailure(f"restart after {mode} {spec} exited {restart.returncode}: "
                           f"{restart.stderr.strip()[-400:]}")
    report.restart_outcomes[restart.stderr.split(":", 1)[0].strip()] += 1
    check_after_restart(runner.cfg, origin, head)


def default_schedule(trials: int) -> list[tuple[str, str | None]]:
    """Modes in rotation, named points in rotation, so a short run still visits every point."""
    out: list[tuple[str, str | None]] = []
    for i in range(trials):
        mode = MODES[i % len(MODES)]
        out.append((mode, POINT_NAMES[(i // len(MODES)) % len(POINT_NAMES)] if mode == "point"
                    else None))
    return out


def run_trials(trials: int, seed: int, work: Path, transport: str = "http",
               schedule: list[tuple[str, str | None]] | None = None,
               log: Callable[[str], None] = print) -> Report:
    """Run kill-and-restart cycles against one evolving repository and state dir."""
    schedule = schedule or default_schedule(trials)
    rng = random.Random(seed)
    report = Report(seed=seed, transport=transport)
    started = time.monotonic()
    root = GitRoot(work / "git-root")
    repo = RepoBuilder(work / "origin", name="skills")
    root.register(repo)
    server = HttpGitServer(root) if transport == "http" else None
    if server is not None:  # killed clients reset connections: expected, not worth a traceback
        server._httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
    try:
        url = server.url_for(repo) if server else str(repo.path)
        runner = Runner(work, url)
        origin = Origin(repo, rng)
        for i, (mode, point) in enumerate(schedule):
            try:
                one_trial(i, runner, origin, rng, report, mode, point)
            except (TrialFailure, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as exc:
                detail = {"trial": i, "mode": mode, "point": point, "error": str(exc)[:600]}
                report.failures.append(detail)
                log(f"trial {i} FAILED: {detail}")
                saved = work / f"failure-{i}"
                shutil.copytree(runner.state, saved / "state", symlinks=True, dirs_exist_ok=True)
                # start the next trial from a clean, converged state
                runner.once("none")
            report.trials += 1
            if (i + 1) % 25 == 0:
                log(f"{i + 1}/{len(schedule)} trials, {len(report.failures)} failures, "
                    f"{time.monotonic() - started:.0f}s")
    finally:
        if server is not None:
            server.close()
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--transport", choices=("http", "local"), default="http")
    parser.add_argument("--out", help="write the JSON report here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    work = Path(tempfile.mkdtemp(prefix="skillsyncd-chaos-"))
    report = run_trials(args.trials, seed, work, transport=args.transport)
    if not args.keep and not report.failures:
        shutil.rmtree(work, ignore_errors=True)
    doc = report.as_json()
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: v for k, v in doc.items() if k != "failure_details"}, indent=2))
    print(f"{report.trials} trials, {report.killed} killed, {len(report.failures)} failures "
          f"in {report.seconds:.0f}s (seed {seed}, {args.transport}); "
          f"reproduce: {Path(sys.executable).name} tests/chaos/run.py --trials {args.trials} "
          f"--seed {seed} --transport {args.transport}")
    if args.keep or report.failures:
        print(f"work directory: {work}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
