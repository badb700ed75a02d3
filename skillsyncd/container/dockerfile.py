"""What a Dockerfile's image starts: the final stage's ENTRYPOINT and CMD, as Docker combines them.

Pure: text in, a StartCommand out. The install (skillsyncd/container/install.py) carries that
command into supervisord's gateway program, so it must be what `docker run` would exec, whatever
comes after it (comments, ARG, LABEL) and whichever form it is written in. The Dockerfile is
read by dockerfile-parse (continuation lines, comments, instruction case), not by patterns.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, replace

from dockerfile_parse import DockerfileParser

from skillsyncd.errors import ConfigError

_DEFAULT_SHELL = ("/bin/sh", "-c")
_ROOT_USERS = {"", "root", "0", "root:root", "0:0", "root:0", "0:root"}


class DockerfileError(ConfigError):
    """The Dockerfile cannot be read, or its start command cannot be known from it alone."""


@dataclass(frozen=True)
class _Config:
    """One stage's image settings as far as the Dockerfile tells them."""

    entrypoint: tuple[str, ...] | None = None  # None: inherited from an image not in this file
    cmd: tuple[str, ...] | None = None
    entrypoint_text: str = ""
    cmd_text: str = ""
    user: str = ""
    shell: tuple[str, ...] = _DEFAULT_SHELL
    known: bool = False  # False: the stage starts FROM an image whose settings are unknown here


@dataclass(frozen=True)
class _Stage:
    name: str
    base: str
    steps: tuple[tuple[str, str, str], ...]  # (instruction, value, content as written)


@dataclass(frozen=True)
class StartCommand:
    """The command the image's final stage starts, and where it came from."""

    argv: tuple[str, ...]
    found: str  # the ENTRYPOINT/CMD lines that set it, as written
    user: str  # the final stage's USER ("" when it runs as root)
    base: str  # the final stage's FROM
    stages: int
    entrypoint_inherited: bool  # the base image's own ENTRYPOINT applies and is not known here


def _stages(text: str) -> list[_Stage]:
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), env_replace=False)
    stages: list[_Stage] = []
    steps: list[tuple[str, str, str]] = []
    name = base = ""
    for item in parser.structure:
        ins, value = str(item["instruction"]).upper(), str(item["value"]).strip()
        if ins == "FROM":
            if base:
                stages.append(_Stage(name, base, tuple(steps)))
            words = value.split()
            words = [w for w in words if not w.startswith("--")]  # --platform=...
            base = words[0] if words else ""
            name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else ""
            steps = []
        elif ins != "COMMENT":
            steps.append((ins, value, str(item["content"]).strip()))
    if not base:
        raise DockerfileError("the Dockerfile has no FROM line: is it a Dockerfile?")
    stages.append(_Stage(name, base, tuple(steps)))
    return stages


def _exec_form(value: str) -> tuple[str, ...] | None:
    """The JSON array form, or None when Docker would read the value as shell form."""
    if not value.startswith("["):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    if not isinstance(parsed, list) or not all(isinstance(p, str) for p in parsed):
        return None
    return tuple(parsed)


def _command(value: str, shell: tuple[str, ...]) -> tuple[str, ...]:
    argv = _exec_form(value)
    return argv if argv is not None else (*shell, value)


def _apply(cfg: _Config, steps: tuple[tuple[str, str, str], ...]) -> _Config:
    """Docker's rules: ENTRYPOINT drops an inherited CMD, not one set in the same stage."""
    cmd_set = False
    for ins, value, content in steps:
        if ins == "ENTRYPOINT":
            cfg = replace(cfg, entrypoint=_command(value, cfg.shell), entrypoint_text=content)
            if not cmd_set:
                cfg = replace(cfg, cmd=None, cmd_text="")
        elif ins == "CMD":
            cfg = replace(cfg, cmd=_command(value, cfg.shell), cmd_text=content)
            cmd_set = True
        elif ins == "USER":
            cfg = replace(cfg, user=value)
        elif ins == "SHELL":
            shell = _exec_form(value)
            if not shell:
                raise DockerfileError(f'{content!r}: SHELL takes a JSON array such as ["/bin/bash", "-c"]')
            cfg = replace(cfg, shell=shell)
    return cfg


def _resolve(stages: list[_Stage], index: int) -> _Config:
    stage = stages[index]
    earlier = [i for i in range(index) if stages[i].name and stages[i].name == stage.base.lower()]
    start = _resolve(stages, earlier[-1]) if earlier else _Config()
    if not earlier:
        # scratch starts nothing; any other image's settings are not in this file.
        start = replace(start, known=stage.base.lower() == "scratch", entrypoint=None, cmd=None)
    return _apply(start, stage.steps)


def read_start_command(text: str) -> StartCommand:
    """The final stage's effective start command; DockerfileError when it is not in the file."""
    stages = _stages(text)
    final = stages[-1]
    cfg = _resolve(stages, len(stages) - 1)
    argv = (*(cfg.entrypoint or ()), *(cfg.cmd or ()))
    if cfg.entrypoint is None and cfg.cmd is None:
        raise DockerfileError(
            f"the final stage (FROM {final.base}) sets neither ENTRYPOINT nor CMD, so it starts "
            f"whatever {final.base} starts, which this Dockerfile does not say: add that command "
            "as a CMD line at the end and run again")
    if not argv:
        raise DockerfileError(
            "the final stage's ENTRYPOINT and CMD are both empty: the image starts nothing, so there "
            "is no gateway to run next to skillsyncd; add the gateway's CMD and run again")
    found = " + ".join(t for t in (cfg.entrypoint_text, cfg.cmd_text) if t)
    user = "" if cfg.user.strip() in _ROOT_USERS else cfg.user.strip()
    return StartCommand(argv=argv, found=found, user=user, base=final.base, stages=len(stages),
                        entrypoint_inherited=cfg.entrypoint is None and not cfg.known)
