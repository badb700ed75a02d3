"""Rules over parsed frontmatter fields: required fields, name, description, version.

Whether a description is there at all is the gateway's call (validation.gateway);
these rules only add what an author should fix, and ``required_fields`` the
operator's own demands on top.

Values are taken as the author wrote them (``Frontmatter.text``), so an
unquoted ``version: 1.10`` is checked and recorded as "1.10" and only warned
about, rather than becoming 1.1 or failing a string check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from skillsyncd.model import Finding
from skillsyncd.validation.frontmatter import Frontmatter
from skillsyncd.validation.rules import Policy

NAME_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
NAME_MAX = 64
DESCRIPTION_MAX = 1024
# Fields the Agent Skills spec and the gateway read as strings.
STRING_FIELDS = ("name", "description", "version", "license", "compatibility")


def declared_version(fm: Frontmatter) -> Any:
    """Top-level ``version`` wins; ``metadata.version`` is the spec's place for it."""
    top = fm.text("version")
    return top if top is not None else fm.text("metadata", "version")


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else "not a string"


@dataclass(frozen=True)
class _Draft:
    """A finding before the policy gives it a severity (or drops it)."""

    rule: str
    message: str
    line: int


def check_fields(
    fm: Frontmatter,
    folder: str,
    required: Sequence[str],
    policy: Policy,
    path: str,
) -> list[Finding]:
    """What an author should fix in the frontmatter's fields, in the order they read it."""
    drafts = [*_typing_drafts(fm), *_required_drafts(fm, required), *_type_drafts(fm),
              *_name_drafts(fm, folder, required), *_description_drafts(fm)]
    out = [policy.finding(d.rule, path, d.message, d.line) for d in drafts]
    return [f for f in out if f is not None]


def _at(fm: Frontmatter, *key: str) -> int:
    """The file line of ``key``, or the frontmatter's first line when it is not written."""
    return fm.line(*key) or 2


def _typing_drafts(fm: Frontmatter) -> list[_Draft]:
    """Implicit typing, only where a string is expected."""
    return [
        _Draft("yaml.implicit-type",
               f"{'.'.join(c.key)}: {c.text} is read by YAML as {c.kind}, not text; "
               f"quote it: {c.key[-1]}: \"{c.text}\"", c.line)
        for c in fm.coercions
        if c.key in {(k,) for k in STRING_FIELDS} or c.key == ("metadata", "version")
    ]


def _required_drafts(fm: Frontmatter, required: Sequence[str]) -> list[_Draft]:
    out = []
    for key in required:
        value = declared_version(fm) if key == "version" else fm.text(*key.split("."))
        if _empty(value):
            where = " (top-level or metadata.version)" if key == "version" else ""
            out.append(_Draft("field.required", f"required field '{key}'{where} is missing or empty",
                              _at(fm, key)))
    if "version" not in required and _empty(declared_version(fm)):
        out.append(_Draft(
            "field.version-missing",
            "no version: add metadata: {version: \"1.0.0\"} so deployments record which version ran", 2))
    return out


def _type_drafts(fm: Frontmatter) -> list[_Draft]:
    """Fields of the wrong type, and a version written twice with two values."""
    out = [_Draft("field.type", f"'{key}' must be text, but it is {_kind(value)}", _at(fm, key))
           for key in STRING_FIELDS if isinstance(value := fm.text(key), list | dict)]
    meta = fm.data.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        out.append(_Draft("field.type",
                          f"'metadata' must be a mapping of keys to values, but it is {_kind(meta)}",
                          _at(fm, "metadata")))
    top, nested = fm.text("version"), fm.text("metadata", "version")
    if isinstance(nested, list | dict):
        out.append(_Draft("field.type", f"'metadata.version' must be text, but it is {_kind(nested)}",
                          _at(fm, "metadata", "version")))
    if isinstance(top, str) and isinstance(nested, str) and top.strip() != nested.strip():
        out.append(_Draft("field.version-conflict",
                          f"version {top!r} and metadata.version {nested!r} disagree; keep one",
                          _at(fm, "version")))
    return out


def _name_drafts(fm: Frontmatter, folder: str, required: Sequence[str]) -> list[_Draft]:
    name = fm.text("name")
    out = []
    if _empty(name) and "name" not in required:
        out.append(_Draft(
            "field.name-missing",
            f"no name: the gateway uses the folder name {folder!r}; add name: {_suggest(folder)}",
            _at(fm, "name")))
    if isinstance(name, str) and name.strip():
        if len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
            out.append(_Draft(
                "field.name-format",
                f"name {name!r} should be 1-{NAME_MAX} lowercase letters, digits and single hyphens "
                f"(e.g. {_suggest(name)!r})", _at(fm, "name")))
        if name != folder:
            out.append(_Draft(
                "field.name-folder",
                f"name {name!r} differs from the folder name {folder!r}; rename one so they match",
                _at(fm, "name")))
    return out


def _description_drafts(fm: Frontmatter) -> list[_Draft]:
    description = fm.text("description")
    if isinstance(description, str) and len(description) > DESCRIPTION_MAX:
        return [_Draft("field.description-length",
                       f"description is {len(description)} characters; keep it within {DESCRIPTION_MAX} "
                       "(it is shown to the model in every session)", _at(fm, "description"))]
    return []


def _suggest(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:NAME_MAX].rstrip("-") or "my-skill"
