"""What the gateway takes from a SKILL.md to decide use: its name, description and manifest.

The manifest is the ``metadata`` field read as OpenClaw reads it: the field's text
(a YAML mapping arrives as its JSON) parsed as JSON, else as JSON5; then the
``openclaw`` block, else the legacy ``clawdbot`` one, the first that is an object.
List fields take arrays (each entry printed and trimmed, blanks dropped) or
comma-separated strings; ``always`` counts only as a real boolean.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import json5

from skillsyncd.validation import gateway, jstext

MANIFEST_KEYS = ("openclaw", "clawdbot")  # OpenClaw's key, then the legacy one
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Requires:
    bins: tuple[str, ...] = ()
    any_bins: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    config: tuple[str, ...] = ()


@dataclass(frozen=True)
class SkillUse:
    """One loadable skill as the gateway's use decisions see it."""

    folder: str  # the skill's folder (its id in the release)
    path: str  # SKILL.md as findings name it (repository-relative, or absolute on disk)
    name: str
    description: str
    location: str = ""  # the SKILL.md path the gateway writes into the catalog
    source: str = "openclaw-managed"
    requires: Requires | None = None
    os: tuple[str, ...] = ()
    always: bool | None = None
    skill_key: str | None = None
    primary_env: str | None = None
    model_visible: bool = True  # disable-model-invocation keeps it out of the catalog
    lines: Mapping[str, int] = field(default_factory=dict)  # frontmatter key -> file line

    @property
    def key(self) -> str:
        """The skills.entries key: metadata.openclaw.skillKey, else the name."""
        return self.skill_key or self.name

    def line(self, key: str) -> int | None:
        return self.lines.get(key)


def _strings(value: Any) -> tuple[str, ...]:
    """OpenClaw's normalizeCsvOrLooseStringList."""
    if isinstance(value, list):
        out = (jstext.js_trim(js_string(v)) for v in value)
        return tuple(v for v in out if v)
    if isinstance(value, str):
        return tuple(t for t in (jstext.js_trim(p) for p in value.split(",")) if t)
    return ()


def js_string(value: Any) -> str:
    """``String(value)`` as JavaScript prints it, for the values JSON can hold."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return jstext.js_number(float(value))
    if isinstance(value, list):
        return ",".join("" if v is None else js_string(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def manifest(fields: Mapping[str, str]) -> Mapping[str, Any] | None:
    """The openclaw (or clawdbot) block of ``metadata``, or None when there is none."""
    raw = fields.get("metadata")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        try:
            parsed = json5.loads(raw)
        except (ValueError, TypeError, RecursionError):
            return None
    if not isinstance(parsed, dict):
        return None
    for key in MANIFEST_KEYS:
        block = parsed.get(key)
        if isinstance(block, dict):
            return block
    return None


def _bool_field(fields: Mapping[str, str], key: str, default: bool) -> bool:
    value = fields.get(key)
    low = jstext.js_trim(value).lower() if isinstance(value, str) else ""
    return True if low in _TRUE else False if low in _FALSE else default


def _requires(block: Mapping[str, Any]) -> Requires | None:
    raw = block.get("requires")
    if not isinstance(raw, dict):
        return None
    return Requires(_strings(raw.get("bins")), _strings(raw.get("anyBins")),
                    _strings(raw.get("env")), _strings(raw.get("config")))


def key_lines(text: str) -> dict[str, int]:
    """Top-level frontmatter key -> its 1-based line in the file (for findings)."""
    out: dict[str, int] = {}
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not lines or lines[0].strip() != "---":
        return out
    for number, line in enumerate(lines[1:], start=2):
        if line.strip() == "---":
            break
        m = re.match(r"([A-Za-z0-9_-]+):", line)
        if m:
            out.setdefault(m.group(1), number)
    return out


def read_skill(data: bytes, folder: str, path: str, location: str = "",
               source: str = "openclaw-managed") -> SkillUse | None:
    """A SKILL.md's bytes as a SkillUse; None when the gateway would not load it."""
    seen = gateway.view(data, folder.rsplit("/", 1)[-1])
    if not seen.loads or seen.description is None:
        return None
    block = manifest(seen.fields) or {}
    skill_key = block.get("skillKey")
    primary = block.get("primaryEnv")
    return SkillUse(
        folder=folder, path=path, name=seen.name, description=seen.description,
        location=location, source=source, requires=_requires(block),
        os=_strings(block.get("os")),
        always=block["always"] if isinstance(block.get("always"), bool) else None,
        skill_key=skill_key if isinstance(skill_key, str) and skill_key else None,
        primary_env=primary if isinstance(primary, str) else None,
        model_visible=not _bool_field(seen.fields, "disable-model-invocation", False),
        lines=key_lines(data.decode("utf-8", "replace")),
    )
