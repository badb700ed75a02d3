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


def check_fields(
    fm: Frontmatter,
    folder: str,
    required: Sequence[str],
    policy: Policy,
    path: str,
) -> list[Finding]:
    out: list[Finding | None] = []

    def add(rule: str, message: str, key: tuple[str, ...] = ()) -> None:
        out.append(policy.finding(rule, path, message, (fm.line(*key) or 2) if key else 2))

    # implicit typing, only where a string is expected
    for c in fm.coercions:
        if c.key in {(k,) for k in STRING_FIELDS} or c.key == ("metadata", "version"):
            dotted = ".".join(c.key)
            out.append(policy.finding(
                "yaml.implicit-type", path,
                f"{dotted}: {c.text} is read by YAML as {c.kind}, not text; "
                f"quote it: {c.key[-1]}: \"{c.text}\"",
                c.line,
            ))

    version = declared_version(fm)
    for key in required:
        value = declared_version(fm) if key == "version" else fm.text(*key.split("."))
        if _empty(value):
            where = " (top-level or metadata.version)" if key == "version" else ""
            add("field.required", f"required field '{key}'{where} is missing or empty", (key,))
    if "version" not in required and _empty(version):
        out.append(policy.finding(
            "field.version-missing", path,
            "no version: add metadata: {version: \"1.0.0\"} so deployments record which version ran",
            2,
        ))

    for key in STRING_FIELDS:
        value = fm.text(key)
        if isinstance(value, list | dict):
            add("field.type", f"'{key}' must be text, but it is {_kind(value)}", (key,))
    meta = fm.data.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        add("field.type", f"'metadata' must be a mapping of keys to values, but it is {_kind(meta)}",
            ("metadata",))
    top, nested = fm.text("version"), fm.text("metadata", "version")
    if isinstance(nested, list | dict):
        add("field.type", f"'metadata.version' must be text, but it is {_kind(nested)}",
            ("metadata", "version"))
    if isinstance(top, str) and isinstance(nested, str) and top.strip() != nested.strip():
        add("field.version-conflict",
            f"version {top!r} and metadata.version {nested!r} disagree; keep one", ("version",))

    name = fm.text("name")
    if _empty(name) and "name" not in required:
        add("field.name-missing",
            f"no name: the gateway uses the folder name {folder!r}; add name: {_suggest(folder)}",
            ("name",))
    if isinstance(name, str) and name.strip():
        if len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
            add("field.name-format",
                f"name {name!r} should be 1-{NAME_MAX} lowercase letters, digits and single hyphens "
                f"(e.g. {_suggest(name)!r})", ("name",))
        if name != folder:
            add("field.name-folder",
                f"name {name!r} differs from the folder name {folder!r}; rename one so they match",
                ("name",))

    description = fm.text("description")
    if isinstance(description, str) and len(description) > DESCRIPTION_MAX:
        add("field.description-length",
            f"description is {len(description)} characters; keep it within {DESCRIPTION_MAX} "
            "(it is shown to the model in every session)", ("description",))
    return [f for f in out if f is not None]


def _suggest(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:NAME_MAX].rstrip("-") or "my-skill"
