"""The gateway's side of the use decisions, read once: the only module here that does I/O.

Defaults follow the container (docs/validation.md): the gateway inherits
supervisord's environment, which is skillsyncd's own, so its PATH and variables
are this process's; its config is ``$OPENCLAW_CONFIG_PATH``, else
``$OPENCLAW_STATE_DIR/openclaw.json``, else ``~/.openclaw/openclaw.json``; its
bundled skills sit in ``$OPENCLAW_BUNDLED_SKILLS_DIR`` or the ``skills`` folder of
the ``openclaw`` package found on that PATH. ``SKILLSYNC_GATEWAY_*`` settings (and
``validate``'s ``--gateway-*`` flags) replace each default.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import json5

from skillsyncd.config import Config
from skillsyncd.errors import ConfigError
from skillsyncd.validation.usage.eligibility import Host, section
from skillsyncd.validation.usage.shadowing import Other
from skillsyncd.validation.usage.skill import SkillUse, read_skill

MAX_SKILL_MD_BYTES = 256_000
# The container's gateway (docs/operations.md): HOME=/data, state in /data/.openclaw. A CI
# without --gateway-config judges the catalog's paths at that length.
CONTAINER_HOME = "/data"
CONTAINER_STATE_DIR = "/data/.openclaw"


@dataclass(frozen=True)
class GatewayContext:
    """Everything the use rules need to know about one gateway."""

    host: Host
    config_path: str | None  # the openclaw.json read (None: none, the gateway's defaults)
    state_dir: str  # OPENCLAW_STATE_DIR as the gateway resolves it
    home: str | None
    published_dir: str  # where the gateway finds the published skills (its managed folder)
    check_bins: bool = True  # False in a CI without the gateway's PATH
    check_env: bool = True
    check_config: bool = True
    lower: tuple[SkillUse, ...] = ()  # bundled, custodian, plugin and extraDirs skills it also loads
    higher: tuple[Other, ...] = ()  # skills in tiers above the managed folder
    listed_others: bool = False  # whether the bundled skills could be listed
    config_text: str = ""  # openclaw.json's text, for line numbers in findings
    workspaces: tuple[str, ...] = field(default=())

    @property
    def config(self) -> Mapping[str, Any]:
        return self.host.config or {}

    def limits(self) -> tuple[int | None, int | None]:
        """(maxSkillsPromptChars, maxSkillsInPrompt) from skills.limits, None for the default."""
        raw = section(self.config, "skills", "limits")
        chars, count = raw.get("maxSkillsPromptChars"), raw.get("maxSkillsInPrompt")
        return (int(chars) if _number(chars) and chars is not None else None,
                int(count) if _number(count) and count is not None else None)

    def location(self, skill_md: str) -> str:
        """The path the gateway writes into the catalog for a SKILL.md (``compactPromptSkills``)."""
        state = os.path.normpath(self.state_dir)
        roots = [os.path.join(state, "skills"), os.path.join(state, "plugin-skills")]
        home = os.path.normpath(self.home) if self.home else None
        container = home == "/data" and _inside("/data/.openclaw", state)
        tilde = [] if container or home is None else [home]
        if any(_inside(r, skill_md) for r in roots) and not any(_inside(t, skill_md) for t in tilde):
            return skill_md
        if home and skill_md.startswith(home.rstrip("/") + "/"):
            return "~/" + skill_md[len(home.rstrip("/")) + 1:]
        return skill_md


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def config_file(env: Mapping[str, str], cfg: Config) -> Path:
    if cfg.gateway_config is not None:
        return cfg.gateway_config
    if env.get("OPENCLAW_CONFIG_PATH", "").strip():
        return Path(env["OPENCLAW_CONFIG_PATH"].strip()).expanduser()
    return Path(_state_dir(env)) / "openclaw.json"


def _state_dir(env: Mapping[str, str]) -> str:
    override = env.get("OPENCLAW_STATE_DIR", "").strip()
    if override:
        return os.path.expanduser(override)
    return os.path.join(env.get("HOME") or os.path.expanduser("~"), ".openclaw")


def read_config(path: Path) -> tuple[dict[str, Any], str]:
    """openclaw.json (JSON5, as the gateway reads it) and its text; empty when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, ""
    except OSError as exc:
        raise ConfigError(f"cannot read the gateway's config {path}: {exc.strerror}; "
                          "set SKILLSYNC_GATEWAY_CONFIG to the openclaw.json it uses") from exc
    try:
        data = json5.loads(text)
    except ValueError as exc:
        raise ConfigError(f"the gateway's config {path} is not JSON5: {exc}") from exc
    return (data if isinstance(data, dict) else {}), text


def skills_in(root: str, source: str) -> list[SkillUse]:
    """The loadable skills directly below ``root`` (one folder each, SKILL.md inside)."""
    out: list[SkillUse] = []
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return out
    for name in names:
        md = os.path.join(root, name, "SKILL.md")
        if name.startswith(".") or name == "node_modules" or not os.path.isfile(md):
            continue
        try:
            if os.path.getsize(md) > MAX_SKILL_MD_BYTES:
                continue
            data = Path(md).read_bytes()
        except OSError:
            continue
        skill = read_skill(data, name, md, md, source)
        if skill is not None:
            out.append(skill)
    return out


def bundled_dir(cfg: Config, env: Mapping[str, str], path: str) -> str | None:
    """The gateway's bundled skills folder, or None when it cannot be found."""
    if cfg.gateway_bundled_dir is not None:
        return str(cfg.gateway_bundled_dir)
    if env.get("OPENCLAW_BUNDLED_SKILLS_DIR", "").strip():
        return env["OPENCLAW_BUNDLED_SKILLS_DIR"].strip()
    exe = shutil.which("openclaw", path=path)
    if exe is None:
        return None
    folder = Path(os.path.realpath(exe)).parent
    for candidate in (folder, *folder.parents[:3]):
        if (candidate / "package.json").is_file() and (candidate / "skills").is_dir():
            return str(candidate / "skills")
    return None


def _roster(agents: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(id, entry) per configured agent: ``agents.entries`` first, else ``agents.list``."""
    entries, listed = agents.get("entries"), agents.get("list")
    if isinstance(entries, dict):
        return [(str(k), v) for k, v in entries.items() if isinstance(v, dict)]
    if isinstance(listed, list):
        return [(str(v.get("id")), v) for v in listed if isinstance(v, dict)]
    return []


def _workspaces(config: Mapping[str, Any], env: Mapping[str, str], state: str) -> tuple[str, ...]:
    """Each agent's workspace as ``resolveAgentWorkspaceDir`` finds it: its own ``workspace``;
    for the data owner (the agent marked default, the sole one, or the implicit 'main')
    ``agents.defaults.workspace`` or the default folder; for others that folder's
    ``<id>`` subfolder, else ``<state>/workspace-<id>``."""
    agents = section(config, "agents")
    shared = section(agents, "defaults").get("workspace")
    shared = os.path.expanduser(shared.strip()) if isinstance(shared, str) and shared.strip() else None
    roster = _roster(agents)
    marked = [a for a, e in roster if e.get("default") is True and agents.get("ownership") != "explicit"]
    owner = marked[0] if len(marked) == 1 else roster[0][0] if len(roster) == 1 else (
        None if roster else "main")
    if env.get("OPENCLAW_WORKSPACE_DIR", "").strip():
        default = os.path.abspath(env["OPENCLAW_WORKSPACE_DIR"].strip())
    else:
        default = os.path.join(state, "workspace")
    out: list[str] = []
    for agent, entry in roster or [("main", {})]:
        own = entry.get("workspace")
        if isinstance(own, str) and own.strip():
            folder = os.path.expanduser(own.strip())
        elif agent == owner:
            folder = shared or default
        else:
            folder = os.path.join(shared, agent) if shared else os.path.join(state, f"workspace-{agent}")
        if folder not in out:
            out.append(folder)
    return tuple(out)


def _lower(cfg: Config, env: Mapping[str, str], path: str, config: Mapping[str, Any],
           state: str) -> tuple[list[SkillUse], bool]:
    """Skills below the managed tier that the gateway also loads, and whether bundled ones were found."""
    out: list[SkillUse] = []
    extra = section(config, "skills", "load").get("extraDirs")
    for d in extra if isinstance(extra, list) else []:
        if isinstance(d, str) and d.strip():
            out += skills_in(os.path.expanduser(d.strip()), "openclaw-extra")
    out += skills_in(os.path.join(state, "plugin-skills"), "openclaw-extra")
    bundled = bundled_dir(cfg, env, path)
    if bundled is not None:
        out += skills_in(bundled, "openclaw-bundled")
        out += skills_in(os.path.join(os.path.dirname(bundled.rstrip("/")), "custodian-skills"),
                         "openclaw-custodian")
    return out, bundled is not None


def _higher(env: Mapping[str, str], home: str | None, workspaces: Sequence[str]) -> list[Other]:
    out: list[Other] = []
    roots: list[tuple[str, str, str]] = []
    if not env.get("OPENCLAW_STATE_DIR", "").strip() and home:
        roots.append((os.path.join(home, ".agents", "skills"), "personal", "agents-skills-personal"))
    for ws in workspaces:
        roots.append((os.path.join(ws, ".agents", "skills"), "workspace", "agents-skills-project"))
        roots.append((os.path.join(ws, "skills"), "workspace", "openclaw-workspace"))
    for root, tier, source in roots:
        out += [Other(s.name, tier, source, s.path, s) for s in skills_in(root, source)]
    return out


def read_context(cfg: Config, env: Mapping[str, str] | None = None, *, ci: bool = False) -> GatewayContext:
    """The gateway's context from ``cfg`` and this process's environment.

    ``ci``: ``validate`` in a skills repository's CI, where this process is not the
    gateway's: PATH, variables and config count only when a ``--gateway-*`` flag gives them.
    """
    env = os.environ if env is None else env
    path = cfg.gateway_path if cfg.gateway_path is not None else env.get("PATH", "")
    names = cfg.gateway_env
    gateway_env = ({n: "1" for n in names} if names is not None else dict(env))
    cfg_path = config_file(env, cfg) if not ci or cfg.gateway_config is not None else None
    config, text = read_config(cfg_path) if cfg_path is not None else ({}, "")
    state = (str(cfg.gateway_config.parent) if cfg.gateway_config is not None
             and not env.get("OPENCLAW_STATE_DIR", "").strip() else _state_dir(env))
    home = env.get("OPENCLAW_HOME") or env.get("HOME")
    if ci and cfg.gateway_config is None and not env.get("OPENCLAW_STATE_DIR", "").strip():
        state, home = CONTAINER_STATE_DIR, CONTAINER_HOME
    published = str(cfg.publish_dir) if cfg.publish_dir is not None else os.path.join(state, "skills")
    spaces = _workspaces(config, env, state) if cfg_path is not None else ()
    listing = not ci or cfg.gateway_bundled_dir is not None
    lower, listed = _lower(cfg, env, path, config, state) if listing else ([], False)
    return GatewayContext(
        host=Host(path=path, cwd=os.getcwd(), env=gateway_env, platform=cfg.gateway_platform,
                  config=config),
        config_path=str(cfg_path) if cfg_path is not None and text else None, state_dir=state,
        home=home, published_dir=published,
        check_bins=not ci or cfg.gateway_path is not None,
        check_env=not ci or names is not None,
        check_config=not ci or cfg.gateway_config is not None,
        lower=tuple(lower), higher=tuple(_higher(env, home, spaces)), listed_others=listed,
        config_text=text, workspaces=spaces)
