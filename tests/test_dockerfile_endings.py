"""The install reads any ending of a gateway Dockerfile and carries its start command over.

Pure tests of skillsyncd/container/ (dockerfile.read_start_command, install.plan_install)
over synthetic Dockerfiles: every instruction form, comments and blank lines after the
command, ARG and LABEL after it, several stages, `ENTRYPOINT []`, shell form, SHELL, USER.
The expected commands are Docker's documented rules, written out by hand.
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from hypothesis import given, settings
from hypothesis import strategies as st

from skillsyncd.container.dockerfile import DockerfileError, read_start_command
from skillsyncd.container.install import (
    BLOCK_END,
    BLOCK_START,
    block_template,
    env_quote,
    plan_install,
)

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = block_template((ROOT / "Dockerfile.patch").read_text())
SUPERVISE = ('CMD ["/opt/skillsyncd/bin/python", "-m", "skillsyncd.container.supervise", "-c", '
             '"/etc/supervisor/supervisord.conf"]')
TOP = "FROM node:22-bookworm-slim\nWORKDIR /app\nRUN npm install -g openclaw@latest\n"

# name -> (Dockerfile, the argv Docker would exec, the user it runs as)
ENDINGS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "exec ENTRYPOINT, last line": (TOP + 'ENTRYPOINT ["/app/entrypoint.sh"]\n',
                                   ("/app/entrypoint.sh",), ""),
    "exec ENTRYPOINT, four comment lines after": (
        TOP + 'ENTRYPOINT ["/app/entrypoint.sh"]\n# Build timestamp: x\n# Cache-bust: v3\n\n# done\n',
        ("/app/entrypoint.sh",), ""),
    "exec CMD, then a comment": (TOP + 'CMD ["node", "src/server.js"]\n# Cache bust 1770100900\n',
                                 ("node", "src/server.js"), ""),
    "ENTRYPOINT [] + CMD sh, comments and ARG after": (
        TOP + 'ENTRYPOINT []\nCMD ["sh", "/app/entrypoint.sh"]\n# Railway\n\nARG CACHE_BUST=2026-11-30\n',
        ("sh", "/app/entrypoint.sh"), ""),
    "ARG and LABEL after the last CMD": (
        TOP + 'CMD ["node", "a.js"]\nARG CACHEBUST=1\nLABEL built="today"\nEXPOSE 8080\n',
        ("node", "a.js"), ""),
    "shell-form CMD": (TOP + "CMD node src/server.js --port $PORT\n",
                       ("/bin/sh", "-c", "node src/server.js --port $PORT"), ""),
    "shell-form CMD over continuation lines": (TOP + "CMD cd /app \\\n    && exec node a.js\n",
                                               ("/bin/sh", "-c", "cd /app     && exec node a.js"), ""),
    "shell-form ENTRYPOINT ignores CMD's words": (
        TOP + 'CMD ["--verbose"]\nENTRYPOINT /app/run.sh\n',
        ("/bin/sh", "-c", "/app/run.sh", "--verbose"), ""),
    "exec ENTRYPOINT with exec CMD arguments": (
        TOP + 'ENTRYPOINT ["node"]\nCMD ["src/server.js", "--port", "8080"]\n',
        ("node", "src/server.js", "--port", "8080"), ""),
    "exec ENTRYPOINT with shell-form CMD": (TOP + 'ENTRYPOINT ["tini", "--"]\nCMD node a.js\n',
                                            ("tini", "--", "/bin/sh", "-c", "node a.js"), ""),
    "CMD before ENTRYPOINT in one stage": (TOP + 'CMD ["a.js"]\nENTRYPOINT ["node"]\n',
                                           ("node", "a.js"), ""),
    "lower-case instructions, exec form over lines": (
        TOP + 'entrypoint [ "node", \\\n  "src/server.js" ]\n', ("node", "src/server.js"), ""),
    "a later CMD wins": (TOP + 'CMD ["old"]\nRUN true\nCMD ["node", "new.js"]\n', ("node", "new.js"), ""),
    "SHELL before a shell-form CMD": (TOP + 'SHELL ["/bin/bash", "-o", "pipefail", "-c"]\nCMD run | tee\n',
                                      ("/bin/bash", "-o", "pipefail", "-c", "run | tee"), ""),
    "no newline at the end": (TOP + 'ENTRYPOINT ["/app/entrypoint.sh"]', ("/app/entrypoint.sh",), ""),
    "a non-root USER": (TOP + 'USER node\nCMD ["node", "a.js"]\n', ("node", "a.js"), "node"),
    "USER root again": (TOP + 'USER node\nRUN true\nUSER root\nCMD ["node", "a.js"]\n',
                        ("node", "a.js"), ""),
    "multi-stage: the final stage counts": (
        'FROM node:22 AS build\nCMD ["build-only"]\nRUN make\n\n# Runtime\nFROM node:22-slim\n'
        'COPY --from=build /out /app\nCMD ["node", "/app/server.js"]\n# trailing\n',
        ("node", "/app/server.js"), ""),
    "multi-stage: inherits an earlier stage's command": (
        'FROM node:22 AS base\nUSER node\nENTRYPOINT ["tini", "--"]\nCMD ["node", "a.js"]\n'
        'FROM base\nRUN true\n', ("tini", "--", "node", "a.js"), "node"),
    "multi-stage: an ENTRYPOINT drops the inherited CMD": (
        'FROM node:22 AS base\nCMD ["node", "a.js"]\nFROM base\nENTRYPOINT ["/run.sh"]\n',
        ("/run.sh",), ""),
}


@pytest.mark.parametrize("name", list(ENDINGS))
def test_reads_the_start_command_of_every_ending(name: str) -> None:
    dockerfile, argv, user = ENDINGS[name]
    start = read_start_command(dockerfile)
    assert start.argv == argv
    assert start.user == user


@pytest.mark.parametrize("name", list(ENDINGS))
def test_appends_the_block_carrying_the_command(name: str) -> None:
    dockerfile, argv, user = ENDINGS[name]
    plan = plan_install(dockerfile, TEMPLATE)
    assert plan.action == "append"
    # The user's file is kept as written; the block follows it, last.
    assert plan.text.startswith(dockerfile.rstrip("\n") + "\n\n" + BLOCK_START)
    assert plan.text.endswith(BLOCK_END + "\n")
    # Read back with the parser: the image now starts supervisord's wrapper, and the ENV
    # the block sets holds the command supervisord's gateway program runs (eval "exec ...").
    after = read_start_command(plan.text)
    assert after.argv[:3] == ("/opt/skillsyncd/bin/python", "-m", "skillsyncd.container.supervise")
    assert after.user == ""
    assert _instructions(plan.text)[-2:] == ["ENTRYPOINT []", SUPERVISE]
    assert shlex.split(plan.command) == list(argv)
    assert f"SKILLSYNC_GATEWAY_COMMAND={env_quote(plan.command)}" in plan.text
    block = plan.text[plan.text.index(BLOCK_START):]
    assert ("USER root" in _instructions("FROM x\n" + block)) == bool(user)
    assert (f'SKILLSYNC_GATEWAY_USER="{user}"' in plan.text) == bool(user)


@pytest.mark.parametrize("name", list(ENDINGS))
def test_a_second_run_changes_nothing(name: str) -> None:
    first = plan_install(ENDINGS[name][0], TEMPLATE)
    second = plan_install(first.text, TEMPLATE)
    assert second.action == "" and second.text == first.text
    assert second.command == first.command  # the block is not mistaken for the gateway
    assert "nothing changed" in second.summary(check=False)


def test_a_changed_block_is_replaced_and_the_rest_kept() -> None:
    dockerfile = ENDINGS["ENTRYPOINT [] + CMD sh, comments and ARG after"][0]
    old = plan_install(dockerfile, TEMPLATE.replace("python3-venv", "python3-venv curl"))
    new = plan_install(old.text, TEMPLATE)
    assert new.action == "replace"
    assert new.text == plan_install(dockerfile, TEMPLATE).text
    assert "python3-venv curl" not in new.text


def test_env_quote_escapes_what_docker_would_expand() -> None:
    # Docker reads \\ as \, \" as " and \$ as a literal $ inside a double-quoted ENV value.
    assert env_quote("sh -c 'echo \"$HOME\" \\ done'") == '"sh -c \'echo \\"\\$HOME\\" \\\\ done\'"'
    with pytest.raises(DockerfileError, match="line break"):
        env_quote("a\nb")


def test_the_summary_is_one_line_saying_what_was_found_and_done() -> None:
    plan = plan_install(ENDINGS["exec CMD, then a comment"][0], TEMPLATE)
    done, check = plan.summary(check=False), plan.summary(check=True)
    assert "\n" not in done and "\n" not in check
    assert done.startswith('found CMD ["node", "src/server.js"] (the only stage, FROM node:22-bookworm-slim')
    assert "appended the skillsyncd block, gateway program `node src/server.js`" in done
    assert "would append" in check and "nothing written (--check)" in check
    # The base image's own ENTRYPOINT is not in the file: the line says it is not carried.
    assert "node:22-bookworm-slim's own ENTRYPOINT, if any, is not carried" in done


REFUSED: dict[str, tuple[str, str]] = {
    "no start command at all": (TOP, "sets neither ENTRYPOINT nor CMD"),
    "only an empty ENTRYPOINT": (TOP + "ENTRYPOINT []\n", "both empty"),
    "not a Dockerfile": ("# just a comment\nRUN true\n", "no FROM line"),
    "a SHELL that is not JSON": (TOP + "SHELL bash -c\nCMD x\n", "SHELL takes a JSON array"),
    "a block whose last line was edited": (
        TOP + 'CMD ["x"]\n\n' + TEMPLATE.replace(BLOCK_END, "# the end"), "first or last line was edited"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refuses_what_it_cannot_know_with_the_reason(name: str) -> None:
    dockerfile, reason = REFUSED[name]
    with pytest.raises(DockerfileError, match=reason):
        plan_install(dockerfile, TEMPLATE)


def _instructions(dockerfile: str) -> list[str]:
    """Instruction lines as dockerfile-parse reads them (comments dropped, lines joined)."""
    parser = DockerfileParser(fileobj=io.BytesIO(dockerfile.encode()), env_replace=False)
    return [f"{s['instruction']} {s['value']}" for s in parser.structure if s["instruction"] != "COMMENT"]


_WORDS = st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0\n\r"),
                          max_size=12), max_size=5)


@settings(max_examples=60, deadline=None)
@given(words=_WORDS)
def test_any_exec_form_reaches_the_gateway_program_word_for_word(words: list[str]) -> None:
    """Dockerfile -> parser -> the ENV's shell text -> supervisord.conf's gateway shell -> argv."""
    argv = ["sh", "-c", 'for a; do printf "%s\\0" "$a"; done', "sh", *words]
    plan = plan_install(f"FROM node:22\nCMD {json.dumps(argv)}\n# after\n", TEMPLATE)
    script = _gateway_script()
    result = subprocess.run(["/bin/sh", "-c", script], capture_output=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin", "SKILLSYNC_GATEWAY_COMMAND": plan.command})
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split("\0")[:-1] == words


def _gateway_script() -> str:
    """supervisord.conf's gateway program, as supervisord reads it (its own parser)."""
    from supervisor.options import ServerOptions

    opts = ServerOptions()
    opts.realize(["-c", str(ROOT / "supervisord.conf")])
    program = next(p for g in opts.process_group_configs for p in g.process_configs if p.name == "gateway")
    return str(shlex.split(program.command)[2])
