"""Tag channels: a ref that is a semver range over the remote's tags (``semver:>=1.2.0,<2``).

Authors release on purpose by tagging; the newest tag in the range deploys, as Flux's
``ref.semver`` does. Versions are read by PyPI ``packaging`` (a leading ``v`` is
accepted, ``1.3.0-rc1`` reads as the pre-release ``1.3.0rc1``); a tag that is no version
is not a candidate. Pre-releases are left out unless the ref starts ``semver-pre:`` or
the range itself names one (``semver:>=2.0.0-rc1``). Pure: the caller lists the tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from skillsyncd.errors import ConfigError, RefNotFound

TAGS_PREFIX = b"refs/tags/"
_SCHEMES = {"semver:": False, "semver-pre:": True}  # ref prefix -> pre-releases admitted
_NEWEST_SHOWN = 3  # tags named in the no-match error


@dataclass(frozen=True)
class Channel:
    """A semver range over tags, and whether pre-releases count."""

    ref: str  # as configured, e.g. "semver:>=1.2.0,<2"
    spec: SpecifierSet
    prereleases: bool

    def admits(self, version: Version) -> bool:
        return self.spec.contains(version, prereleases=self.prereleases)


@dataclass(frozen=True)
class TagPick:
    """The tag a channel deploys now and the commit it points at (peeled)."""

    name: str  # the tag's short name, e.g. "v1.2.0"
    version: str
    commit: str


def is_channel(ref: str) -> bool:
    return any(ref.startswith(prefix) for prefix in _SCHEMES)


def parse_channel(ref: str) -> Channel | None:
    """The channel ``ref`` names, or None for a branch, tag or commit; a bad range is a
    ConfigError saying how to write one."""
    for prefix, pre in _SCHEMES.items():
        if ref.startswith(prefix):
            text = ref[len(prefix):].strip()
            try:
                spec = SpecifierSet(text.replace(" ", ""))
            except InvalidSpecifier as exc:
                raise ConfigError(
                    f"ref {ref!r} is not a semver range: {exc}; write comma-separated "
                    "comparisons, e.g. SKILLSYNC_REF='semver:>=1.2.0,<2'") from None
            if not text:
                raise ConfigError(f"ref {ref!r} names no range; e.g. SKILLSYNC_REF='semver:>=1.2.0,<2'")
            return Channel(ref, spec, pre or bool(spec.prereleases))
    return None


def tag_version(name: str) -> Version | None:
    """The version a tag name carries (``v1.2.0`` and ``1.2.0`` alike), or None."""
    text = name[1:] if name[:1] in ("v", "V") else name
    try:
        return Version(text)
    except InvalidVersion:
        return None


def tag_commits(refs: Mapping[bytes, bytes | None]) -> dict[str, str]:
    """Tag short name -> the commit it points at, peeled (annotated tags to their commit)."""
    out: dict[str, str] = {}
    for ref, value in refs.items():
        if not ref.startswith(TAGS_PREFIX) or ref.endswith(b"^{}"):
            continue
        target = refs.get(ref + b"^{}") or value
        if target:
            out[ref[len(TAGS_PREFIX):].decode(errors="replace")] = target.decode()
    return out


def pick_tag(channel: Channel, tags: Mapping[str, str], url: str) -> TagPick:
    """The newest tag the channel admits; ties (``v1.2.0`` and ``1.2.0``) go to the
    greatest name, so every replica picks the same. No match is one RefNotFound line."""
    admitted = [(v, n) for n in tags if (v := tag_version(n)) is not None and channel.admits(v)]
    best = max(admitted, default=None)
    if best is None:
        versions = sorted((v, n) for n in tags if (v := tag_version(n)) is not None)
        newest = ", ".join(n for _, n in reversed(versions[-_NEWEST_SHOWN:])) or "none"
        raise RefNotFound(
            f"no tag on {url} matches {channel.ref!r} (newest version tags: {newest}); "
            "push a tag in the range or widen SKILLSYNC_REF")
    version, name = best
    return TagPick(name=name, version=str(version), commit=tags[name])


def tag_moved(tags: Mapping[str, str], previous: str | None) -> bool:
    """Whether the deployed commit no longer carries any tag: the tag it came from was
    moved or deleted, which a channel treats as a force-push (history rewritten) unless
    the new commit is known to descend from it."""
    return previous is not None and previous not in tags.values()
