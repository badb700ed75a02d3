"""The use rules as findings: eligibility, the prompt budget, allow-lists and shadowing.

Pure: the published skills (:class:`SkillUse`, read from the release) and the
gateway's :class:`GatewayContext` in, findings out. Every message names what the
gateway will do and the change that fixes it; variable values are never shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from skillsyncd.model import Finding
from skillsyncd.validation.rules import Policy
from skillsyncd.validation.usage import allowlists, budget, shadowing
from skillsyncd.validation.usage.context import GatewayContext
from skillsyncd.validation.usage.eligibility import Verdict, evaluate, section
from skillsyncd.validation.usage.skill import SkillUse

_Found = list[Finding | None]


def _verdict(skill: SkillUse, ctx: GatewayContext) -> Verdict:
    """The gateway's verdict, less the checks this context cannot judge (a CI's PATH)."""
    v = evaluate(skill, ctx.host)
    v = replace(v, bins=v.bins if ctx.check_bins else (), any_bins=v.any_bins if ctx.check_bins else (),
                env=v.env if ctx.check_env else (), config=v.config if ctx.check_config else ())
    ok = not (v.disabled or v.not_allowed_bundled or v.os or v.bins or v.any_bins or v.env or v.config)
    return replace(v, eligible=ok)


def eligibility_findings(skill: SkillUse, ctx: GatewayContext, policy: Policy) -> _Found:
    """One finding per kind of unmet requirement of a published skill."""
    v = _verdict(skill, ctx)
    where, line = skill.path, skill.line("metadata")
    cfg = ctx.config_path or "the gateway's openclaw.json"
    never = "the gateway loads it but offers it to no agent"
    out: _Found = []
    if v.disabled:
        out.append(policy.finding("usage.disabled", where, (
            f"skills.entries.{skill.key}.enabled is false in {cfg}: {never}; "
            "remove that setting or set it to true"), line))
    if v.os:
        out.append(policy.finding("usage.os", where, (
            f"metadata.openclaw.os is {list(v.os)} and the gateway runs on {ctx.host.platform}: "
            f"{never}; add {ctx.host.platform!r} to os or remove os"), line))
    if v.bins:
        out.append(policy.finding("usage.requires-bins", where, (
            f"needs {', '.join(v.bins)} on the gateway's PATH, not found there: {never}; install "
            f"{'them' if len(v.bins) > 1 else 'it'} in the gateway's image (or set SKILLSYNC_GATEWAY_PATH "
            "to the PATH it really has), or remove it from metadata.openclaw.requires.bins"), line))
    if v.any_bins:
        out.append(policy.finding("usage.requires-any-bin", where, (
            f"needs one of {', '.join(v.any_bins)} on the gateway's PATH, none found: {never}; "
            "install one of them in the gateway's image"), line))
    if v.env:
        out.append(policy.finding("usage.requires-env", where, (
            f"needs {', '.join(v.env)} set for the gateway, not set: {never}; set "
            f"{'them' if len(v.env) > 1 else 'it'} in the gateway's environment or in "
            f"skills.entries.{skill.key}.env in {cfg}"), line))
    if v.config:
        out.append(policy.finding("usage.requires-config", where, (
            f"needs {', '.join(repr(c) for c in v.config)} truthy in {cfg}, unset or false there: "
            f"{never}; set {'them' if len(v.config) > 1 else 'it'} in {cfg}"), line))
    return out


def catalog_entries(published: Sequence[SkillUse], ctx: GatewayContext,
                    names: frozenset[str] | None = None, owner: bool = True
                    ) -> tuple[list[budget.Entry], set[str]]:
    """The catalog candidates after the merge by name and the gateway's gate, and which of
    them are published; ``names`` is an agent's allow-list (None: no filter). Custodian
    skills are loaded for the gateway's owner agent only (the default one, ``owner``)."""
    winners: dict[str, SkillUse] = {}
    for s in ctx.lower:
        if owner or s.source != "openclaw-custodian":
            winners[s.name] = s
    for s in published:
        winners[s.name] = s
    for o in ctx.higher:
        if o.skill is not None:
            winners[o.name] = o.skill
    mine = {s.name for s in published if winners.get(s.name) is s}
    out: list[budget.Entry] = []
    for s in winners.values():
        if names is not None and s.name not in names:
            continue
        if not s.model_visible or not _verdict(s, ctx).eligible:
            continue
        where = published_location(ctx, s) if s.name in mine else s.location or s.path
        out.append(budget.Entry(s.name, s.description, ctx.location(where)))
    return out, mine


def published_location(ctx: GatewayContext, skill: SkillUse) -> str:
    """Where the gateway finds a published skill's SKILL.md: in its managed folder."""
    return f"{ctx.published_dir.rstrip('/')}/{skill.folder}/SKILL.md"


def _views(ctx: GatewayContext) -> list[tuple[str, frozenset[str] | None, int | None]]:
    """(agent, allow-list, its own maxSkillsPromptChars) per distinct catalog: the defaults' first."""
    lists = allowlists.allow_lists(ctx.config)
    default = next((frozenset(a.names) for a in lists if a.agent == "defaults"), None)
    out: list[tuple[str, frozenset[str] | None, int | None]] = [("defaults", default, None)]
    entries = section(ctx.config, "agents", "entries")
    for a in lists:
        if a.agent != "defaults":
            entry = entries.get(a.agent)
            own = entry.get("skillsLimits") if isinstance(entry, dict) else None
            chars = own.get("maxSkillsPromptChars") if isinstance(own, dict) else None
            out.append((a.agent, frozenset(a.names), chars if isinstance(chars, int) else None))
    return out


def budget_findings(published: Sequence[SkillUse], ctx: GatewayContext, policy: Policy,
                    root: str) -> _Found:
    """The catalog of each agent view; findings where the gateway cuts or leaves out."""
    out: _Found = []
    max_chars, max_skills = ctx.limits()
    by_name = {s.name: s for s in published}
    for agent, names, own_chars in _views(ctx):
        entries, mine = catalog_entries(published, ctx, names, owner=agent == "defaults")
        catalog = budget.prepare(entries, own_chars if own_chars is not None else max_chars, max_skills)
        if catalog.format == "full" and not catalog.omitted:
            continue
        out.append(policy.finding("usage.prompt-budget", root or ".",
                                  _budget_message(agent, catalog, entries, mine, ctx)))
        if agent != "defaults":
            continue  # per-skill lines once, for the catalog most agents get
        for e in entries:
            skill = by_name.get(e.name)
            if skill is None or e.name not in mine:
                continue
            if e.name in catalog.omitted:
                out.append(policy.finding("usage.prompt-omitted", skill.path, (
                    f"left out of the skills catalog: it holds {len(catalog.kept)} of "
                    f"{len(entries)} skills within {catalog.max_chars:,} characters; agents are not "
                    "told this skill exists (see usage.prompt-budget)"), skill.line("name")))
                continue
            kept = budget.kept_chars(e, catalog)
            full = budget.js_len(budget.truncate_description(e.description, 10**9))
            if kept < full:
                out.append(policy.finding("usage.description-cut", skill.path, (
                    f"agents see {kept} of the {full} characters of this description: the skills "
                    "catalog is over budget and the gateway uses its compact format (see "
                    "usage.prompt-budget)"), skill.line("description")))
    return out


def _budget_message(agent: str, catalog: budget.Catalog, entries: Sequence[budget.Entry],
                    mine: set[str], ctx: GatewayContext) -> str:
    """What the gateway does to the catalog, by how much it is over, and what would fit."""
    ours = sum(1 for e in entries if e.name in mine)
    who = "agents" if agent == "defaults" else f"agent {agent!r}"
    counted = (f"{ours} published + {len(entries) - ours} bundled, plugin and other skills"
               if ctx.listed_others else f"{ours} skills of this repository alone (the gateway's "
               "bundled and plugin skills share the budget and were not counted; set "
               "SKILLSYNC_GATEWAY_BUNDLED_DIR or --gateway-bundled-dir)")
    if catalog.format == "full":
        did = "keeps the full format"
    elif catalog.description_chars:
        did = f"uses its compact format and cuts every description to {catalog.description_chars} characters"
    else:
        did = "uses its compact format without descriptions (names only)"
    text = (f"the skills catalog {who} get holds {len(catalog.kept)} of {len(entries)} eligible skills "
            f"({counted}): the full format needs {catalog.full_chars:,} characters, "
            f"{catalog.overrun:,} over skills.limits.maxSkillsPromptChars={catalog.max_chars:,}, so the "
            f"gateway {did}; {catalog.prompt_chars:,} characters")
    if catalog.omitted:
        shown = ", ".join(catalog.omitted[:10]) + (", ..." if len(catalog.omitted) > 10 else "")
        text += f"; left out: {len(catalog.omitted)} ({shown})"
    return text + ". To fit: " + "; or ".join(_fixes(catalog, entries, mine))


def _fixes(catalog: budget.Catalog, entries: Sequence[budget.Entry], mine: set[str]) -> list[str]:
    fixes = [f"raise skills.limits.maxSkillsPromptChars to {catalog.full_chars:,}"]
    if len(entries) > catalog.max_skills:
        fixes[0] += f" and skills.limits.maxSkillsInPrompt to {len(entries)}"
    ours = [e for e in entries if e.name in mine]
    fixes.append(f"shorten the published descriptions by {catalog.overrun:,} characters in total "
                 f"(now {sum(budget.js_len(e.description) for e in ours):,})")
    others = [e for e in entries if e.name not in mine]
    if others:
        alone = budget.prepare(ours, catalog.max_chars, catalog.max_skills)
        if alone.format == "full":
            fixes.append(f"set skills.allowBundled to the few bundled skills agents need (the "
                         f"{len(others)} others take {catalog.full_chars - alone.full_chars:,} characters)")
    fixes.append("give agents allow-lists (agents.defaults.skills, agents.entries.<id>.skills) "
                 "that hold fewer skills")
    return fixes


def _config_line(text: str, name: str) -> int | None:
    """The first line of openclaw.json that holds ``name`` quoted (JSON5 allows either quote)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if f'"{name}"' in line or f"'{name}'" in line:
            return number
    return None


def allowlist_findings(published: Sequence[SkillUse], ctx: GatewayContext, policy: Policy,
                       previous: Mapping[str, str]) -> _Found:
    """Allow-listed names the release lost: renamed in their folder, or gone.

    ``previous`` maps the previous release's folders to the names the gateway knew them by.
    """
    lists = allowlists.allow_lists(ctx.config)
    if not lists:
        return []
    loaded = {s.name for s in published} | {s.name for s in ctx.lower}
    loaded |= {o.name for o in ctx.higher}
    renames: dict[str, tuple[str, str]] = {}
    for s in published:
        for old in {s.folder.rsplit("/", 1)[-1], previous.get(s.folder, s.name)}:
            if old != s.name and old not in loaded:
                renames[old] = (s.folder, s.name)
    dropped = set(previous.values()) - loaded
    if ctx.listed_others:
        dropped |= {n for a in lists for n in a.names} - loaded
    cfg = ctx.config_path or "the gateway's openclaw.json"
    out: _Found = []
    for stale in allowlists.stale_names(lists, loaded, renames, dropped):
        key = ("agents.defaults.skills" if stale.agent == "defaults"
               else f"agents.entries.{stale.agent}.skills")
        whose = "agents without their own list" if stale.agent == "defaults" else f"agent {stale.agent!r}"
        if stale.renamed_to is not None:
            out.append(policy.finding("usage.allowlist-renamed", cfg, (
                f"{key} names {stale.name!r}, but folder {stale.folder} now declares name "
                f"{stale.renamed_to!r}: {whose} lose it and keep {stale.left} skill(s); put "
                f"{stale.renamed_to!r} in {key} or restore the name"),
                _config_line(ctx.config_text, stale.name)))
        else:
            out.append(policy.finding("usage.allowlist-missing", cfg, (
                f"{key} names {stale.name!r}, which this release no longer has: {whose} keep "
                f"{stale.left} skill(s); remove it from {key} or publish it again"),
                _config_line(ctx.config_text, stale.name)))
    return out


def shadow_findings(published: Sequence[SkillUse], ctx: GatewayContext, policy: Policy) -> _Found:
    """Published skills that a higher tier beats, and lower-tier ones they replace."""
    others = [*ctx.higher, *(shadowing.Other(s.name, "bundled" if s.source != "openclaw-extra" else "extra",
                                               s.source, s.path, s) for s in ctx.lower)]
    by_name = {s.name: s for s in published}
    out: _Found = []
    for c in shadowing.collisions(by_name, others):
        skill = by_name[c.name]
        if c.winner is not None:
            out.append(policy.finding("usage.shadowed", skill.path, (
                f"{c.winner.path} ({c.winner.source}) is also named {c.name!r} and wins: the gateway "
                "loads that one instead of the published skill and lists only it; rename one of them "
                "or remove the other"), skill.line("name")))
        elif c.loser is not None:
            out.append(policy.finding("usage.shadows-bundled", skill.path, (
                f"replaces the {c.loser.source} skill {c.name!r} ({c.loser.path}): agents get this one "
                "instead; rename it to keep both"), skill.line("name")))
    return out


def usage_findings(published: Sequence[SkillUse], ctx: GatewayContext, policy: Policy, root: str,
                   previous: Mapping[str, str] | None = None) -> tuple[Finding, ...]:
    """Every use finding for a release's (or a working tree's) loadable skills."""
    out: _Found = []
    for skill in published:
        out += eligibility_findings(skill, ctx, policy)
    out += budget_findings(published, ctx, policy, root)
    out += allowlist_findings(published, ctx, policy, previous or {})
    out += shadow_findings(published, ctx, policy)
    return tuple(f for f in out if f is not None)
