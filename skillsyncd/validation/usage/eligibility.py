"""Is a loaded skill eligible: the gateway's runtime gate, with everything it found missing.

OpenClaw 2026.9.6 (``shouldIncludeSkill`` and ``evaluateRuntimeEligibility``) excludes a
skill whose ``skills.entries.<key>.enabled`` is false, a bundled skill that
``skills.allowBundled`` leaves out, and a skill whose ``os`` list does not hold the
gateway's platform (exact match); ``always: true`` then admits it; otherwise every
``requires.env`` must be set (non-blank in the gateway's environment, in
``skills.entries.<key>.env``, or as the entry's ``apiKey`` for ``primaryEnv``), every
``requires.config`` path truthy in openclaw.json, every ``requires.bins`` entry an
executable on the gateway's PATH and at least one of ``requires.anyBins``.
The gate stops at the first failure; this module names every failure, so one fix is
not followed by the next surprise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skillsyncd.validation.jstext import js_trim
from skillsyncd.validation.usage.skill import SkillUse, js_string

# Config paths the gateway treats as true when openclaw.json does not set them.
CONFIG_DEFAULTS: Mapping[str, bool] = {"browser.enabled": True, "browser.evaluateEnabled": True}
_BLOCKED_KEYS = frozenset({"__proto__", "prototype", "constructor"})
BUNDLED_SOURCES = frozenset({"openclaw-bundled", "openclaw-custodian"})


@dataclass(frozen=True)
class Host:
    """What the gateway process sees: its PATH, cwd, environment, platform and config."""

    path: str = ""
    cwd: str = "/"
    env: Mapping[str, str] | None = None
    platform: str = "linux"
    config: Mapping[str, Any] | None = None

    def has_bin(self, name: str) -> bool:
        """OpenClaw's hasBinary: ``<dir>/<name>`` exists and is executable, per PATH entry."""
        for part in (p for p in self.path.split(os.pathsep) if p):
            # node's path.join: the name is appended even when it starts with '/'
            candidate = os.path.normpath(os.path.join(self.cwd, part + "/" + name))
            if os.path.exists(candidate) and os.access(candidate, os.X_OK):
                return True
        return False


@dataclass(frozen=True)
class Verdict:
    """Eligibility, and each reason it fails (empty tuples when the skill is eligible)."""

    eligible: bool
    disabled: bool = False
    not_allowed_bundled: bool = False
    os: tuple[str, ...] = ()  # the skill's os list when the platform is not in it
    bins: tuple[str, ...] = ()
    any_bins: tuple[str, ...] = ()  # all of them, when none is on PATH
    env: tuple[str, ...] = ()
    config: tuple[str, ...] = ()


def section(data: Any, *keys: str) -> dict[str, Any]:
    """``data[k1][k2]...`` when each step is an object, else an empty one."""
    current = data
    for key in keys:
        current = current.get(key) if isinstance(current, dict) else None
    return current if isinstance(current, dict) else {}


def is_truthy(value: Any) -> bool:
    """The gateway's isTruthy for config values."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return bool(value.strip())
    return True


def config_value(config: Mapping[str, Any] | None, dotted: str) -> tuple[bool, Any]:
    """(found, value) of a dotted path; a blocked key ('__proto__') resolves to nothing."""
    current: Any = config or {}
    for part in (p for p in dotted.split(".") if p):
        if part in _BLOCKED_KEYS:
            return False, None
        if isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        elif isinstance(current, dict) and part in current:
            current = current[part]
        else:
            return False, None
    return True, current


def config_truthy(config: Mapping[str, Any] | None, dotted: str) -> bool:
    found, value = config_value(config, dotted)
    blocked = any(p in _BLOCKED_KEYS for p in dotted.split(".") if p)
    if not found and not blocked and dotted in CONFIG_DEFAULTS:
        return CONFIG_DEFAULTS[dotted]
    return is_truthy(value)


def skill_entry(config: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    """``skills.entries.<key>`` when it is an object, else empty."""
    return section(config, "skills", "entries", key)


def _has_secret(value: Any) -> bool:
    """A configured apiKey: a non-blank string, or a secret reference object."""
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, dict) and all(isinstance(value.get(k), str) for k in ("source", "id"))


def env_satisfied(host: Host, skill: SkillUse, name: str) -> bool:
    entry = skill_entry(host.config, skill.key)
    own = section(entry, "env")
    value = (host.env or {}).get(name)
    if isinstance(value, str) and value.strip():
        return True
    configured = own.get(name)
    if isinstance(configured, str) and configured.strip():
        return True
    return skill.primary_env == name and _has_secret(entry.get("apiKey"))


def allow_bundled(config: Mapping[str, Any] | None) -> frozenset[str] | None:
    """``skills.allowBundled`` as a set, None when it is absent, not a list or empty."""
    raw = section(config, "skills").get("allowBundled")
    if not isinstance(raw, list):
        return None
    names = frozenset(t for t in (js_trim(js_string(v)) for v in raw) if t)
    return names or None


def evaluate(skill: SkillUse, host: Host) -> Verdict:
    """The gateway's verdict on ``skill`` for ``host``, with every missing requirement."""
    if skill_entry(host.config, skill.key).get("enabled") is False:
        return Verdict(False, disabled=True)
    allowed = allow_bundled(host.config)
    if allowed is not None and skill.source in BUNDLED_SOURCES \
            and skill.key not in allowed and skill.name not in allowed:
        return Verdict(False, not_allowed_bundled=True)
    wrong_os = bool(skill.os) and host.platform not in skill.os
    if skill.always is True or skill.requires is None:
        return Verdict(not wrong_os, os=skill.os if wrong_os else ())
    req = skill.requires
    bins = tuple(b for b in req.bins if not host.has_bin(b))
    any_bins = req.any_bins if req.any_bins and not any(host.has_bin(b) for b in req.any_bins) else ()
    env = tuple(e for e in req.env if not env_satisfied(host, skill, e))
    config = tuple(c for c in req.config if not config_truthy(host.config, c))
    ok = not (wrong_os or bins or any_bins or env or config)
    return Verdict(ok, os=skill.os if wrong_os else (), bins=bins, any_bins=any_bins, env=env,
                   config=config)


def eligible(skills: Sequence[SkillUse], host: Host) -> list[SkillUse]:
    """The skills the gateway admits, in the order given."""
    return [s for s in skills if evaluate(s, host).eligible]
