"""The container as operators run it: supervisord from the shipped conf, the real gateway, mirror mode.

supervisord.conf unchanged (plus the tests' drop-in moving the socket, run with
``-s`` as docs/operations.md says), the real OpenClaw gateway as ``app:gateway``,
``skillsyncd run`` as an unprivileged user (``nobody`` stands in for ``moltbot``)
mirroring into the gateway's managed folder. Then what operators do: a push and
``supervisorctl signal HUP``, a root ``skillsyncd --once`` (refused, nothing
root-owned left behind), a gateway crash (restarted, every skill still listed),
and a stop (everything exits, status 0).
"""

from __future__ import annotations

import json
import os
import pwd
import queue
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from gitserver import free_port
from openclaw_peer import QUIET_ENV, RPC_JS, Install
from test_daemon import SKILLSYNCD
from test_supervisord import Stack, _alive, _base_env, _skillsyncd_for, stack  # noqa: F401 (fixture)

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")]

SKILLS = 20


class Rpc:
    """The gateway's own client in one node process; each call connects anew (survives restarts)."""

    def __init__(self, inst: Install, port: int, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([str(inst.node), str(RPC_JS), str(inst.package), str(port)],
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        self.replies: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.replies.get(timeout=120).get("ready")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.replies.put(json.loads(line))

    def skills(self, under: Path) -> dict[str, str | None] | None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"method": "skills.status", "params": {}}) + "\n")
        self.proc.stdin.flush()
        reply = self.replies.get(timeout=30)
        if not reply.get("ok"):
            return None  # the gateway is down or restarting
        return {s["name"]: s.get("description") for s in reply["result"].get("skills", [])
                if str(s.get("baseDir", "")).startswith(str(under))}

    def close(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _readies(s: Stack) -> int:
    """How many times the gateway logged that it is ready (its lines are coloured)."""
    return sum(_ANSI.sub("", ln).endswith("[gateway] ready") for ln in list(s.out))


def _until(pred: Any, what: str, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_the_container_topology_end_to_end(
    openclaw: Install, stack: Any, http_git_server: Any, repo: Any, tmp_path: Path,  # noqa: F811
) -> None:
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="skillsync-topo-"))
    rpc: Rpc | None = None
    try:
        base.chmod(0o755)
        reach = _skillsyncd_for(nobody, base / "bin")
        state, oc_state, home = base / "skillsync", base / "openclaw", base / "home"
        managed = oc_state / "skills"  # $OPENCLAW_STATE_DIR/skills, as Dockerfile.patch sets
        for d in (oc_state, home):
            d.mkdir()
        managed.mkdir()
        os.chown(managed, nobody.pw_uid, nobody.pw_gid)  # the entrypoint's chown -R, in small
        port = free_port()
        (oc_state / "openclaw.json").write_text(json.dumps({
            "gateway": {"mode": "local", "bind": "loopback", "port": port, "auth": {"mode": "none"}},
            "models": {"catalogRefresh": {"enabled": False}}}))
        want = {f"skill{i:02d}": f"Skill {i} v1." for i in range(SKILLS)}
        for name, description in want.items():
            repo.add_skill(name, description=description)
        first = repo.commit("v1")
        gateway_cmd = " ".join(shlex.quote(p) for p in (
            str(openclaw.node), str(openclaw.package / "openclaw.mjs"), "gateway", "run",
            "--allow-unconfigured", "--port", str(port), "--bind", "loopback"))
        gw_env = {"HOME": str(home), "OPENCLAW_STATE_DIR": str(oc_state), "LANG": "C.UTF-8",
                  "NO_COLOR": "1", "OPENCLAW_GATEWAY_PORT": str(port),  # the conf's URL follows it
                  **QUIET_ENV}
        env = _base_env({**gw_env, **reach,
                         "PATH": f"{openclaw.node.parent}{os.pathsep}{reach['PATH']}",
                         "SKILLSYNC_GATEWAY_COMMAND": gateway_cmd,
                         "SKILLSYNC_REPO": http_git_server.url_for(repo),
                         "SKILLSYNC_STATE_DIR": str(state), "SKILLSYNC_USER": "nobody",
                         "SKILLSYNC_PUBLISH_MODE": "mirror", "SKILLSYNC_PUBLISH_DIR": str(managed),
                         "SKILLSYNC_GATEWAY_CONFIRM": "report"})  # the conf's default URL
        s: Stack = stack(env, workdir=base)
        # the first deploy waits for the booting gateway (its confirmation), then asks it
        s.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("status") == "deployed"
                     and e.get("commit") == first, "first deploy", timeout=180)
        confirmed = s.wait_event(lambda e: e.get("event") == "gateway_confirmed", "the confirmation")
        assert (confirmed["seen"], confirmed["expected"]) == (SKILLS, SKILLS), confirmed
        s.wait(lambda: _readies(s) >= 1, "the gateway ready", timeout=180)
        rpc = Rpc(openclaw, port, {**env, **gw_env})
        _until(lambda: rpc.skills(managed) == want, "every published skill listed", 30)

        # a push, then what docs/operations.md offers as "sync now"
        want["skill00"] = "Skill 0 v2."
        want["added"] = "Added in v2."
        repo.add_skill("skill00", description=want["skill00"])
        repo.add_skill("added", description=want["added"])
        repo.commit("v2")
        t0 = time.monotonic()
        assert s.ctl("signal", "HUP", "app:skillsyncd").returncode == 0
        seen = _until(lambda: rpc.skills(managed) == want, "push + HUP", 30)
        print(f"topology: push + supervisorctl signal HUP visible in the gateway after "
              f"{time.monotonic() - t0:.2f} s ({seen:.2f} s of polling)")

        # a root --once inside the container: refused, and nothing root-owned appears
        once = subprocess.run([SKILLSYNCD, "--once"], env=env, capture_output=True, text=True,
                              timeout=60)
        assert once.returncode == 2, once.stderr
        assert "runuser -u nobody -- skillsyncd" in once.stderr
        root_owned = [str(p) for d in (state, managed) for p in [d, *d.rglob("*")]
                      if p.lstat().st_uid == 0]
        assert root_owned == []

        # the gateway crashes: supervisord restarts it, every skill is still listed
        pid = int(s.ctl("pid", "app:gateway").stdout.strip())
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        s.wait(lambda: _readies(s) >= 2,
               "the gateway restarted", timeout=180)
        _until(lambda: rpc.skills(managed) == want, "skills after the gateway restart", 60)
        print(f"topology: gateway killed, listed again after {time.monotonic() - t0:.2f} s")
        assert s.states().get("app:skillsyncd") == "RUNNING"

        # stop: all exit, status 0
        children = s.spawned_pids()
        assert s.stop(timeout=40) == 0
        _until(lambda: not any(_alive(p) for p in children), "every program gone", 10)
    finally:
        if rpc is not None:
            rpc.close()
        shutil.rmtree(base, ignore_errors=True)
