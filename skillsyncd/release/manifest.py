"""The release manifest, ``releases/<id>.json``: the on-disk contract as a typed, frozen value.

:func:`write_manifest` is its only writer (release staging), :func:`read_manifest`
its only reader (``Releases.manifest``, whose typed value every other module
gets) and :func:`live_shas_in` the quick read retention needs; no other module
opens the file (tests/test_single_readers.py). The keys are the ones the README's
manifest table documents. Manifests written by 0.1.0 read fine: a field they lack
takes its default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from skillsyncd.fsutil import atomic_write
from skillsyncd.model import Finding, Severity

MANIFEST_FORMAT = 1


def finding_to_json(f: Finding) -> dict[str, Any]:
    return {"rule": f.rule, "severity": str(f.severity), "path": f.path, "line": f.line,
            "message": f.message}


def finding_from_json(raw: Mapping[str, Any]) -> Finding:
    try:
        severity = Severity(str(raw.get("severity", "warning")))
    except ValueError:
        severity = Severity.WARNING
    return Finding(rule=str(raw.get("rule", "")), severity=severity, path=str(raw.get("path", "")),
                   message=str(raw.get("message", "")), line=raw.get("line"))


def _findings(raw: Any) -> tuple[Finding, ...]:
    return tuple(finding_from_json(f) for f in raw or () if isinstance(f, Mapping))


@dataclass(frozen=True, slots=True)
class SkillRecord:
    """One skill of a release: live (its bytes are in the release) or held back."""

    name: str
    live: bool = True
    status: str = "ok"  # ok | held_back (the last good version, if any, stays live)
    change: str | None = None  # added | changed | unchanged
    content_sha: str | None = None  # git tree id of the skill folder
    commit: str | None = None  # the commit these bytes were built from
    version: str | None = None
    declared_name: str | None = None
    effective_name: str | None = None
    description: str | None = None
    files: int | None = None
    bytes: int | None = None
    warnings: tuple[Finding, ...] = ()
    findings: tuple[Finding, ...] = ()  # why a held-back skill was held back
    rejected_sha: str | None = None  # the held-back content

    @property
    def gateway_name(self) -> str:
        """The name the gateway lists: the declared one, else the folder's."""
        return self.effective_name or self.name

    def held_back(self, rejected_sha: str, findings: Sequence[Finding]) -> SkillRecord:
        """This (live) record kept while a newer version of the skill is held back."""
        return replace(self, status="held_back", rejected_sha=rejected_sha, findings=tuple(findings))

    def event(self, change: str | None = None) -> dict[str, Any]:
        """The per-skill line of a journal event."""
        return {"name": self.name, "version": self.version, "content_sha": self.content_sha,
                "change": change or self.change}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "live": self.live, "status": self.status}
        if self.live:
            out.update(change=self.change, content_sha=self.content_sha, commit=self.commit,
                       version=self.version, declared_name=self.declared_name,
                       effective_name=self.effective_name, description=self.description,
                       files=self.files, bytes=self.bytes,
                       warnings=[finding_to_json(f) for f in self.warnings])
        else:
            out["version"] = self.version
        if self.rejected_sha is not None:
            out["rejected_sha"] = self.rejected_sha
        if self.findings:
            out["findings"] = [finding_to_json(f) for f in self.findings]
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> SkillRecord:
        def text(key: str) -> str | None:
            value = raw.get(key)
            return None if value is None else str(value)

        def number(key: str) -> int | None:
            value = raw.get(key)
            return value if isinstance(value, int) else None

        return cls(
            name=str(raw["name"]), live=bool(raw.get("live", True)),
            status=str(raw.get("status", "ok")), change=text("change"),
            content_sha=text("content_sha"), commit=text("commit"), version=text("version"),
            declared_name=text("declared_name"), effective_name=text("effective_name"),
            description=text("description"), files=number("files"), bytes=number("bytes"),
            warnings=_findings(raw.get("warnings")), findings=_findings(raw.get("findings")),
            rejected_sha=text("rejected_sha"),
        )


@dataclass(frozen=True)
class ValidationSummary:
    policy: str = "skip"
    held_back: tuple[str, ...] = ()
    errors: int = 0
    warnings: int = 0
    basis: str | None = None  # digest of the settings and allow-list the skills were judged by


@dataclass(frozen=True)
class Manifest:
    """What a release holds and where it came from."""

    release: str
    commit: str
    tree: str | None = None
    ref: str | None = None
    source: str | None = None
    skills_path: str = ""
    tag: str | None = None  # the tag a channel ref (semver:...) deployed
    created: str | None = None
    previous_release: str | None = None  # the release this one replaced when it went live
    history_rewritten: bool | None = None
    settings: str | None = None
    layout: tuple[Finding, ...] = ()
    validation: ValidationSummary = field(default_factory=ValidationSummary)
    skills: tuple[SkillRecord, ...] = ()
    format: int = MANIFEST_FORMAT

    @property
    def live(self) -> tuple[SkillRecord, ...]:
        return tuple(s for s in self.skills if s.live)

    def live_by_name(self) -> dict[str, SkillRecord]:
        return {s.name: s for s in self.skills if s.live}

    def live_shas(self) -> dict[str, str]:
        """Live skill name -> content sha (what publishing and verification compare)."""
        return {s.name: s.content_sha or "" for s in self.skills if s.live}

    def to_json(self) -> bytes:
        """Indented JSON with one skill per line: readable, and fast for 10,000 skills.

        ``json.dumps(indent=...)`` runs the pure-Python encoder (~1 s for 10,000
        skills); without ``indent`` the C encoder does each line.
        """
        body = {
            "format": self.format, "release": self.release, "commit": self.commit,
            "tree": self.tree, "ref": self.ref, "tag": self.tag, "source": self.source,
            "skills_path": self.skills_path, "created": self.created,
            "previous_release": self.previous_release, "history_rewritten": self.history_rewritten,
            "settings": self.settings, "layout": [finding_to_json(f) for f in self.layout],
            "validation": {"policy": self.validation.policy,
                           "held_back": list(self.validation.held_back),
                           "errors": self.validation.errors, "warnings": self.validation.warnings,
                           "basis": self.validation.basis},
        }
        head = json.dumps(body, indent=2)
        lines = ",\n".join("    " + json.dumps(s.to_json(), separators=(", ", ": "))
                           for s in self.skills)
        listing = f'"skills": [\n{lines}\n  ]' if self.skills else '"skills": []'
        return (head[:-2] + ",\n  " + listing + "\n}\n").encode()

    def to_dict(self) -> dict[str, Any]:
        """The JSON document as plain data (what a reader of the file sees)."""
        data: dict[str, Any] = json.loads(self.to_json())
        return data

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any]) -> Manifest:
        """Parse a manifest; raises ValueError (or KeyError/TypeError) if it is not one."""
        raw = json.loads(data) if isinstance(data, bytes | str) else data
        if not isinstance(raw, Mapping):
            raise ValueError("not a JSON object")
        val = raw.get("validation") or {}
        return cls(
            release=str(raw["release"]), commit=str(raw["commit"]),
            tree=raw.get("tree"), ref=raw.get("ref"), tag=raw.get("tag"), source=raw.get("source"),
            skills_path=str(raw.get("skills_path") or ""), created=raw.get("created"),
            previous_release=raw.get("previous_release"),
            history_rewritten=raw.get("history_rewritten"), settings=raw.get("settings"),
            layout=_findings(raw.get("layout")),
            validation=ValidationSummary(
                policy=str(val.get("policy", "skip")),
                held_back=tuple(str(n) for n in val.get("held_back") or ()),
                errors=int(val.get("errors") or 0), warnings=int(val.get("warnings") or 0),
                basis=val.get("basis")),
            skills=tuple(SkillRecord.from_json(s) for s in raw.get("skills") or ()),
            format=int(raw.get("format") or MANIFEST_FORMAT),
        )


EMPTY = Manifest(release="", commit="")


def read_manifest(path: Path) -> Manifest:
    """The manifest at ``path``; raises OSError, or ValueError (KeyError, TypeError) if it is not one."""
    return Manifest.from_json(path.read_bytes())


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Write ``manifest`` atomically and read-only: a release's manifest never changes."""
    atomic_write(path, manifest.to_json(), mode=0o444)


def live_shas_in(path: Path) -> set[str]:
    """The content shas of the skills a manifest serves, without building the whole value
    (retention reads every kept release's); raises OSError or ValueError."""
    raw = json.loads(path.read_bytes())
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    return {str(s["content_sha"]) for s in raw.get("skills") or ()
            if isinstance(s, dict) and s.get("live", True) and s.get("content_sha")}


# ``skillsyncd status --manifest``: the live manifest with what else the live state says
# (the freeze, the commits marked bad) under this key, which readers of manifests ignore.
EXPORT_KEY = "live_state"


def export_json(manifest: Manifest, live_state: Mapping[str, Any]) -> bytes:
    """The exported manifest: the live release's own document plus ``live_state``."""
    data = manifest.to_dict()
    data[EXPORT_KEY] = dict(live_state)
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()


def read_export(path: Path) -> tuple[Manifest, dict[str, Any]]:
    """A manifest file (exported, or a release's own) and its ``live_state`` ({} if none);
    raises OSError, or ValueError (KeyError, TypeError) if it is not a manifest."""
    raw = json.loads(path.read_bytes())
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    extra = raw.get(EXPORT_KEY)
    return Manifest.from_json(raw), dict(extra) if isinstance(extra, dict) else {}
