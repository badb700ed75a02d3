"""A scratch root that holds an image's users, for running the block's user creation for real.

Only the programs that step runs (sh, id, useradd, install, nologin) and their libraries are
copied in, with the image's /etc/passwd, group, shadow and gshadow written from a list of
(name, uid) pairs; the step runs under chroot(8), so `id` and useradd see the image's users
and nothing of the machine's. Needs root (chroot).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

_PROGRAMS = ("/bin/sh", "/usr/bin/id", "/usr/sbin/useradd", "/usr/bin/install", "/usr/sbin/nologin")


def _copy_with_libraries(program: str, root: Path) -> None:
    real = Path(program).resolve()
    dest = root / program.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(real, dest)
    ldd = subprocess.run(["ldd", str(real)], capture_output=True, text=True, timeout=30)
    for word in ldd.stdout.split():
        if word.startswith("/"):
            lib = root / word.lstrip("/")
            if not lib.exists():
                lib.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(word).resolve(), lib)


def make_root(root: Path, users: list[tuple[str, int]]) -> Path:
    """A chroot-able tree with ``users`` (each with a group of the same name and id)."""
    for program in _PROGRAMS:
        _copy_with_libraries(program, root)
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    everyone = [("root", 0), *users]
    (etc / "passwd").write_text("".join(f"{n}:x:{u}:{u}::/home/{n}:/bin/sh\n" for n, u in everyone))
    (etc / "group").write_text("".join(f"{n}:x:{u}:\n" for n, u in everyone))
    (etc / "shadow").write_text("".join(f"{n}:*:20000:0:99999:7:::\n" for n, _ in everyone))
    (etc / "gshadow").write_text("".join(f"{n}:!::\n" for n, _ in everyone))
    shutil.copy2("/etc/login.defs", etc / "login.defs")
    (root / "dev").mkdir(exist_ok=True)
    os.mknod(root / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return root


def run_in_root(root: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chroot", str(root), "/bin/sh", "-c", script], capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def users_of(root: Path) -> dict[str, int]:
    """name -> uid, from the root's /etc/passwd."""
    out: dict[str, int] = {}
    for line in (root / "etc" / "passwd").read_text().splitlines():
        name, _x, uid = line.split(":")[:3]
        out[name] = int(uid)
    return out


def user_creation_step(block: str) -> str:
    """The block's RUN that creates skillsyncd's user, as sh would run it (continuations joined)."""
    lines = block.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("RUN ") and "useradd" in "".join(
        lines[i:i + 4]))
    out: list[str] = []
    for ln in lines[start:]:
        out.append(ln.removeprefix("RUN ").rstrip("\\").rstrip())
        if not ln.endswith("\\"):
            break
    return " ".join(out)
