"""100 syncs per publish mode against the real OpenClaw gateway: how soon skills.status follows.

The user's set-up in small: a repository served over smart HTTP on 127.0.0.1,
one Syncer (what ``skillsyncd run`` runs on each trigger) and the real gateway
reading what it publishes (mirror: a real folder in ``extraDirs``, copied from
a release of per-skill links into ``<state>/store``; link: ``<state>/current``
in ``extraDirs``, releases of real skill folders). Each step is one commit of
one kind, in turn:

- ``add``: a new skill;
- ``change``: a new description (and supporting file) for an existing skill;
- ``rollback``: the user reverts that change (the skill's earlier tree comes back);
- ``remove``: the oldest added skill goes.

Each latency is measured twice, until ``skills.status`` shows exactly the
commit's skills: from the start of the sync (probe, fetch, validation and
staging included) and from the flip of ``current`` (publishing plus the
gateway's watcher). Every step must become visible; how many did within 1 s of the
flip is reported (p50/p95), not asserted. The
daemon is not used: its trigger bucket (3 back to back, then one per 5 s)
would make 100 steps take 8 minutes and measure the bucket. The numbers go to stdout and to
``<tmp>/soak-<mode>.json``; docs/benchmarks.md quotes them.
Rerun: ``.venv/bin/pytest -m e2e -s tests/e2e/test_publish_soak.py``
(``SKILLSYNC_SOAK_STEPS=n`` for fewer steps, ``SKILLSYNC_SOAK_MARKER=0`` to measure
mirror mode without the marker folder).
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
from gitserver import free_port
from openclaw_peer import Gateway, Install

from skillsyncd.config import load_config
from skillsyncd.sync.assembly import build_syncer

pytestmark = pytest.mark.e2e

STEPS = int(os.environ.get("SKILLSYNC_SOAK_STEPS", "100"))
MARKER = os.environ.get("SKILLSYNC_SOAK_MARKER", "1") != "0"  # 0: measure mirror mode without it
BUDGET = 1.0  # seconds from the flip to skills.status showing the commit
GIVE_UP = 10.0  # keep polling past the budget, so a miss is measured, not just flagged
KINDS = ("add", "change", "rollback", "remove")
BASE = {f"base{i}": f"Base skill {i}." for i in range(6)}


@dataclass(frozen=True)
class Sample:
    step: int
    kind: str
    from_trigger: float
    from_flip: float


class UserRepo:
    """The user's repository and the set of skills each commit should show."""

    def __init__(self, repo: Any) -> None:
        self.repo = repo
        self.want = dict(BASE)
        self.added: list[str] = []
        self.before_change: tuple[str, str] | None = None
        for name, description in BASE.items():
            self._write(name, description)
        repo.commit("base")

    def _write(self, name: str, description: str) -> None:
        self.repo.add_skill(name, description=description,
                            extra_files={"ref/notes.md": f"{name}: {description}\n"})
        self.want[name] = description

    def step(self, n: int, kind: str) -> str:
        """Commit one change of ``kind``; returns the commit id."""
        if kind == "add":
            name = f"added{n:03d}"
            self._write(name, f"Added at step {n}.")
            self.added.append(name)
        elif kind == "change":
            name = f"base{n % len(BASE)}"
            self.before_change = (name, self.want[name])
            self._write(name, f"Changed at step {n}, {'longer ' * (n % 3)}text.")
        elif kind == "rollback":
            assert self.before_change is not None
            self._write(*self.before_change)  # the skill's earlier tree, byte for byte
        else:
            name = self.added.pop(0)
            self.repo.remove(name)
            del self.want[name]
        return str(self.repo.commit(f"step {n}: {kind}"))


def _summary(xs: list[float]) -> dict[str, float]:
    ordered = sorted(xs)
    return {"n": len(ordered), "p50": round(statistics.median(ordered), 3),
            "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 3),
            "max": round(ordered[-1], 3)}


def report(mode: str, samples: list[Sample]) -> dict[str, Any]:
    """p50/p95/max from the trigger and from the flip, overall and per kind."""
    out: dict[str, Any] = {"mode": mode, "steps": len(samples), "budget_s": BUDGET}
    for clock in ("from_trigger", "from_flip"):
        out[clock] = {"all": _summary([getattr(s, clock) for s in samples])}
        for kind in KINDS:
            xs = [getattr(s, clock) for s in samples if s.kind == kind]
            if xs:
                out[clock][kind] = _summary(xs)
    out["within_budget"] = sum(s.from_flip <= BUDGET for s in samples)
    out["samples"] = [asdict(s) for s in samples]
    return out


@pytest.fixture
def published(tmp_path: Path) -> Path:
    path = tmp_path / "published"
    path.mkdir()
    return path


def _gateway(openclaw: Install, tmp_path: Path, mode: str, state: Path, published: Path) -> Gateway:
    if mode == "mirror":
        return Gateway(openclaw, tmp_path / "gw", free_port(), [str(published)])
    # Link mode's releases hold real skill folders: no gateway setting beyond extraDirs.
    return Gateway(openclaw, tmp_path / "gw", free_port(), [str(state / "current")])


def _wait_visible(gw: Gateway, under: Path, want: dict[str, str], t0: float) -> float:
    """Monotonic time at which skills.status shows exactly ``want`` (inf after GIVE_UP)."""
    while True:
        if gw.skills(under) == want:
            return time.monotonic()
        if time.monotonic() - t0 > GIVE_UP:
            return float("inf")


class FlipClock:
    """Wraps the Syncer's publisher: the flip is the step right before each publish."""

    def __init__(self, syncer: Any) -> None:
        self.times: list[float] = []
        self._publish = syncer.publish
        syncer.publish = self

    def __call__(self, cfg: Any, release_id: str) -> Any:
        self.times.append(time.monotonic())
        return self._publish(cfg, release_id)


def _measure(gw: Gateway, under: Path, want: dict[str, str], sync: Callable[[], Any],
             flips: FlipClock) -> tuple[float, float]:
    """Run one sync while another thread polls skills.status: (from trigger, from flip)."""
    seen: list[float] = []
    t0 = time.monotonic()
    poller = threading.Thread(target=lambda: seen.append(_wait_visible(gw, under, dict(want), t0)))
    mark = len(flips.times)
    poller.start()
    outcome = sync()
    poller.join()
    assert outcome.status == "deployed", outcome
    assert len(flips.times) == mark + 1, "one publish per sync"
    return seen[0] - t0, seen[0] - flips.times[mark]


@pytest.mark.parametrize("mode", ["link", "mirror"])
def test_hundred_syncs_each_visible_within_a_second(
    mode: str, openclaw: Install, http_git_server: Any, repo: Any, tmp_path: Path, published: Path,
) -> None:
    user = UserRepo(repo)
    state = tmp_path / "state"
    flags: dict[str, Any] = {"repo": http_git_server.url_for(repo), "state_dir": str(state)}
    if mode == "mirror":
        flags.update(publish_mode="mirror", publish_dir=str(published), publish_marker=MARKER)
    syncer = build_syncer(load_config(flags=flags, env={}))
    flips = FlipClock(syncer)
    under = published if mode == "mirror" else state  # skills.status baseDir prefix
    assert syncer.sync().status == "deployed"
    gw = _gateway(openclaw, tmp_path, mode, state, published)
    samples: list[Sample] = []
    try:
        gw.wait_ready()
        t0 = time.monotonic()
        assert _wait_visible(gw, under, user.want, t0) - t0 < GIVE_UP  # the first call arms the watcher
        for n in range(STEPS):
            kind = KINDS[n % len(KINDS)]
            user.step(n, kind)
            from_trigger, from_flip = _measure(gw, under, user.want, syncer.sync, flips)
            samples.append(Sample(n, kind, round(from_trigger, 4), round(from_flip, 4)))
    finally:
        gw.stop()
    result = report(mode, samples)
    (tmp_path / f"soak-{mode}.json").write_text(json.dumps(result, indent=1))
    print(f"\nsoak {mode}: {result['within_budget']}/{len(samples)} within {BUDGET} s of the flip; "
          f"written to {tmp_path / f'soak-{mode}.json'}")
    for clock in ("from_flip", "from_trigger"):
        for kind, s in result[clock].items():
            print(f"  {clock:12s} {kind:8s} n={s['n']:3d} p50 {s['p50']:.3f} p95 {s['p95']:.3f} "
                  f"max {s['max']:.3f}")
    # The 1 s budget is reported (within_budget, p50/p95) and judged by make bench, not here:
    # on a shared machine one slow step says nothing about the code. A step the gateway
    # never showed is a wrong result, and that fails.
    unseen = [s for s in samples if s.from_flip == float("inf")]
    assert not unseen, f"{len(unseen)} of {len(samples)} steps never showed within {GIVE_UP} s: {unseen}"
