"""What ``skillsyncd plan`` prints: text for people, JSON for tools, GitHub-flavoured
markdown for a pull-request comment or a check run's summary (pure)."""

from __future__ import annotations

import json
from typing import Any

from skillsyncd.model import Finding, Status
from skillsyncd.sync.preview import Facts, Preview, SkillPreview

FORMATS = ("text", "json", "markdown")
MARKDOWN_ROWS = 200  # a comment holds at most 65,536 characters: the rest is counted
_USAGE_SHOWN = 10  # usage.* findings listed before "N more"
_SHOWN = 80  # characters of a description or finding shown in a table cell

_VERDICTS = {
    Status.DEPLOYED: "would deploy",
    Status.NO_CHANGE: "no skill would change",
    Status.REJECTED: "would be refused: nothing goes live",
    Status.FROZEN: "would wait: deployments are frozen, nothing goes live until unfreeze",
    Status.SKIPPED_BAD: "would be skipped: the commit is marked bad (`--once --force` deploys it)",
}


def render(p: Preview, fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps(to_dict(p), indent=2, ensure_ascii=False)
    if fmt == "markdown":
        return markdown(p)
    if fmt != "text":
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return text(p)


def human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    if abs(n) < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KiB" if abs(n) < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


def _short(value: str | None, limit: int = _SHOWN) -> str:
    if value is None:
        return "(none)"
    one = " ".join(value.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _size(s: SkillPreview, arrow: str = "->") -> str:
    if s.after is None:
        return human_bytes(s.before.bytes if s.before else None)
    if s.before is None:
        return human_bytes(s.after.bytes)
    delta = s.size_delta
    sign = "" if delta is None else (f" ({'+' if delta >= 0 else '-'}{human_bytes(abs(delta))})")
    return f"{human_bytes(s.before.bytes)} {arrow} {human_bytes(s.after.bytes)}{sign}"


def _headline(p: Preview) -> str:
    live = p.live.manifest
    against = (f"live release {live.release} (commit {live.commit[:12]})" if live.release
               else "nothing live")
    return (f"commit {p.target.commit[:12]} ({p.target.ref} of {p.target.source}) against "
            f"{against}, from the {p.live.against}"
            + (f" exported {p.live.exported}" if p.live.exported else ""))


def _counts(p: Preview) -> str:
    return (f"+{p.count('added')} ~{p.count('changed')} -{p.count('removed')} ={p.unchanged}"
            f"; {len(p.held)} held back; {p.live_after} skill{'' if p.live_after == 1 else 's'} "
            "live after")


def _notes(p: Preview) -> list[str]:
    """The lines about the commit as a whole: refusal, bad mark, freeze, caps."""
    out = []
    if p.refusal:
        out.append(f"refused: {p.refusal}")
    if p.marked_bad:
        out.append(f"marked bad: {p.marked_bad}")
    if p.live.freeze is not None:
        out.append(p.live.freeze.describe())
    elif not p.live.freeze_known:
        out.append("freeze: not known (the manifest was not exported by `status --manifest`)")
    if p.cap is not None:
        out.append(f"gateway caps: {p.cap.message}")
    out += [f"{'prompt budget' if f.rule.startswith('usage.prompt') else 'usage'}: [{f.rule}] "
            f"{f.location()}: {f.message}" for f in p.usage[:_USAGE_SHOWN]]
    if len(p.usage) > _USAGE_SHOWN:
        out.append(f"usage: {len(p.usage) - _USAGE_SHOWN} more usage.* findings (--format json)")
    if p.settings_differ:
        out.append("settings: judged under settings that differ from the live release's; give "
                   "this command the daemon's SKILLSYNC_* settings (skills path, policy, limits, "
                   "depth, ignore, verify, gateway caps, publish mode) to judge as it will")
    return out


def text(p: Preview) -> str:
    lines = [f"plan: {_headline(p)}", f"{_VERDICTS[p.outcome]} ({_counts(p)})"]
    lines += [f"  {n}" for n in _notes(p)]
    mark = {"added": "+", "changed": "~", "removed": "-"}
    for s in p.skills:
        line = f"  {mark[s.change]} {s.name}  {s.change}  {_size(s)}"
        line += "".join(f"; {c.field}: {_short(c.before, 40)} -> {_short(c.after, 40)}"
                        for c in s.fields)
        lines.append(line)
        if s.held is not None:
            keeps = "; its live version keeps serving" if s.keeps_serving else ""
            lines.append(f"      held back ({s.errors} error{'s' if s.errors != 1 else ''}"
                         f"{keeps}): {s.held}")
        if s.not_loaded:
            lines.append("      not loaded: over the gateway's caps")
    return "\n".join(lines)


def _cell(value: str) -> str:
    """Text safe inside a markdown table cell, and inert (no mention, no HTML)."""
    out = value.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return out.replace("@", "@\u200b").replace("\n", " ")


def _code(value: str) -> str:
    return f"`{value.replace('`', chr(0x2C8))}`"


def _md_verdict(s: SkillPreview, goes: bool) -> str:
    if s.held is not None:
        keeps = " (its live version keeps serving)" if s.keeps_serving else ""
        more = f" +{s.errors - 1} more" if s.errors > 1 else ""
        return (f"**held back**{keeps}: {_code(s.held.rule)} {_cell(s.held.location())}: "
                f"{_cell(_short(s.held.message))}{more}")
    if s.not_loaded:
        return "**not loaded** (over the gateway's caps)"
    if s.change == "removed":
        return "removed" if goes else "stays live"
    return "goes live" if goes else "does not go live"


def _md_fields(s: SkillPreview) -> str:
    return "<br>".join(f"{c.field}: {_cell(_short(c.before, 40))} → {_cell(_short(c.after, 40))}"
                       for c in s.fields)


def markdown(p: Preview) -> str:
    icon = ":white_check_mark:" if p.exit_code == 0 else ":x:"
    held = f", {len(p.held)} held back" if p.held and p.outcome is Status.DEPLOYED else ""
    lines = [f"### {icon} skillsyncd plan: {_VERDICTS[p.outcome].replace('`', '')}{held}", "",
             _cell(_headline(p)), "", f"**{_counts(p)}**", ""]
    lines += [f"> {_cell(n)}" for n in _notes(p)]
    if p.refusal_findings:
        lines += ["", *(f"- {_code(f.rule)} {_cell(f.location())}: {_cell(f.message)}"
                        for f in p.refusal_findings[:20])]
    if p.skills:
        lines += ["", "| skill | change | frontmatter | size | verdict |", "| --- | --- | --- | --- | --- |"]
        goes = p.outcome is Status.DEPLOYED
        for s in p.skills[:MARKDOWN_ROWS]:
            lines.append(f"| {_code(s.name)} | {s.change} | {_md_fields(s)} | {_cell(_size(s, '→'))} "
                         f"| {_md_verdict(s, goes)} |")
        if len(p.skills) > MARKDOWN_ROWS:
            lines.append(f"\n… and {len(p.skills) - MARKDOWN_ROWS} more "
                         "(`skillsyncd plan --format json` lists all)")
    return "\n".join(lines) + "\n"


def _finding(f: Finding | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {"rule": f.rule, "severity": str(f.severity), "path": f.path, "line": f.line,
            "message": f.message}


def _facts(f: Facts | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {"name": f.name, "version": f.version, "description": f.description,
            "files": f.files, "bytes": f.bytes, "frontmatter_read": f.read}


def to_dict(p: Preview) -> dict[str, Any]:
    """``plan --format json``: one document; names as in the manifest and the journal."""
    live = p.live.manifest
    return {
        "commit": p.target.commit, "ref": p.target.ref, "source": p.target.source,
        "against": p.live.against, "exported": p.live.exported,
        "live_release": live.release or None, "live_commit": live.commit or None,
        "outcome": str(p.outcome), "exit_code": p.exit_code,
        "counts": {"added": p.count("added"), "changed": p.count("changed"),
                   "removed": p.count("removed"), "unchanged": p.unchanged,
                   "held_back": len(p.held), "not_loaded": len(p.not_loaded),
                   "live_after": p.live_after, "warnings": p.warnings},
        "refusal": None if p.refusal is None else {
            "message": p.refusal, "findings": [_finding(f) for f in p.refusal_findings]},
        "marked_bad": p.marked_bad,
        "freeze": p.live.freeze.to_dict() if p.live.freeze else None,
        "freeze_known": p.live.freeze_known,
        "gateway_cap": _finding(p.cap), "settings_differ": p.settings_differ,
        "usage": [_finding(f) for f in p.usage],
        "skills": [{"name": s.name, "change": s.change, "before": _facts(s.before),
                    "after": _facts(s.after), "bytes_delta": s.size_delta,
                    "frontmatter": [{"field": c.field, "before": c.before, "after": c.after}
                                    for c in s.fields],
                    "held_back": _finding(s.held), "errors": s.errors,
                    "held_back_before": s.again, "keeps_serving": s.keeps_serving,
                    "not_loaded": s.not_loaded} for s in p.skills],
    }
