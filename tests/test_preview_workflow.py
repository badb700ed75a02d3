"""The pull-request workflow docs/operations.md shows, run as written.

The test reads the doc: the export command of "A check on every pull request"
and the workflow's YAML. It deploys a real repository with ``--once``, runs the
export line in that state, serves the file on 127.0.0.1, checks the pull request
out as ``actions/checkout`` does (a shallow fetch of ``refs/pull/N/merge``,
detached), then runs each ``run:`` step of the workflow with ``bash -e`` (the
shell GitHub gives a ``run:`` step) and the ``GITHUB_OUTPUT`` and
``GITHUB_STEP_SUMMARY`` files a runner provides. Of the ``run:`` steps only
``pip install`` is not run (skillsyncd is this venv's, first on PATH); of the
``uses:`` steps, checkout is done as above, setup-python is this interpreter, and
the comment action would post ``plan.md``, which the test reads.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitserver import HttpGitServer, RepoBuilder, run_git

DOC = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
BIN = str(Path(sys.executable).parent)
NOT_RUN = {"install skillsyncd"}  # pip install: skillsyncd is this venv's, first on PATH
RUN = ("fetch the live manifest", "plan", "fail when anything would be held back")


def _section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## Previewing a change: `skillsyncd plan`")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", _section(), flags=re.S)


def _export_line() -> str:
    lines = [line for block in _blocks("sh") for line in block.splitlines()
             if "status --manifest" in line]
    assert len(lines) == 1, lines
    return lines[0]


def _workflow() -> dict[str, Any]:
    (block,) = _blocks("yaml")
    doc: dict[str, Any] = yaml.safe_load(block)
    return doc


class Runner:
    """Runs a workflow's ``run:`` steps the way a GitHub runner does, in ``workspace``."""

    def __init__(self, workspace: Path, secrets: Mapping[str, str], tmp: Path) -> None:
        self.workspace, self.secrets = workspace, dict(secrets)
        self.output, self.summary = tmp / "github_output", tmp / "step_summary"
        self.output.write_text("")
        self.summary.write_text("")
        self.codes: dict[str, int] = {}

    def outputs(self, step: str) -> dict[str, str]:
        assert step == "plan"  # the one step with an id
        return dict(line.split("=", 1) for line in self.output.read_text().splitlines() if line)

    def expand(self, text: str) -> str:
        def one(match: re.Match[str]) -> str:
            expr = match.group(1).strip()
            kind, _, rest = expr.partition(".")
            if kind == "secrets":
                return self.secrets[rest]
            found = re.fullmatch(r"steps\.(\w+)\.outputs\.(\w+)", expr)
            assert found, f"an expression the test does not know: {expr}"
            return self.outputs(found.group(1)).get(found.group(2), "")
        return re.sub(r"\$\{\{(.*?)\}\}", one, text)

    def wanted(self, condition: str | None) -> bool:
        if condition is None:
            return True
        found = re.fullmatch(r"steps\.(\w+)\.outputs\.(\w+) != '(.*)'", condition.strip())
        assert found, f"a condition the test does not know: {condition}"
        return self.outputs(found.group(1)).get(found.group(2)) != found.group(3)

    def run(self, step: dict[str, Any]) -> int | None:
        if not self.wanted(step.get("if")):
            return None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SKILLSYNC_", "GITHUB_"))}
        env.update({k: self.expand(str(v)) for k, v in (step.get("env") or {}).items()})
        env.update(PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", CI="true",
                   GITHUB_OUTPUT=str(self.output), GITHUB_STEP_SUMMARY=str(self.summary))
        script = self.workspace.parent / "step.sh"
        script.write_text(self.expand(step["run"]))
        done = subprocess.run(["bash", "-e", str(script)], cwd=self.workspace, env=env,
                              capture_output=True, text=True, timeout=180)
        self.codes[step["name"]] = done.returncode
        return done.returncode


@pytest.fixture
def manifest_url(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving one folder: where the export is uploaded."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/live-manifest.json", folder
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _checkout(repo: RepoBuilder, pr: int, into: Path) -> Path:
    """What actions/checkout does for a pull request: refs/pull/N/merge, shallow, detached."""
    run_git("init", "-q", str(into))
    run_git("fetch", "-q", "--depth", "1", str(repo.path), f"refs/pull/{pr}/merge", cwd=into)
    run_git("checkout", "-q", "--detach", "FETCH_HEAD", cwd=into)
    return into


def _pull_request(repo: RepoBuilder, pr: int, branch: str, change: dict[str, str]) -> None:
    """A branch with ``change`` (path -> content) and its merge into main as refs/pull/N/merge."""
    repo.branch(branch, "main")
    repo._git("checkout", "-q", branch)
    for path, content in change.items():
        repo.write(path, content)
    repo.commit(f"pull request {pr}")
    repo._git("checkout", "-q", "--detach", "main")
    repo._git("merge", "-q", "--no-ff", "-m", f"Merge {branch}", branch)
    repo._git("update-ref", f"refs/pull/{pr}/merge", "HEAD")
    repo._git("checkout", "-q", "main")


def _deploy_and_export(repo: RepoBuilder, http_git_server: HttpGitServer, tmp_path: Path,
                       served: Path) -> None:
    repo.add_skill("alpha", description="first", version="1.0")
    repo.add_skill("beta", description="b")
    repo.commit("v1")
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKILLSYNC_", "GITHUB_"))}
    env.update(SKILLSYNC_REPO=http_git_server.url_for(repo), SKILLSYNC_STATE_DIR=str(state),
               PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["skillsyncd", "--once"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    # The doc's export line, run as written in the container's environment.
    done = subprocess.run(["bash", "-e", "-c", _export_line()], cwd=served, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"live_state"' in (served / "live-manifest.json").read_text()


def _steps() -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = _workflow()["jobs"]["plan"]["steps"]
    runs = [s["name"] for s in steps if "run" in s]
    assert set(runs) == NOT_RUN | set(RUN), runs  # a new step in the doc needs a line here
    assert "pip install" in next(s["run"] for s in steps if s.get("name") == "install skillsyncd")
    return [s for s in steps if s.get("name") in RUN]


def test_the_documented_workflow_comments_and_fails_a_pull_request_that_holds_back_a_skill(
        repo: RepoBuilder, http_git_server: HttpGitServer, tmp_path: Path,
        manifest_url: tuple[str, Path]) -> None:
    url, served = manifest_url
    assert _workflow()[True] == "pull_request"  # YAML 1.1 reads the key `on` as True
    _deploy_and_export(repo, http_git_server, tmp_path, served)
    _pull_request(repo, 7, "broken", {"alpha/SKILL.md": "---\nname: alpha\ndescription: second\n"
                                      "version: \"1.1\"\n---\nbody\n",
                                      "gamma/SKILL.md": "no frontmatter\n"})
    workspace = _checkout(repo, 7, tmp_path / "workspace")
    runner = Runner(workspace, {"LIVE_MANIFEST_URL": url}, tmp_path)

    codes = [runner.run(step) for step in _steps()]

    assert codes == [0, 0, 4]  # the plan step records the exit code, the last step fails with it
    assert runner.outputs("plan") == {"exit": "4"}
    plan = (workspace / "plan.md").read_text()
    assert plan.startswith("### :x: skillsyncd plan: would deploy, 1 held back\n")
    assert "| `alpha` | changed | version: 1.0 → 1.1<br>description: first → second |" in plan
    assert "| `gamma` | added |" in plan and "**held back**: `frontmatter.missing`" in plan
    assert "from the manifest live-manifest.json exported " in plan
    assert runner.summary.read_text() == plan


def test_the_documented_workflow_passes_a_clean_pull_request(
        repo: RepoBuilder, http_git_server: HttpGitServer, tmp_path: Path,
        manifest_url: tuple[str, Path]) -> None:
    url, served = manifest_url
    _deploy_and_export(repo, http_git_server, tmp_path, served)
    _pull_request(repo, 8, "fine", {"delta/SKILL.md": "---\nname: delta\ndescription: d\n---\nbody\n"})
    workspace = _checkout(repo, 8, tmp_path / "workspace")
    runner = Runner(workspace, {"LIVE_MANIFEST_URL": url}, tmp_path)

    codes = [runner.run(step) for step in _steps()]

    assert codes == [0, 0, None]  # nothing held back: the failing step does not run
    assert runner.outputs("plan") == {"exit": "0"}
    plan = (workspace / "plan.md").read_text()
    assert plan.startswith("### :white_check_mark: skillsyncd plan: would deploy\n")
    assert "**+1 ~0 -0 =2; 0 held back; 3 skills live after**" in plan
    assert "| `delta` | added |" in plan and "| goes live |" in plan
