"""Real chokidar watchers (npm, pinned in tests/watchers) against real syncs.

Mirror mode: a plain watcher on the published directory sees every add, change,
remove and rollback within 2 s, and reading SKILL.md at that moment gives the
new bytes. Link mode: a watcher on `current` itself misses a flip, while one on
the link's parent (followSymlinks false) sees each flip as a change of `current`
(docs/publish.md). These are the facts docs/publish.md builds its advice on.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from skillsyncd.config import Config, load_config
from skillsyncd.sync.assembly import build_syncer

WATCHERS = Path(__file__).resolve().parent / "watchers"
WATCH_JS = WATCHERS / "watch.mjs"
DEADLINE = 2.0  # what the issue promises a consumer

Event = dict[str, Any]


@pytest.fixture(scope="session")
def node() -> str:
    """Node and the pinned chokidar; `npm ci` on a clean clone (node_modules is not committed)."""
    exe = shutil.which("node")
    npm = shutil.which("npm")
    if exe is None or npm is None:
        pytest.fail("node and npm are needed for the watcher tests (Node >= 18 on PATH)")
    if not (WATCHERS / "node_modules" / "chokidar" / "package.json").is_file():
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                              cwd=WATCHERS, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.fail(f"npm ci in {WATCHERS} failed: {done.stderr[-2000:]}")
    return exe


class Watcher:
    """tests/watchers/watch.mjs as a child process; its JSON lines land in a queue."""

    def __init__(self, node: str, root: Path, *args: str) -> None:
        self.proc = subprocess.Popen([node, str(WATCH_JS), str(root), *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[Event] = queue.Queue()
        self.seen: list[Event] = []
        threading.Thread(target=self._read, daemon=True).start()
        # chokidar may report the root link itself before "ready" despite ignoreInitial
        self.early: list[Event] = []
        while not (first := self.lines.get(timeout=30)).get("ready"):
            self.early.append(first)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            event["_at"] = time.monotonic()  # when this process heard of it
            self.lines.put(event)

    def until(self, done: Callable[[list[Event]], bool], deadline: float) -> list[Event]:
        """Events gathered until ``done(events)`` or the monotonic ``deadline``."""
        while not done(self.seen):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self.seen.append(self.lines.get(timeout=left))
            except queue.Empty:
                break
        return self.seen

    def take(self) -> list[Event]:
        out, self.seen = self.seen, []
        return out

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def watchers(node: str) -> Iterator[Callable[..., Watcher]]:
    started: list[Watcher] = []

    def start(root: Path, *args: str) -> Watcher:
        w = Watcher(node, root, *args)
        started.append(w)
        return w

    yield start
    for w in started:
        w.close()


def mirror_cfg(repo: Any, tmp_path: Path) -> Config:
    return load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "state"),
                              "publish_mode": "mirror", "publish_dir": str(tmp_path / "skills")},
                       env={})


def skill_md(name: str, description: str) -> str:
    return f"---\nname: {name}\ndescription: {description}\n---\n\nUse this skill in tests.\n"


def covers(expected: dict[tuple[str, str], str | None]) -> Callable[[list[Event]], bool]:
    """True once every (event, path) expected has been seen (the last one counts)."""
    def done(events: list[Event]) -> bool:
        got = {(e.get("event"), e.get("path")) for e in events}
        return set(expected) <= got
    return done


def assert_saw(events: list[Event], expected: dict[tuple[str, str], str | None], t0: float) -> None:
    """Each expected event arrived by t0 + DEADLINE and read the expected content."""
    last = {(e["event"], e["path"]): e for e in events if "event" in e}
    for key, content in expected.items():
        assert key in last, f"missing {key} within {DEADLINE} s; saw {events}"
        assert last[key]["content"] == content, (key, last[key])
        assert last[key]["_at"] - t0 <= DEADLINE, (key, last[key]["_at"] - t0)
    stray = [e for e in events if (e.get("event"), e.get("path")) not in expected]
    assert not stray, f"unexpected events: {stray}"


def step(w: Watcher, action: Callable[[], Any], expected: dict[tuple[str, str], str | None]) -> None:
    t0 = time.monotonic()  # the sync starts: stricter than timing from the flip
    action()
    w.until(covers(expected), t0 + DEADLINE)
    # a short quiet period shows nothing else (no unlink-then-add flicker) follows
    w.until(lambda _e: False, time.monotonic() + 0.4)
    assert_saw(w.take(), expected, t0)


def test_chokidar_sees_add_change_remove_and_rollback_in_mirror_mode(
    repo: Any, tmp_path: Path, watchers: Callable[..., Watcher]
) -> None:
    repo.add_skill("alpha", description="Alpha v1.", extra_files={"ref/notes.md": "v1\n"})
    repo.add_skill("beta", description="Beta v1.")
    repo.commit("v1")
    cfg = mirror_cfg(repo, tmp_path)
    syncer = build_syncer(cfg)
    v1 = syncer.sync().release
    assert cfg.publish_dir is not None
    w = watchers(cfg.publish_dir)

    repo.add_skill("gamma", description="Gamma, new.", extra_files={"scripts/go.sh": "echo go\n"})
    repo.commit("add gamma")
    step(w, syncer.sync, {("add", "gamma/SKILL.md"): skill_md("gamma", "Gamma, new.")})
    assert (cfg.publish_dir / "gamma/scripts/go.sh").read_text() == "echo go\n"

    repo.add_skill("alpha", description="Alpha v2.", extra_files={"ref/notes.md": "v2\n"})
    repo.commit("change alpha")
    step(w, syncer.sync, {("change", "alpha/SKILL.md"): skill_md("alpha", "Alpha v2.")})
    assert (cfg.publish_dir / "alpha/ref/notes.md").read_text() == "v2\n"

    repo.remove("beta")
    repo.commit("remove beta")
    step(w, syncer.sync, {("unlink", "beta/SKILL.md"): None})
    assert not (cfg.publish_dir / "beta").exists()

    step(w, lambda: syncer.rollback(to=v1), {
        ("add", "beta/SKILL.md"): skill_md("beta", "Beta v1."),
        ("change", "alpha/SKILL.md"): skill_md("alpha", "Alpha v1."),
        ("unlink", "gamma/SKILL.md"): None,
    })
    assert (cfg.publish_dir / "alpha/ref/notes.md").read_text() == "v1\n"


def test_chokidar_sees_one_commit_that_adds_changes_and_removes(
    repo: Any, tmp_path: Path, watchers: Callable[..., Watcher]
) -> None:
    for name in ("keep", "edit", "drop"):
        repo.add_skill(name, description=f"{name} v1.")
    repo.commit("v1")
    cfg = mirror_cfg(repo, tmp_path)
    syncer = build_syncer(cfg)
    syncer.sync()
    assert cfg.publish_dir is not None
    w = watchers(cfg.publish_dir)
    repo.add_skill("edit", description="edit v2.")
    repo.remove("drop")
    repo.add_skill("new", description="new v1.")
    repo.commit("v2")
    step(w, syncer.sync, {
        ("change", "edit/SKILL.md"): skill_md("edit", "edit v2."),
        ("unlink", "drop/SKILL.md"): None,
        ("add", "new/SKILL.md"): skill_md("new", "new v1."),
    })


def test_link_mode_watcher_on_current_misses_a_flip_but_the_parent_sees_it(
    repo: Any, tmp_path: Path, watchers: Callable[..., Watcher]
) -> None:
    repo.add_skill("alpha", description="Alpha v1.")
    repo.commit("v1")
    cfg = load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "state")}, env={})
    syncer = build_syncer(cfg)
    syncer.sync()
    on_link = watchers(cfg.current_link)
    on_parent = watchers(cfg.state_dir, "--all")

    for flips, version in enumerate(("v2", "v3"), start=1):
        repo.add_skill("alpha", description=f"Alpha {version}.")
        repo.add_skill(f"new-{version}", description="Added.")
        repo.commit(version)
        assert syncer.sync().status == "deployed"
        t0 = time.monotonic()
        seen = on_parent.until(
            lambda ev, n=flips: sum(1 for e in ev if e.get("path") == "current") >= n,
            t0 + DEADLINE)
        flips_seen = [e for e in seen if e.get("path") == "current"]
        assert len(flips_seen) == flips, seen
        assert all(e["event"] == "change" for e in flips_seen), flips_seen
        # the new content is there through the link...
        assert f"Alpha {version}." in (cfg.current_link / "alpha/SKILL.md").read_text()

    # ...but the watcher on the link itself keeps watching the first release: nothing at all
    missed = on_link.until(lambda _e: False, time.monotonic() + DEADLINE)
    assert missed == [], missed
