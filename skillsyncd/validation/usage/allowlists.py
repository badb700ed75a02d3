"""Agents' skill allow-lists that name a skill the release no longer has.

``agents.defaults.skills`` and ``agents.entries.<id>.skills`` (or ``agents.list[].skills``)
are final sets of frontmatter names: an agent with its own ``skills`` key ignores the
defaults, and a name no loaded skill carries is silently dropped. Renaming an
allow-listed skill (same folder, new ``name``) therefore takes it away from the agent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skillsyncd.validation.jstext import js_trim
from skillsyncd.validation.usage.skill import js_string


@dataclass(frozen=True)
class AllowList:
    agent: str  # the agent id, or "defaults"
    names: tuple[str, ...]


@dataclass(frozen=True)
class Stale:
    """One allow-listed name that no loaded skill carries."""

    agent: str
    name: str
    renamed_to: str | None  # the new name when a published folder of that name was renamed
    folder: str | None
    left: int  # allow-listed names that still match a skill


def _names(raw: Any) -> tuple[str, ...] | None:
    if not isinstance(raw, list):
        return None
    return tuple(t for t in (js_trim(js_string(v)) for v in raw) if t)


def allow_lists(config: Mapping[str, Any] | None) -> tuple[AllowList, ...]:
    """Every allow-list in openclaw.json: the defaults', then each agent's own."""
    agents = (config or {}).get("agents") if isinstance(config, dict) else None
    if not isinstance(agents, dict):
        return ()
    out: list[AllowList] = []
    defaults = agents.get("defaults")
    if isinstance(defaults, dict) and _names(defaults.get("skills")) is not None:
        out.append(AllowList("defaults", _names(defaults.get("skills")) or ()))
    entries = agents.get("entries")
    rows: list[tuple[str, Any]] = []
    if isinstance(entries, dict):
        rows = [(str(k), v) for k, v in entries.items()]
    elif isinstance(agents.get("list"), list):
        rows = [(str(v.get("id")), v) for v in agents["list"] if isinstance(v, dict)]
    for agent, entry in rows:
        if isinstance(entry, dict) and "skills" in entry:
            out.append(AllowList(agent, _names(entry.get("skills")) or ()))
    return tuple(out)


def stale_names(lists: Sequence[AllowList], loaded: set[str], renames: Mapping[str, tuple[str, str]],
                dropped: set[str]) -> list[Stale]:
    """Allow-listed names no loaded skill carries, when skillsyncd can say why.

    ``renames`` maps an old name to (folder, new name); ``dropped`` holds names the
    previous release had. A name in neither may belong to a skill this gateway gets
    from elsewhere, and is reported only when ``loaded`` is the whole set (``dropped``
    then holds every unknown name, see :mod:`.check`).
    """
    out: list[Stale] = []
    for lst in lists:
        left = sum(1 for n in lst.names if n in loaded)
        for name in lst.names:
            if name in loaded:
                continue
            if name in renames:
                folder, new = renames[name]
                out.append(Stale(lst.agent, name, new, folder, left))
            elif name in dropped:
                out.append(Stale(lst.agent, name, None, None, left))
    return out
