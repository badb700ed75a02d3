"""The image's two install steps, for real, in a clean venv: the lock, then skillsyncd.

What Dockerfile.patch's RUN does, run here: `pip install --only-binary :all:
--require-hashes -r constraints.txt` into a new venv (every file checked against the
lock's hashes), then skillsyncd from a copy of the checkout with `--no-deps
--no-build-isolation`. The venv must then hold exactly the lock plus skillsyncd, pass
`pip check`, and run both programs the image starts.

No test talks to the internet: pip reads the lock's files from a local wheelhouse
(`make wheelhouse` downloads them once, as a maintainer's step; SKILLSYNC_WHEELHOUSE
names another folder) with `--no-index`, and the tests skip, saying so, without one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from skillsyncd.container.lock import read_lock

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = Path(os.environ.get("SKILLSYNC_WHEELHOUSE", ROOT / ".venv" / "wheelhouse"))
OFFLINE = ["--no-index", "--find-links", str(WHEELHOUSE)]


@pytest.fixture(autouse=True)
def _wheelhouse() -> None:
    if not WHEELHOUSE.is_dir() or not any(WHEELHOUSE.glob("*.whl")):
        pytest.skip(f"no wheelhouse at {WHEELHOUSE}: `make wheelhouse` fills it from the package "
                    "index once (tests never reach the internet)")


def _run(argv: list[str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def test_the_lock_installs_on_a_clean_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    locked = _run([*pip, "install", "--quiet", *OFFLINE, "--only-binary", ":all:",
                   "--require-hashes", "-r", str(ROOT / "constraints.txt")])
    assert locked.returncode == 0, locked.stderr[-3000:]
    # The build writes build/ and an egg-info next to the sources: build a copy.
    files = _run(["git", "-C", str(ROOT), "ls-files", "-z"]).stdout.split("\0")
    src = tmp_path / "skillsyncd"
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    own = _run([*pip, "install", "--quiet", "--no-deps", "--no-build-isolation", str(src)])
    assert own.returncode == 0, own.stderr[-3000:]
    assert _run([*pip, "check"]).returncode == 0
    frozen = _run([*pip, "list", "--format=freeze", "--exclude", "pip"]).stdout.splitlines()
    have = {ln.split("==")[0].lower().replace("_", "-"): ln.split("==")[1] for ln in frozen}
    want = {n: v for n, (v, _h) in read_lock((ROOT / "constraints.txt").read_text()).items()}
    assert have.pop("skillsyncd") == _run([str(venv / "bin" / "skillsyncd"), "--version"]).stdout.split()[-1]
    assert have == want
    sv = _run([str(venv / "bin" / "python"), "-m", "skillsyncd.container.supervise", "--version"])
    assert sv.returncode == 0 and sv.stdout.strip() == want["supervisor"], sv.stdout + sv.stderr


def test_the_script_makes_its_own_parser_venv_from_the_lock(tmp_path: Path) -> None:
    """No SKILLSYNC_INSTALL_PYTHON and a python3 without dockerfile-parse: the one-time venv."""
    system = shutil.which("python3")
    probe = _run([system, "-c", "import dockerfile_parse"]) if system else None
    if probe is None or probe.returncode == 0:
        pytest.skip("needs a python3 on PATH that lacks dockerfile-parse")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text('FROM node:22-bookworm\nCMD ["node", "src/server.js"]\n# bust\n')
    (ctx / "skillsyncd").symlink_to(ROOT)
    env = {"PATH": f"{Path(system).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELHOUSE)}  # pip's own env: offline
    done = subprocess.run(["sh", "skillsyncd/apply-dockerfile-patch.sh"], cwd=ctx, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "gateway program `node src/server.js`" in done.stdout
    venv_python = tmp_path / "cache" / "skillsyncd-install" / "bin" / "python"
    version = _run([str(venv_python), "-c",
                    "import importlib.metadata as m; print(m.version('dockerfile-parse'))"])
    assert version.stdout.strip() == read_lock((ROOT / "constraints.txt").read_text())["dockerfile-parse"][0]
