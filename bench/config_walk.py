"""Measure the configuration's walk: the calls that receive the Config, from `skillsyncd run`.

Runs the daemon in-process on a local repository for one sync (then SIGTERM), with a
profiler recording every call into a skillsyncd function that receives a Config as an
argument. A hop is such a call from one module into another (each caller->callee pair
once, in first-seen order); a hop goes *back* when it enters a module the walk entered
before. Printed twice: the config passed on (calls of Config's own methods left out:
asking the config for a derived value is not passing it on) and every call.

    .venv/bin/python bench/config_walk.py REPO STATE_DIR   # REPO: a local git repository
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import skillsyncd
import skillsyncd.config as config_module

PACKAGE = Path(skillsyncd.__file__).resolve().parent.parent
Edge = tuple[str, str, str, str]  # caller module, caller function, callee module, callee function


def _module_of(frame: FrameType) -> str:
    return str(frame.f_globals.get("__name__", ""))


def _recorder(edges: list[Edge], seen: set[Edge]) -> Any:
    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call" or not _module_of(frame).startswith("skillsyncd"):
            return
        code = frame.f_code
        names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
        if not any(isinstance(frame.f_locals.get(n), config_module.Config) for n in names):
            return
        caller = frame.f_back
        while caller is not None and not _module_of(caller).startswith("skillsyncd"):
            caller = caller.f_back
        key = (_module_of(caller) if caller else "<entry>", caller.f_code.co_qualname if caller else "",
               _module_of(frame), code.co_qualname)
        if key not in seen:
            seen.add(key)
            edges.append(key)
    return profile


def _stop_after_first_sync(state: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (state / "current").exists():
        time.sleep(0.2)
    time.sleep(1.0)  # let the sync finish its record
    os.kill(os.getpid(), signal.SIGTERM)


def summarize(edges: list[Edge], skip_config: bool) -> tuple[int, int, int]:
    """(hops, back, modules entered) of a walk."""
    hops = back = 0
    entered: list[str] = []
    for caller, _, callee, _ in edges:
        if caller == callee or (skip_config and callee == "skillsyncd.config"):
            continue
        hops += 1
        if callee in entered:
            back += 1
        else:
            entered.append(callee)
    return hops, back, len(entered)


def main(repo: str, state: str) -> None:
    edges: list[Edge] = []
    profile = _recorder(edges, set())
    threading.Thread(target=_stop_after_first_sync, args=(Path(state),), daemon=True).start()
    threading.setprofile(profile)
    sys.setprofile(profile)
    from skillsyncd import cli
    try:
        cli.main(["run", "--repo", repo, "--state-dir", state, "--http-bind", "127.0.0.1:0"])
    except SystemExit:
        pass
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    for caller, cf, callee, fn in edges:
        if caller != callee:
            print(f"  {caller}.{cf} -> {callee}.{fn}", file=sys.stderr)
    for label, skip in (("config passed on", True), ("every call", False)):
        hops, back, modules = summarize(edges, skip)
        print(f"{label}: {hops} hops into {modules} modules, {back} back into a module already entered")
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
