"""The plan of edits that installs skillsyncd into a gateway Dockerfile.

Pure: the Dockerfile's text and the block's template (Dockerfile.patch) in, an InstallPlan
out. The block always goes at the very end, so it wins whatever comes before it; the start
command it replaces is carried into supervisord's gateway program through the block's own
ENV line. A block from an earlier run is recognised by its first and last lines and
replaced, so a second run changes nothing and a newer Dockerfile.patch updates the block.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from skillsyncd.container.dockerfile import DockerfileError, StartCommand, read_start_command

BLOCK_START = "# --- skillsyncd: "
BLOCK_END = "# --- end of the skillsyncd block ---"
# Dockerfile.patch: explanation above this line, the block's template below it.
CUT = "# 8<"
_GATEWAY_ENV = "@GATEWAY_ENV@"
_USER_ROOT = "@USER_ROOT@"


@dataclass(frozen=True)
class InstallPlan:
    """What the install found, what it does, and the Dockerfile it leads to."""

    text: str
    found: str  # the start command, where it came from
    action: str  # "append" or "replace" the block, "" when the Dockerfile already has this one
    command: str  # the gateway program supervisord runs

    def summary(self, check: bool) -> str:
        """The one line the install prints."""
        if not self.action:
            return (f"found {self.found}; the skillsyncd block is already there, gateway program "
                    f"`{self.command}`: nothing changed")
        done = {"append": ("appended", "would append"), "replace": ("replaced", "would replace")}
        verb = done[self.action][1 if check else 0]
        tail = ", nothing written (--check)" if check else ""
        return f"found {self.found}; {verb} the skillsyncd block, gateway program `{self.command}`{tail}"


def block_template(patch_text: str) -> str:
    """The block's text from Dockerfile.patch (everything below the cut line)."""
    lines = patch_text.splitlines(keepends=True)
    cut = [i for i, ln in enumerate(lines) if ln.startswith(CUT)]
    if len(cut) != 1:
        raise DockerfileError(f"Dockerfile.patch must hold exactly one line starting with {CUT!r}")
    body = "".join(lines[cut[0] + 1:])
    first, last = body.splitlines()[0], body.rstrip("\n").splitlines()[-1]
    if not first.startswith(BLOCK_START) or last != BLOCK_END or _GATEWAY_ENV not in body:
        raise DockerfileError(
            f"Dockerfile.patch's block must start with {BLOCK_START!r}, end with {BLOCK_END!r} "
            f"and hold {_GATEWAY_ENV}")
    return body


def env_quote(value: str) -> str:
    """A Dockerfile ENV value that Docker reads back as exactly ``value`` (no $ expansion)."""
    if "\n" in value:
        raise DockerfileError("the start command holds a line break, which an ENV line cannot carry")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def gateway_command(start: StartCommand) -> str:
    """Shell text for supervisord.conf's `eval "exec ..."`: the same argv Docker would exec."""
    return shlex.join(start.argv)


def render_block(template: str, start: StartCommand) -> str:
    env = f"SKILLSYNC_GATEWAY_COMMAND={env_quote(gateway_command(start))}"
    if start.user:
        env += f" \\\n    SKILLSYNC_GATEWAY_USER={env_quote(start.user)}"
    out: list[str] = []
    for line in template.splitlines(keepends=True):
        if line.strip() == _USER_ROOT:
            if start.user:  # the block's RUN lines need root; the gateway keeps its user
                out.append("USER root\n")
            continue
        out.append(line.replace(_GATEWAY_ENV, env))
    return "".join(out)


def split_block(text: str) -> tuple[str, bool]:
    """The Dockerfile without a block from an earlier run, and whether it held one."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, ln in enumerate(lines) if ln.startswith(BLOCK_START)]
    if not starts:
        return text, False
    ends = [i for i, ln in enumerate(lines) if ln.rstrip("\n") == BLOCK_END and i > starts[0]]
    if len(starts) != 1 or len(ends) != 1:
        raise DockerfileError(
            "the Dockerfile holds a skillsyncd block whose first or last line was edited or "
            f"repeated: remove the block (from {BLOCK_START!r} to {BLOCK_END!r}) and run again")
    return "".join(lines[:starts[0]] + lines[ends[0] + 1:]), True


def _describe(start: StartCommand) -> str:
    where = f"final stage of {start.stages}" if start.stages > 1 else "the only stage"
    notes = [f"{where}, FROM {start.base}", f"as {start.user}" if start.user else "as root"]
    if start.entrypoint_inherited:
        notes.append(f"{start.base}'s own ENTRYPOINT, if any, is not carried")
    return f"{start.found} ({'; '.join(notes)})"


def plan_install(dockerfile: str, template: str) -> InstallPlan:
    """The Dockerfile with the block at its end, carrying the start command found before it."""
    base, had_block = split_block(dockerfile)
    start = read_start_command(base)
    kept = base.rstrip("\n")
    text = f"{kept}\n\n{render_block(template, start)}" if kept else render_block(template, start)
    action = "" if text == dockerfile else "replace" if had_block else "append"
    return InstallPlan(text=text, found=_describe(start), action=action, command=gateway_command(start))
