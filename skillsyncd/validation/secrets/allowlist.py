"""The allow-list: ``path:rule[:line]`` entries naming where a harmless value may stay."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection
from dataclasses import dataclass

from skillsyncd.validation.secrets.fingerprints import Hit, legacy_digest

ALLOWLIST_FILE = ".skillsync-allow"

_HEX12 = re.compile(r"(?:^|…|\.\.\.|\s)([0-9a-f]{12})$")
_ENTRY = re.compile(r"^(?P<path>[^\s]+?):(?P<rule>(?:secret\.)?[A-Za-z0-9.*?\[\]_\-]+)(?::(?P<line>\d+))?$")


@dataclass(frozen=True)
class AllowList:
    """``path:rule[:line]`` entries (globs allowed) and legacy SHA-256 digests."""

    entries: tuple[tuple[str, str, int | None], ...] = ()
    legacy: frozenset[str] = frozenset()

    def match(self, hit: Hit, path: str) -> str | None:
        """'entry' or 'legacy' when the hit at ``path`` is allowed, else None."""
        for p, r, line in self.entries:
            if (
                fnmatch.fnmatchcase(path, p)
                and fnmatch.fnmatchcase(hit.rule, r)
                and (line is None or line == hit.line)
            ):
                return "entry"
        if self.legacy and legacy_digest(hit.secret) in self.legacy:
            return "legacy"
        return None


def _entry_of(line: str) -> str | None:
    line = line.split("#", 1)[0].strip()
    if not line:
        return None
    m = _HEX12.search(line)
    if m and ":" not in line:
        return m.group(1)
    e = _ENTRY.match(line)
    if e:
        rule = e.group("rule")
        rule = rule if rule.startswith(("secret.", "*")) else f"secret.{rule}"
        return f"{e.group('path').lstrip('/')}:{rule}" + (f":{e.group('line')}" if e.group("line") else "")
    return None


def parse_allowlist(data: bytes | str) -> frozenset[str]:
    """Entries of a .skillsync-allow file (one per line, '#' comments), normalised.

    ``skills/demo/notes.md:secret.github-pat`` allows that rule in that file (globs
    work: ``skills/*/tests/*:secret.*``); ``…:12`` pins it to line 12. A legacy line
    holding a 12-hex SHA-256 digest ('ghp_…0123456789ab') still works, with a warning.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return frozenset(e for raw in text.splitlines() if (e := _entry_of(raw)) is not None)


def normalise_allowed(allowed: Collection[str]) -> AllowList:
    entries: list[tuple[str, str, int | None]] = []
    legacy: set[str] = set()
    for raw in allowed:
        e = _entry_of(raw)
        if e is None:
            continue
        if ":" not in e:
            legacy.add(e)
            continue
        m = _ENTRY.match(e)
        if m:
            entries.append(
                (m.group("path"), m.group("rule"), int(m.group("line")) if m.group("line") else None)
            )
    return AllowList(tuple(entries), frozenset(legacy))


def allowed(hit: Hit, allow: AllowList, path: str) -> str | None:
    return allow.match(hit, path)
