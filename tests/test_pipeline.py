"""Issue 14: what serves after any failure is what served before, one writer of state.

Each test reproduces a defect from outside (the CLI, a Syncer with the real
wiring, a local HTTP server on 127.0.0.1) and failed before the pipeline rewrite.
"""

from __future__ import annotations

import ast
import errno
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skillsyncd.cli import main
from skillsyncd.config import Config, load_config
from skillsyncd.publish.publisher import publish
from skillsyncd.release.releases import Releases
from skillsyncd.sync.assembly import build_syncer

ROOT = Path(__file__).resolve().parent.parent


def cfg_for(url: str, state: Path, **env: str) -> Config:
    return load_config(flags={"repo": url, "state_dir": str(state)}, env=env)


def journal_kinds(state: Path) -> list[str]:
    path = state / "audit" / "journal.jsonl"
    if not path.exists():
        path = next(state.rglob("journal*.jsonl"))
    return [json.loads(line)["kind"] for line in path.read_text().splitlines() if line.strip()]


def journal_events(state: Path, kind: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted(state.rglob("journal*.jsonl")):
        out += [e for e in map(json.loads, path.read_text().splitlines()) if e["kind"] == kind]
    return out


def state_json(state: Path) -> dict[str, Any]:
    return dict(json.loads((state / "state.json").read_text()))


def status_of(state: Path, capfd: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capfd.readouterr()
    assert main(["status", "--json", "--state-dir", str(state)]) == 0
    lines = capfd.readouterr().out.splitlines()
    return dict(json.loads("\n".join(lines[lines.index("{"):])))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("SKILLSYNC_", "NEO4J_")):
            monkeypatch.delenv(name)


# --- a failure after the flip flips back -------------------------------------------------


def test_publish_failure_after_the_flip_flips_back_and_republishes(repo: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    repo.add_skill("alpha", description="one")
    first_commit = repo.commit("one")
    cfg = cfg_for(str(repo.path), state, SKILLSYNC_PUBLISH_MODE="mirror",
                  SKILLSYNC_PUBLISH_DIR=str(tmp_path / "pub"))
    syncer = build_syncer(cfg)
    published: list[str] = []
    second_commit = ""

    def failing_for_second(cfg: Config, release_id: str) -> Any:
        published.append(release_id)
        if second_commit and release_id.endswith(second_commit[:12]):
            raise OSError(errno.ENAMETOOLONG, "File name too long", str(tmp_path / ("x" * 300)))
        return publish(cfg, Releases(cfg.state_dir).dir(release_id))

    syncer.publish = failing_for_second
    first = syncer.sync()
    assert first.status == "deployed" and first.commit == first_commit
    repo.add_skill("alpha", description="two")
    second_commit = repo.commit("two")
    out = syncer.sync()
    assert out.status == "rolled_back" and out.release == first.release
    assert "File name too long" in (out.reason or "")
    assert Releases(state).current() == first.release
    assert published[-1] == first.release  # republished what served before
    doc = state_json(state)
    assert doc["commit"] == first_commit and doc["release"] == first.release
    # publishing failed, not the commit: it is retried at the next sync, never marked bad
    assert second_commit not in doc["bad_commits"] and doc["failure_streak"] == 1
    (event,) = journal_events(state, "rolled_back")
    assert event["commit"] == second_commit and "File name too long" in event["reason"]
    assert not [e for e in journal_events(state, "deployed") if e["commit"] == second_commit]


def test_publish_failure_on_first_deploy_leaves_nothing_live_and_exits_1(
    repo: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str], clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = tmp_path / "state"
    repo.add_skill("alpha", description="one")
    head = repo.commit("one")
    monkeypatch.setenv("SKILLSYNC_PUBLISH_MODE", "mirror")
    monkeypatch.setenv("SKILLSYNC_PUBLISH_DIR", str(tmp_path / ("x" * 300) / "skills"))
    assert main(["--once", "--repo", str(repo.path), "--state-dir", str(state)]) == 1
    err = capfd.readouterr().err
    assert "Traceback" not in err and "rolled_back" in err
    assert Releases(state).current() is None
    assert not (state / "current").exists()
    doc = state_json(state)
    assert doc["commit"] is None and head not in doc["bad_commits"]
    assert not list((state / "releases").glob("*")), "a release that never served is removed"
    assert journal_events(state, "rolled_back") and not journal_events(state, "deployed")


def test_failed_check_on_the_first_deploy_is_a_failure(
    repo: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str], clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = tmp_path / "state"
    repo.add_skill("alpha", description="one")
    head = repo.commit("one")
    monkeypatch.setenv("SKILLSYNC_HEALTH_COMMAND", "false")
    monkeypatch.setenv("SKILLSYNC_HEALTH_RETRIES", "1")
    assert main(["--once", "--repo", str(repo.path), "--state-dir", str(state)]) == 1
    assert Releases(state).current() is None
    doc = status_of(state, capfd)
    assert doc["current_release"] is None
    assert head in doc["bad_commits"] and doc["failure_streak"] == 1 and doc["last_error"]
    (event,) = journal_events(state, "rolled_back")
    assert event["commit"] == head and "health command" in event["reason"]


# --- rollback never brings back a commit marked bad --------------------------------------------


def test_default_rollback_target_is_the_release_current_replaced_skipping_bad(
    repo: Any, tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    cfg = cfg_for(str(repo.path), state)
    syncer = build_syncer(cfg)
    commits = {}
    for name in ("A", "B"):
        repo.add_skill("a", description=name)
        commits[name] = repo.commit(name)
        assert syncer.sync().status == "deployed"
    first = syncer.rollback()
    assert first.commit == commits["A"]
    repo.add_skill("a", description="C")
    commits["C"] = repo.commit("C")
    assert syncer.sync().status == "deployed"
    second = syncer.rollback()
    assert second.commit == commits["A"], "B is marked bad; C replaced A"
    doc = state_json(state)
    assert doc["commit"] == commits["A"]
    assert {commits["B"], commits["C"]} <= set(doc["bad_commits"])


# --- a broken publish dir is a reported failure, never a wedge ---------------------------------


def test_broken_publish_dir_fails_each_sync_cleanly_and_status_tells_the_truth(
    repo: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str], clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = tmp_path / "state"
    good = tmp_path / "pub"
    monkeypatch.setenv("SKILLSYNC_PUBLISH_MODE", "mirror")
    monkeypatch.setenv("SKILLSYNC_PUBLISH_DIR", str(good / "skills"))
    args = ["--once", "--repo", str(repo.path), "--state-dir", str(state)]
    repo.add_skill("alpha", description="one")
    repo.commit("one")
    assert main(args) == 0
    live = Releases(state).current()
    capfd.readouterr()
    # the publish dir now lies under a regular file
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv("SKILLSYNC_PUBLISH_DIR", str(blocker / "skills"))
    repo.add_skill("alpha", description="two")
    repo.commit("two")
    for attempt in (1, 2):
        code = main(args)
        err = capfd.readouterr().err
        assert code == 1, err
        assert "Traceback" not in err
        assert str(blocker) in err, err  # names the publish dir, not the state dir
        assert Releases(state).current() == live
        doc = status_of(state, capfd)
        assert doc["current_release"] == live
        assert doc["failure_streak"] == attempt and str(blocker) in (doc["last_error"] or "")


# --- a gateway that is down or starting never marks a commit bad -----------------------------


class Gateway:
    """A health endpoint on 127.0.0.1 that can be down, healthy or unhealthy."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.healthy = True
        self.server: http.server.ThreadingHTTPServer | None = None
        self.sick_when: Any = None  # callable -> bool, checked per request

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def start(self) -> None:
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                sick = gateway.sick_when() if gateway.sick_when else not gateway.healthy
                self.send_response(500 if sick else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gw = Gateway(port)
    yield gw
    gw.stop()


def test_gateway_starting_during_deploy_is_waited_for_not_blamed(
    repo: Any, tmp_path: Path, gateway: Gateway,
) -> None:
    state = tmp_path / "state"
    repo.add_skill("alpha", description="one")
    repo.commit("one")
    cfg = cfg_for(str(repo.path), state, SKILLSYNC_HEALTH_URL=gateway.url,
                  SKILLSYNC_HEALTH_TIMEOUT="1", SKILLSYNC_HEALTH_START_WAIT="20")
    gateway.start()
    syncer = build_syncer(cfg)
    assert syncer.sync().status == "deployed"
    gateway.stop()  # the gateway crashed; a push arrives while it restarts
    repo.add_skill("alpha", description="two")
    head = repo.commit("two")
    timer = threading.Timer(3.0, gateway.start)  # listening again 3 s later
    timer.start()
    try:
        out = syncer.sync()
    finally:
        timer.cancel()
    assert out.status == "deployed", out.reason
    assert head not in state_json(state)["bad_commits"]


def test_gateway_down_throughout_is_reported_and_never_marks_the_commit_bad(
    repo: Any, tmp_path: Path, gateway: Gateway,
) -> None:
    state = tmp_path / "state"
    repo.add_skill("alpha", description="one")
    head = repo.commit("one")
    cfg = cfg_for(str(repo.path), state, SKILLSYNC_HEALTH_URL=gateway.url,
                  SKILLSYNC_HEALTH_TIMEOUT="0.5", SKILLSYNC_HEALTH_START_WAIT="1")
    out = build_syncer(cfg).sync()
    assert head not in state_json(state)["bad_commits"]
    assert "not ready" in (out.reason or "")


def test_gateway_healthy_before_and_sick_after_marks_the_commit_bad(
    repo: Any, tmp_path: Path, gateway: Gateway,
) -> None:
    state = tmp_path / "state"
    repo.add_skill("alpha", description="one")
    repo.commit("one")
    cfg = cfg_for(str(repo.path), state, SKILLSYNC_HEALTH_URL=gateway.url,
                  SKILLSYNC_HEALTH_TIMEOUT="0.5", SKILLSYNC_HEALTH_RETRIES="2")
    gateway.start()
    syncer = build_syncer(cfg)
    first = syncer.sync()
    assert first.status == "deployed"
    repo.add_skill("poison", description="breaks the gateway")
    bad = repo.commit("poison")
    gateway.sick_when = lambda: (state / "current" / "poison").exists()
    out = syncer.sync()
    assert out.status == "rolled_back" and Releases(state).current() == first.release
    assert bad in state_json(state)["bad_commits"]


# --- status when nothing can be written ----------------------------------------------------------


def test_status_reports_an_unwritable_state_dir(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from skillsyncd import status as status_mod

    state = tmp_path / "state"
    state.mkdir()

    def refuse(path: Path) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(status_mod, "_try_write", refuse)
    doc = status_of(state, capfd)
    disk = doc["state_dir_health"]
    assert disk["writable"] is False and "Read-only file system" in disk["problem"]
    assert disk["free_bytes"] >= 0 and disk["filesystem"]


def test_enospc_message_names_the_filesystem_and_free_space(tmp_path: Path) -> None:
    from skillsyncd.status import disk_error

    exc = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))
    text = disk_error(exc, tmp_path)
    assert "No space left on device" in text and "free" in text
    assert "filesystem /" in text or "filesystem " in text


# --- the package's shape ---------------------------------------------------------------------------


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """skillsyncd module -> skillsyncd modules it imports, deferred imports included."""
    files = {_module_name(p): p for p in (ROOT / "skillsyncd").rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                           for a in node.names]
            for t in targets:
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != mod and t.startswith("skillsyncd"):
                    graph[mod].add(t)
    return graph


def test_the_package_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    # A module naming its own package (``from skillsyncd import __version__``) is
    # implied by Python's import order, not a dependency: those edges are left out.
    for mod, deps in graph.items():
        graph[mod] = {d for d in deps if not mod.startswith(d + ".")}
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(graph, WHITE)
    stack: list[str] = []

    def visit(node: str) -> None:
        color[node] = GREY
        stack.append(node)
        for dep in sorted(graph[node]):
            if color[dep] == GREY:
                cycle = [*stack[stack.index(dep):], dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if color[dep] == WHITE:
                visit(dep)
        stack.pop()
        color[node] = BLACK

    for node in sorted(graph):
        if color[node] == WHITE:
            visit(node)


def test_importing_the_package_changes_nothing_process_wide() -> None:
    code = (
        "import socket, sys\n"
        "hooks = []\n"
        "before = socket.getdefaulttimeout()\n"
        "import skillsyncd.source.remote, skillsyncd.sync.pipeline\n"
        "import skillsyncd.sync.assembly, skillsyncd.cli\n"
        "assert socket.getdefaulttimeout() == before, socket.getdefaulttimeout()\n"
        "import skillsyncd.source.deadline as s\n"
        "assert s._hook_installed is False\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    for module in ("remote.py", "deadline.py", "transport.py"):
        tree = ast.parse((ROOT / "skillsyncd" / "source" / module).read_text())
        top_level_calls = [n for n in tree.body
                           if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
        assert top_level_calls == [], f"a module-level call in {module} runs on import"


# --- the manifest, a typed value ---------------------------------------------------------------


def test_a_0_1_0_manifest_reads_with_defaults_and_round_trips_the_documented_keys() -> None:
    from skillsyncd.release.manifest import Manifest

    old = {"format": 1, "release": "20260101T000000Z-aaaaaaaaaaaa", "commit": "a" * 40,
           "tree": "t", "ref": "main", "source": "https://x/y", "skills_path": "",
           "created": "2026-01-01T00:00:00.000Z", "previous_release": None,
           "history_rewritten": False,
           "validation": {"policy": "skip", "held_back": [], "errors": 0, "warnings": 0},
           "skills": [{"name": "a", "live": True, "status": "ok", "change": "added",
                       "content_sha": "s", "commit": "a" * 40, "version": None,
                       "description": "d", "files": 1, "bytes": 3, "warnings": []}]}
    m = Manifest.from_json(json.dumps(old))
    assert m.layout == () and m.settings is None and m.skills[0].effective_name is None
    assert m.skills[0].gateway_name == "a"
    doc = json.loads(m.to_json())
    assert set(doc) == {"format", "release", "commit", "tree", "ref", "source", "skills_path",
                        "created", "previous_release", "history_rewritten", "validation",
                        "layout", "settings", "tag", "skills"}
    assert {"name", "live", "status", "change", "content_sha", "commit", "version",
            "declared_name", "effective_name", "description", "files", "bytes",
            "warnings"} <= set(doc["skills"][0])
    assert Manifest.from_json(m.to_json()) == m
