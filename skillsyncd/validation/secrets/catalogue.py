"""The secret table as the rule catalogue and the docs see it.

``python -m skillsyncd.validation.secrets.catalogue`` prints the docs table
(docs/validation.md, 'Secret rules'); with ``--figures`` the counts README.md quotes
("N credential formats from M providers"), so no figure in the docs is typed by hand.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from skillsyncd.model import Severity
from skillsyncd.validation.secret_rules import KEYED_RULES, SECRET_RULES, TOKEN_RULES
from skillsyncd.validation.secrets.formats import SecretRule


@dataclass(frozen=True)
class Figures:
    """What the docs count: the formats and providers of the token and keyed rows (the
    structural rules are listed by kind, not counted as formats), and the rule ids."""

    formats: int
    providers: int
    rules: int

    def text(self) -> str:
        return f"{self.formats} credential formats from {self.providers} providers"


def figures() -> Figures:
    rows = (*TOKEN_RULES, *KEYED_RULES)
    return Figures(
        formats=sum(len(r.formats) for r in rows),
        providers=len({r.provider for r in rows}),
        rules=len({r.id for r in SECRET_RULES}),
    )


def catalogue() -> list[tuple[str, Severity, str]]:
    """(id, severity, summary) per rule id, for the rule catalogue; rows sharing an id agree."""
    seen: dict[str, tuple[Severity, list[str]]] = {}
    for r in SECRET_RULES:
        sev, providers = seen.setdefault(r.id, (r.severity, []))
        if sev is not r.severity:
            raise ValueError(f"{r.id}: rows of the secret table disagree on severity")
        if r.provider not in providers:
            providers.append(r.provider)
    out = []
    for rule_id, (sev, providers) in seen.items():
        kind = rule_id.removeprefix("secret.").split("-", 1)[-1].replace("-", " ")
        out.append((rule_id, sev, f"{', '.join(providers)} {kind}"))
    return out


def markdown_table() -> str:
    """The docs table, one row per rule id."""
    rows: dict[str, list[SecretRule]] = {}
    for r in SECRET_RULES:
        rows.setdefault(r.id, []).append(r)
    lines = ["| Rule | Default | Provider | Format | Prefilter | Min. entropy |", "|---|---|---|---|---|---|"]
    for rule_id, rs in rows.items():
        providers = ", ".join(dict.fromkeys(r.provider for r in rs))
        fmt = "; ".join(r.format_doc for r in rs).replace("|", "\\|")
        needles = sorted({n for r in rs for n in r.prefilter if n})
        pre = ", ".join(f"`{x}`" for x in needles[:6]).replace("|", "\\|")
        pre += ", …" if len(needles) > 6 else ""
        ent = "/".join(dict.fromkeys(f"{r.min_entropy:g}" for r in rs)) if rs[0].kind != "structural" else "-"
        lines.append(f"| `{rule_id}` | {rs[0].severity.value} | {providers} | {fmt} | {pre or '-'} | {ent} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(figures().text() if "--figures" in sys.argv[1:] else markdown_table())
