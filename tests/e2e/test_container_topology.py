"""The container as operators run it: supervisord from the shipped conf, the real gateway, mirror mode.

supervisord.conf unchanged (plus the tests' drop-in moving the socket, run with
``-s`` as docs/operations.md says), started as the image's CMD starts it (the
``skillsyncd.container.supervise`` wrapper), the real OpenClaw gateway as ``app:gateway``
started by the command the install derived from a Dockerfile (apply-dockerfile-patch.sh,
read back from the block's ENV line), ``skillsyncd run`` as an unprivileged user
(``nobody`` stands in for ``moltbot``) mirroring into the gateway's managed folder, in
both layouts:

- root-gateway (the standalone template): ``CMD ["node", ...]`` starts the gateway as
  root, its state dir is root's and nothing chowns it; the managed folder does not exist.
- moltbot (the monorepo): ``ENTRYPOINT []`` + ``CMD ["sh", "entrypoint.sh"]``, whose
  entrypoint, as root, chowns the state dir to the service user (its ``chown -R /data``)
  and execs the gateway as that user. The cached Node and OpenClaw live under root's
  private home, so that user runs a hard-linked copy of them.

Then what operators do: a push and ``supervisorctl signal HUP``, a root
``skillsyncd --once`` (refused, nothing root-owned left behind), a gateway crash
(restarted, every skill still listed), and a stop (everything exits, status 0).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser
from gitserver import free_port
from openclaw_peer import QUIET_ENV, RPC_JS, Install
from test_daemon import SKILLSYNCD
from test_dockerfile_patch import context, install
from test_supervisord import Stack, _alive, _base_env, _skillsyncd_for, stack  # noqa: F401 (fixture)

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")]

SKILLS = 20


class Rpc:
    """The gateway's own client in one node process; each call connects anew (survives restarts)."""

    def __init__(self, inst: Install, port: int, env: dict[str, str], prefix: list[str]) -> None:
        self.proc = subprocess.Popen([*prefix, str(inst.node), str(RPC_JS), str(inst.package), str(port)],
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


def _gateway_argv(layout: str, openclaw: Install, port: int, base: Path) -> list[str]:
    """The gateway's own command line; for the moltbot layout, on copies its user can reach."""
    node, package = openclaw.node, openclaw.package
    if layout == "moltbot":
        (base / "node").mkdir()
        os.link(node, base / "node" / "node")
        subprocess.run(["cp", "-al", str(package.parent.parent), str(base / "oc")], check=True, timeout=300)
        node, package = base / "node" / "node", base / "oc" / package.relative_to(package.parent.parent)
    return [str(node), str(package / "openclaw.mjs"), "gateway", "run", "--allow-unconfigured",
            "--port", str(port), "--bind", "loopback"]


def _derived_gateway_command(layout: str, gateway: list[str], base: Path, tmp_path: Path) -> str:
    """Install into a Dockerfile that starts ``gateway`` as ``layout`` does; the ENV it wrote."""
    if layout == "root-gateway":
        dockerfile = (f"FROM node:22-bookworm\nWORKDIR /app\nENV PORT=8080\nCMD {json.dumps(gateway)}\n"
                      "# Cache bust 1770100900 - a comment after the command\n")
    else:
        nobody = pwd.getpwnam("nobody")
        entrypoint = base / "entrypoint.sh"
        entrypoint.write_text(
            '#!/bin/sh\n# the monorepo entrypoint, in small: fix the volume, drop to the user\n'
            'chown -R nobody "$OPENCLAW_STATE_DIR" "$HOME"\n'
            f"exec setpriv --reuid={nobody.pw_uid} --regid={nobody.pw_gid} --init-groups "
            f"{' '.join(shlex.quote(w) for w in gateway)}\n")
        dockerfile = (f"FROM node:22-bookworm-slim\nWORKDIR /app\nEXPOSE 18789\nENTRYPOINT []\n"
                      f'CMD ["sh", "{entrypoint}"]\n# Build complete\n# Cache buster: 1771443664\n')
    ctx = context(tmp_path, dockerfile)
    done = install(ctx)
    assert done.returncode == 0, done.stderr
    print(f"topology ({layout}): {done.stdout.strip()}")
    parser = DockerfileParser(path=str(ctx), env_replace=False)
    return str(parser.envs["SKILLSYNC_GATEWAY_COMMAND"])


@dataclass(frozen=True)
class _Container:
    """One running container stand-in: supervisord, its programs, and where they write."""

    s: Stack
    rpc: Rpc
    env: dict[str, str]
    state: Path
    oc_state: Path
    managed: Path
    first: str


def _boot(layout: str, openclaw: Install, stack: Any, http_git_server: Any, repo: Any,  # noqa: F811
          base: Path, tmp_path: Path, want: dict[str, str]) -> _Container:
    """Everything up as the installed image starts it; the first sync deployed, the gateway ready."""
    nobody = pwd.getpwnam("nobody")
    reach = _skillsyncd_for(nobody, base / "bin")
    state, oc_state, home = base / "skillsync", base / "openclaw", base / "home"
    # $OPENCLAW_STATE_DIR/skills, as the block sets; root's state dir, no managed folder yet.
    managed = oc_state / "skills"
    for d in (oc_state, home):
        d.mkdir()
    port = free_port()
    (oc_state / "openclaw.json").write_text(json.dumps({
        "gateway": {"mode": "local", "bind": "loopback", "port": port, "auth": {"mode": "none"}},
        "models": {"catalogRefresh": {"enabled": False}}}))
    for name, description in want.items():
        repo.add_skill(name, description=description)
    first = repo.commit("v1")
    gateway = _gateway_argv(layout, openclaw, port, base)
    gw_env = {"HOME": str(home), "OPENCLAW_STATE_DIR": str(oc_state), "LANG": "C.UTF-8",
              "NO_COLOR": "1", "OPENCLAW_GATEWAY_PORT": str(port),  # the conf's URL follows it
              **QUIET_ENV}
    env = _base_env({**gw_env, **reach,
                     "PATH": f"{openclaw.node.parent}{os.pathsep}{reach['PATH']}",
                     "SKILLSYNC_GATEWAY_COMMAND": _derived_gateway_command(layout, gateway, base, tmp_path),
                     "SKILLSYNC_REPO": http_git_server.url_for(repo),
                     "SKILLSYNC_STATE_DIR": str(state), "SKILLSYNC_USER": "nobody",
                     "SKILLSYNC_PUBLISH_MODE": "mirror", "SKILLSYNC_PUBLISH_DIR": str(managed),
                     "SKILLSYNC_GATEWAY_FATAL_FILE": str(base / "gateway-fatal"),
                     "SKILLSYNC_GATEWAY_CONFIRM": "report"})  # the conf's default URL
    s: Stack = stack(env, workdir=base, supervise=True)
    # the first deploy waits for the booting gateway (its confirmation), then asks it
    s.wait_event(lambda e: e.get("event") == "sync_finished" and e.get("status") == "deployed"
                 and e.get("commit") == first, "first deploy", timeout=180)
    confirmed = s.wait_event(lambda e: e.get("event") == "gateway_confirmed", "the confirmation")
    assert (confirmed["seen"], confirmed["expected"]) == (len(want), len(want)), confirmed
    s.wait(lambda: _readies(s) >= 1, "the gateway ready", timeout=180)
    # The client runs as the gateway's user, as the image's CLI would: the moltbot
    # entrypoint's chown -R of the state dir would hand a root client's identity to nobody.
    as_gateway = ([] if layout == "root-gateway" else
                  ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--init-groups"])
    client = Install(node=Path(gateway[0]), package=Path(gateway[1]).parent)
    rpc = Rpc(client, port, {**env, **gw_env}, as_gateway)
    return _Container(s, rpc, env, state, oc_state, managed, first)


@pytest.mark.parametrize("layout", ["root-gateway", "moltbot"])
def test_the_container_topology_end_to_end(
    layout: str, openclaw: Install, stack: Any, http_git_server: Any, repo: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="skillsync-topo-"))
    base.chmod(0o755)
    want = {f"skill{i:02d}": f"Skill {i} v1." for i in range(SKILLS)}
    c: _Container | None = None
    try:
        c = _boot(layout, openclaw, stack, http_git_server, repo, base, tmp_path, want)
        s, rpc, managed = c.s, c.rpc, c.managed
        _until(lambda: rpc.skills(managed) == want, "every published skill listed", 30)
        # The first sync published: the managed folder was handed to skillsyncd's user.
        assert managed.stat().st_uid == nobody.pw_uid
        assert (c.oc_state.stat().st_uid == 0) == (layout == "root-gateway")
        gateway_uid = os.stat(f"/proc/{int(s.ctl('pid', 'app:gateway').stdout.strip())}").st_uid
        assert gateway_uid == (0 if layout == "root-gateway" else nobody.pw_uid)

        # a push, then what docs/operations.md offers as "sync now"
        want["skill00"] = "Skill 0 v2."
        want["added"] = "Added in v2."
        repo.add_skill("skill00", description=want["skill00"])
        repo.add_skill("added", description=want["added"])
        repo.commit("v2")
        t0 = time.monotonic()
        assert s.ctl("signal", "HUP", "app:skillsyncd").returncode == 0
        seen = _until(lambda: rpc.skills(managed) == want, "push + HUP", 30)
        print(f"topology ({layout}): push + supervisorctl signal HUP visible in the gateway after "
              f"{time.monotonic() - t0:.2f} s ({seen:.2f} s of polling)")

        # a root --once inside the container: refused, and nothing root-owned appears
        once = subprocess.run([SKILLSYNCD, "--once"], env=c.env, capture_output=True, text=True,
                              timeout=60)
        assert once.returncode == 2, once.stderr
        assert "runuser -u nobody -- skillsyncd" in once.stderr
        root_owned = [str(p) for d in (c.state, managed) for p in [d, *d.rglob("*")]
                      if p.lstat().st_uid == 0]
        assert root_owned == []

        # the gateway crashes: supervisord restarts it, every skill is still listed
        os.kill(int(s.ctl("pid", "app:gateway").stdout.strip()), signal.SIGKILL)
        t0 = time.monotonic()
        s.wait(lambda: _readies(s) >= 2, "the gateway restarted", timeout=180)
        _until(lambda: rpc.skills(managed) == want, "skills after the gateway restart", 60)
        print(f"topology ({layout}): gateway killed, listed again after {time.monotonic() - t0:.2f} s")
        assert s.states().get("app:skillsyncd") == "RUNNING"

        # stop: all exit, status 0
        children = s.spawned_pids()
        assert s.stop(timeout=40) == 0
        _until(lambda: not any(_alive(p) for p in children), "every program gone", 10)
    finally:
        if c is not None:
            c.rpc.close()
        shutil.rmtree(base, ignore_errors=True)
