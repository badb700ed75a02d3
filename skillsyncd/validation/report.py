"""What ``skillsyncd validate PATH`` prints: text for people, JSON for tools,
GitHub workflow commands so findings appear as annotations on the pull request."""

from __future__ import annotations

import json
from dataclasses import dataclass

from skillsyncd.errors import EXIT_OK, EXIT_REJECTED
from skillsyncd.model import Finding, Severity

FORMATS = ("text", "json", "github")


@dataclass(frozen=True)
class Report:
    root: str
    skills: tuple[str, ...]  # repository-relative folders that were checked
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def summary(self) -> str:
        n = len(self.skills)
        return (f"{n} skill{'s' if n != 1 else ''} checked in {self.root}: "
                f"{self.errors} error{'s' if self.errors != 1 else ''}, "
                f"{self.warnings} warning{'s' if self.warnings != 1 else ''}")


def exit_code(report: Report) -> int:
    """0 when clean or only warnings; EXIT_REJECTED (4) on any error, or when no skill was found.

    Zero skills means the check looked in the wrong place, which a CI must not pass.
    """
    return EXIT_OK if report.ok and report.skills else EXIT_REJECTED


def _sorted(report: Report) -> list[Finding]:
    return sorted(report.findings, key=lambda f: (f.path, f.line or 0, f.rule))


def _gh_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(s: str) -> str:
    return _gh_data(s).replace(":", "%3A").replace(",", "%2C")


def render(report: Report, fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps({
            "root": report.root,
            "ok": report.ok,
            "errors": report.errors,
            "warnings": report.warnings,
            "skills": list(report.skills),
            "findings": [
                {"rule": f.rule, "severity": str(f.severity), "path": f.path, "line": f.line,
                 "message": f.message}
                for f in _sorted(report)
            ],
        }, indent=2, ensure_ascii=False)
    if fmt == "github":
        lines = []
        for f in _sorted(report):
            kind = "error" if f.severity is Severity.ERROR else "warning"
            props = f"file={_gh_prop(f.path)}"
            if f.line:
                props += f",line={f.line}"
            props += f",title={_gh_prop(f.rule)}"
            lines.append(f"::{kind} {props}::{_gh_data(f.message)}")
        lines.append(report.summary())
        return "\n".join(lines)
    if fmt != "text":
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return "\n".join([*(str(f) for f in _sorted(report)), report.summary()])
