"""The usage.* rules (validation/usage/): eligibility, the prompt budget, allow-lists, shadowing.

The gateway's own answers for the same cases are compared in tests/e2e/test_openclaw_usage.py;
here each decision is pinned on real files (executables on a PATH the test builds, an
openclaw.json on disk) and followed through validate, a sync, /status, the dashboard
and the alerts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from skillsyncd.audit.events import Deployed
from skillsyncd.cli import main
from skillsyncd.config import load_config
from skillsyncd.daemon.dashboard import skill_rows
from skillsyncd.errors import EXIT_OK, EXIT_REJECTED
from skillsyncd.notify.alerts import Book, Settings, decide
from skillsyncd.release.releases import Releases
from skillsyncd.status import status_dict
from skillsyncd.sync.assembly import build_syncer
from skillsyncd.validation.gate import policy_of
from skillsyncd.validation.usage import budget
from skillsyncd.validation.usage.check import catalog_entries, usage_findings
from skillsyncd.validation.usage.context import GatewayContext, read_context
from skillsyncd.validation.usage.eligibility import Host, evaluate
from skillsyncd.validation.usage.shadowing import Other
from skillsyncd.validation.usage.skill import SkillUse, read_skill


def skill_md(name: str, description: str = "A skill.", metadata: Any = None, extra: str = "") -> bytes:
    meta = f"metadata: {json.dumps(metadata)}\n" if metadata is not None else ""
    return f"---\nname: {name}\ndescription: {description}\n{meta}{extra}---\nBody.\n".encode()


def use(name: str, metadata: Any = None, description: str = "A skill.", **kw: Any) -> SkillUse:
    skill = read_skill(skill_md(name, description, metadata), name, f"skills/{name}/SKILL.md", **kw)
    assert skill is not None
    return skill


@pytest.fixture
def bindir(tmp_path: Path) -> Path:
    """A PATH folder holding an executable ``jq`` and a non-executable ``uv``."""
    d = tmp_path / "bin"
    d.mkdir()
    (d / "jq").write_text("#!/bin/sh\n")
    (d / "jq").chmod(0o755)
    (d / "uv").write_text("not executable\n")
    (d / "uv").chmod(0o644)
    return d


def test_bins_all_on_path_any_bins_one_of_them(bindir: Path) -> None:
    host = Host(path=str(bindir), env={})
    assert evaluate(use("a", {"openclaw": {"requires": {"bins": ["jq"]}}}), host).eligible
    missing = evaluate(use("b", {"openclaw": {"requires": {"bins": ["jq", "uv", "ffmpeg"]}}}), host)
    assert not missing.eligible and missing.bins == ("uv", "ffmpeg")  # uv is there but not executable
    assert evaluate(use("c", {"openclaw": {"requires": {"anyBins": ["nope", "jq"]}}}), host).eligible
    none = evaluate(use("d", {"openclaw": {"requires": {"anyBins": "nope, uv"}}}), host)
    assert none.any_bins == ("nope", "uv")  # a comma-separated string is a list too


def test_env_config_os_always_and_the_legacy_block(bindir: Path) -> None:
    config = {"browser": {"enabled": False}, "feature": {"on": 1, "off": 0, "blank": " "},
              "skills": {"entries": {"keyed": {"env": {"FROM_CONFIG": "x"}}}}}
    host = Host(path=str(bindir), env={"SET": "v", "BLANK": "  "}, platform="linux", config=config)
    v = evaluate(use("e", {"openclaw": {"requires": {"env": ["SET", "BLANK", "UNSET"]}}}), host)
    assert v.env == ("BLANK", "UNSET")
    keyed = use("k", {"openclaw": {"skillKey": "keyed", "requires": {"env": ["FROM_CONFIG"]}}})
    assert evaluate(keyed, host).eligible
    cfg = evaluate(use("c", {"openclaw": {"requires": {"config": [
        "feature.on", "feature.off", "feature.blank", "browser.enabled", "browser.evaluateEnabled"]}}}), host)
    assert cfg.config == ("feature.off", "feature.blank", "browser.enabled")  # evaluateEnabled defaults true
    mac = use("m", {"openclaw": {"os": ["darwin"], "always": True}})
    assert evaluate(mac, host).os == ("darwin",) and not evaluate(mac, host).eligible  # os before always
    forced = use("f", {"openclaw": {"always": True, "requires": {"bins": ["ffmpeg"]}}})
    assert evaluate(forced, host).eligible
    legacy = use("l", {"clawdbot": {"requires": {"bins": ["ffmpeg"]}}})
    assert evaluate(legacy, host).bins == ("ffmpeg",)
    json5_text = read_skill(b"---\nname: j\ndescription: d\n"
                            b"metadata: \"{openclaw: {requires: {env: ['X1']}}}\"\n---\n", "j", "j/SKILL.md")
    assert json5_text is not None and evaluate(json5_text, host).env == ("X1",)


def test_disabled_entry_and_allow_bundled() -> None:
    host = Host(config={"skills": {"entries": {"off": {"enabled": False}}, "allowBundled": ["kept"]}})
    assert evaluate(use("off"), host).disabled
    assert not evaluate(use("other", source="openclaw-bundled"), host).eligible
    assert evaluate(use("kept", source="openclaw-bundled"), host).eligible
    assert evaluate(use("mine"), host).eligible  # allowBundled never filters published skills


def test_full_format_when_it_fits_compact_with_cut_descriptions_when_not() -> None:
    entries = [budget.Entry(f"s{i:02d}", "d" * 100, f"/data/.openclaw/skills/s{i:02d}/SKILL.md")
               for i in range(40)]
    roomy = budget.prepare(entries, max_chars=100_000)
    assert roomy.format == "full" and roomy.description_chars is None and not roomy.omitted
    assert roomy.prompt_chars == roomy.full_chars == len(budget.render(entries, 40, None))
    tight = budget.prepare(entries, max_chars=roomy.full_chars - 1)
    assert tight.format == "compact" and tight.description_chars is not None
    assert 4 <= tight.description_chars < 100 and tight.prompt_chars <= roomy.full_chars - 1
    assert budget.kept_chars(entries[0], tight) == tight.description_chars
    # one more character of description no longer fits: the cut is the largest that does
    assert budget.js_len(budget.render(entries, 40, tight.description_chars + 1)) > roomy.full_chars - 1
    names_only = budget.prepare(entries, max_chars=len(budget.render(entries[:10], 40, 0)))
    assert names_only.format == "compact" and len(names_only.kept) == 10
    assert names_only.omitted == tuple(e.name for e in entries[10:])
    capped = budget.prepare(entries, max_chars=100_000, max_skills=5)
    assert capped.kept == ("s00", "s01", "s02", "s03", "s04") and len(capped.omitted) == 35


def test_lengths_are_utf16_and_order_is_the_gateways() -> None:
    assert budget.js_len("a\U0001f600") == 3
    assert budget.truncate_description("ab\U0001f600cdef", 6) == "ab..."  # no half surrogate pair
    assert budget.truncate_description("  a \n\t b  ", 220) == "a b"
    names = ["b", "a-b", "ab", "a_b", "A", "a", "a1", "a10", "a2"]
    assert sorted(names, key=budget.name_order) == ["a", "A", "a_b", "a-b", "a1", "a10", "a2", "ab", "b"]


def context(tmp_path: Path, config: dict[str, Any], higher: tuple[Other, ...] = (),
            lower: tuple[SkillUse, ...] = ()) -> GatewayContext:
    path = tmp_path / "openclaw.json"
    text = json.dumps(config, indent=1)
    path.write_text(text)
    return GatewayContext(host=Host(env={}, config=config), config_path=str(path),
                          state_dir="/data/.openclaw", home="/data", published_dir="/data/.openclaw/skills",
                          lower=lower, higher=higher, listed_others=True, config_text=text)


def test_allow_list_rename_and_removal(tmp_path: Path) -> None:
    config = {"agents": {"defaults": {"skills": ["pdf-tools", "gone"]},
                         "entries": {"ops": {"skills": ["pdf-tools", "notes"]}}}}
    ctx = context(tmp_path, config)
    renamed = read_skill(skill_md("pdf"), "pdf-tools", "skills/pdf-tools/SKILL.md")
    assert renamed is not None
    found = usage_findings([renamed, use("notes")], ctx, policy_of(load_config(env={})), "skills")
    by_rule = sorted((f.rule, f.line, f.message.split(":")[0]) for f in found
                     if f.rule.startswith("usage.allow"))
    lines = ctx.config_text.splitlines()
    assert by_rule == [
        ("usage.allowlist-missing", 6,
         "agents.defaults.skills names 'gone', which this release no longer has"),
        ("usage.allowlist-renamed", 5,
         "agents.defaults.skills names 'pdf-tools', but folder pdf-tools now declares name 'pdf'"),
        ("usage.allowlist-renamed", 5,
         "agents.entries.ops.skills names 'pdf-tools', but folder pdf-tools now declares name 'pdf'"),
    ]
    assert '"pdf-tools"' in lines[4] and '"gone"' in lines[5]
    ops = next(f for f in found if "agents.entries.ops" in f.message)
    assert "keep 1 skill(s)" in ops.message  # notes still matches


def test_shadowed_by_a_workspace_skill_and_shadowing_a_bundled_one(tmp_path: Path) -> None:
    theirs = use("pdf")
    higher = (Other("pdf", "workspace", "openclaw-workspace", "/ws/skills/pdf/SKILL.md", theirs),)
    bundled = (use("skill-creator", source="openclaw-bundled"),)
    ctx = context(tmp_path, {}, higher=higher, lower=bundled)
    found = {f.rule: f for f in usage_findings([use("pdf"), use("skill-creator")], ctx,
                                               policy_of(load_config(env={})), "skills")}
    assert found["usage.shadowed"].path == "skills/pdf/SKILL.md" and found["usage.shadowed"].line == 2
    assert "/ws/skills/pdf/SKILL.md (openclaw-workspace) is also named 'pdf' and wins" in \
        found["usage.shadowed"].message
    assert "replaces the openclaw-bundled skill 'skill-creator'" in found["usage.shadows-bundled"].message
    names = [e.name for e in catalog_entries([use("pdf"), use("skill-creator")], ctx)[0]]
    mine = catalog_entries([use("pdf"), use("skill-creator")], ctx)[1]
    # the catalog lists the workspace's pdf, not the published one
    assert sorted(names) == ["pdf", "skill-creator"] and mine == {"skill-creator"}


def test_budget_finding_names_the_cut_the_overrun_and_what_fits(tmp_path: Path) -> None:
    ctx = context(tmp_path, {"skills": {"limits": {"maxSkillsPromptChars": 1500}}})
    published = [use(f"s{i}", description="word " * 60) for i in range(5)]
    found = usage_findings(published, ctx, policy_of(load_config(env={})), "skills")
    summary = next(f for f in found if f.rule == "usage.prompt-budget")
    entries, _ = catalog_entries(published, ctx)
    catalog = budget.prepare(entries, 1500)
    assert f"cuts every description to {catalog.description_chars} characters" in summary.message
    assert f"raise skills.limits.maxSkillsPromptChars to {catalog.full_chars:,}" in summary.message
    assert f"{catalog.overrun:,} over skills.limits.maxSkillsPromptChars=1,500" in summary.message
    cut = [f for f in found if f.rule == "usage.description-cut"]
    assert len(cut) == 5 and cut[0].line == 3
    assert f"agents see {catalog.description_chars} of the 299 characters" in cut[0].message


def write_repo(root: Path) -> None:
    for name, meta in (("needs-jq", {"openclaw": {"requires": {"bins": ["jq"], "env": ["TOKEN_X"]}}}),
                       ("plain", None)):
        (root / "skills" / name).mkdir(parents=True)
        (root / "skills" / name / "SKILL.md").write_bytes(skill_md(name, "x", meta, "version: '1'\n"))


def test_validate_judges_what_its_flags_give(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             bindir: Path) -> None:
    write_repo(tmp_path)
    assert main(["validate", str(tmp_path), "--skills-path", "skills", "--format", "json"]) == EXIT_OK
    alone = json.loads(capsys.readouterr().out)
    assert not [f for f in alone["findings"] if f["rule"].startswith("usage.requires")]  # CI's PATH is not it
    assert main(["validate", str(tmp_path), "--skills-path", "skills", "--format", "json",
                 "--gateway-path", str(tmp_path / "empty"), "--gateway-env", "OTHER"]) == EXIT_OK
    told = {(f["rule"], f["path"], f["line"]) for f in json.loads(capsys.readouterr().out)["findings"]}
    assert {("usage.requires-bins", "skills/needs-jq/SKILL.md", 4),
            ("usage.requires-env", "skills/needs-jq/SKILL.md", 4)} <= told
    assert main(["validate", str(tmp_path), "--skills-path", "skills", "--gateway-path", str(bindir),
                 "--gateway-env", "TOKEN_X", "--format", "json"]) == EXIT_OK
    assert not [f for f in json.loads(capsys.readouterr().out)["findings"] if f["rule"].startswith("usage.")]


def test_a_usage_rule_set_to_error_fails_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write_repo(tmp_path)
    monkeypatch.setenv("SKILLSYNC_SEVERITY", "usage.requires-bins=error")
    assert main(["validate", str(tmp_path), "--skills-path", "skills", "--gateway-path", ""]) == EXIT_REJECTED
    assert "error [usage.requires-bins] needs jq" in capsys.readouterr().out


def test_a_sync_records_usage_findings_everywhere(repo: Any, tmp_path: Path, bindir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    repo.add_skill("needs-ffmpeg", description="Cuts video.")
    repo.write("needs-ffmpeg/SKILL.md", skill_md("needs-ffmpeg", "Cuts video.",
                                                 {"openclaw": {"requires": {"bins": ["jq", "ffmpeg"]}}}))
    repo.add_skill("plain", description="Nothing needed.")
    head = repo.commit("two skills")
    cfg = load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "state"),
                             "gateway_path": str(bindir), "gateway_config": str(tmp_path / "none.json")},
                      env={})
    out = build_syncer(cfg).sync()
    assert out.status == "deployed" and out.skills_live == 2  # a warning: it still deploys
    hit = [f for f in out.findings if f.rule == "usage.requires-bins"]
    assert [(f.path, f.line) for f in hit] == [("needs-ffmpeg/SKILL.md", 4)]
    assert "needs ffmpeg on the gateway's PATH" in hit[0].message
    rel = Releases(cfg.state_dir)
    manifest = rel.manifest(rel.current() or "")
    assert [f.rule for f in manifest.layout] == ["usage.requires-bins"]
    assert manifest.validation.warnings >= 1
    assert [f["rule"] for f in status_dict(cfg)["layout"]] == ["usage.requires-bins"]
    capsys.readouterr()
    assert main(["status", "--state-dir", str(cfg.state_dir)]) == EXIT_OK
    assert "usage     1 warning(s) on how agents get the skills, e.g. [usage.requires-bins] " \
        "needs-ffmpeg/SKILL.md" in capsys.readouterr().out
    rows = {r.folder: r for r in skill_rows(manifest, None)}
    assert rows["needs-ffmpeg"].status == "live"
    assert [f["rule"] for f in rows["needs-ffmpeg"].findings] == ["usage.requires-bins"]
    event = Deployed(commit=head, release=manifest.release, findings=tuple(
        {"rule": f.rule, "severity": str(f.severity), "path": f.path, "line": f.line, "message": f.message}
        for f in out.findings))
    alerts, book = decide(event, Book(), Settings())
    usage = [a for a in alerts if a.event == "usage"]
    assert len(usage) == 1 and "needs-ffmpeg/SKILL.md:4" in usage[0].body
    sent = book.with_sent(usage[0].keys)  # what the sender records once it went out
    assert not [a for a in decide(event, sent, Settings())[0] if a.event == "usage"]  # once per commit


def test_read_context_defaults_follow_the_gateway_process(tmp_path: Path, bindir: Path) -> None:
    state = tmp_path / "oc"
    (state / "plugin-skills" / "canvas").mkdir(parents=True)
    (state / "plugin-skills" / "canvas" / "SKILL.md").write_bytes(skill_md("canvas"))
    (state / "openclaw.json").write_text("{ // JSON5, as the gateway reads it\n skills: {limits: "
                                         "{maxSkillsPromptChars: 900,}},}\n")
    (state / "workspace" / "skills" / "w").mkdir(parents=True)
    (state / "workspace" / "skills" / "w" / "SKILL.md").write_bytes(skill_md("w"))
    env = {"OPENCLAW_STATE_DIR": str(state), "PATH": str(bindir), "HOME": str(tmp_path / "home")}
    ctx = read_context(load_config(env={}), env)
    assert ctx.config_path == str(state / "openclaw.json") and ctx.limits() == (900, None)
    assert ctx.host.path == str(bindir) and ctx.host.has_bin("jq")
    assert [s.name for s in ctx.lower] == ["canvas"] and not ctx.listed_others  # no bundled dir found
    assert [o.name for o in ctx.higher] == ["w"] and ctx.higher[0].tier == "workspace"
    assert ctx.location(str(state / "skills" / "x" / "SKILL.md")) == str(state / "skills" / "x" / "SKILL.md")
    home = GatewayContext(host=Host(), config_path=None, state_dir="/root/.openclaw", home="/root",
                          published_dir="/root/.openclaw/skills")
    assert home.location("/root/.openclaw/skills/x/SKILL.md") == "~/.openclaw/skills/x/SKILL.md"
    railway = GatewayContext(host=Host(), config_path=None, state_dir="/data/.openclaw", home="/data",
                             published_dir="/data/.openclaw/skills")
    assert railway.location("/data/.openclaw/skills/x/SKILL.md") == "/data/.openclaw/skills/x/SKILL.md"


def test_gateway_settings_from_the_environment() -> None:
    cfg = load_config(env={"SKILLSYNC_GATEWAY_ENV": "A, B", "SKILLSYNC_GATEWAY_PATH": "/x:/y",
                           "SKILLSYNC_GATEWAY_CONFIG": "~/oc.json", "SKILLSYNC_GATEWAY_PLATFORM": "darwin",
                           "SKILLSYNC_GATEWAY_BUNDLED_DIR": "/opt/openclaw/skills"})
    assert cfg.gateway_env == ("A", "B") and cfg.gateway_path == "/x:/y"
    assert cfg.gateway_config == Path("~/oc.json").expanduser() and cfg.gateway_platform == "darwin"
    assert cfg.gateway_bundled_dir == Path("/opt/openclaw/skills")
    ctx = read_context(cfg, {"HOME": "/nowhere"})
    assert ctx.host.env == {"A": "1", "B": "1"} and ctx.host.platform == "darwin"


def test_a_rename_is_caught_across_releases(repo: Any, tmp_path: Path) -> None:
    """Folder 'tools' was published as 'pdf'; renamed to 'pdf-kit', the allow-list loses it."""
    oc = tmp_path / "openclaw.json"
    oc.write_text(json.dumps({"agents": {"defaults": {"skills": ["pdf", "notes"]}}}, indent=1))
    repo.write("tools/SKILL.md", skill_md("pdf", "PDF tools."))
    repo.write("notes/SKILL.md", skill_md("notes", "Notes."))
    repo.commit("two skills")
    cfg = load_config(flags={"repo": str(repo.path), "state_dir": str(tmp_path / "state"),
                             "gateway_config": str(oc), "gateway_path": "", "gateway_env": ""}, env={})
    first = build_syncer(cfg).sync()
    assert first.status == "deployed" and not [f for f in first.findings if f.rule.startswith("usage.allow")]
    repo.write("tools/SKILL.md", skill_md("pdf-kit", "PDF tools."))
    repo.commit("rename the skill")
    second = build_syncer(cfg).sync()
    renamed = [f for f in second.findings if f.rule == "usage.allowlist-renamed"]
    assert [(f.path, f.line) for f in renamed] == [(str(oc), 5)]
    assert renamed[0].message.startswith(
        "agents.defaults.skills names 'pdf', but folder tools now declares name 'pdf-kit': agents without "
        "their own list lose it and keep 1 skill(s)")


def test_skills_past_the_count_cap_are_named_as_left_out(tmp_path: Path) -> None:
    ctx = context(tmp_path, {"skills": {"limits": {"maxSkillsInPrompt": 2}}})
    found = usage_findings([use("c-last"), use("a-first"), use("b-second")], ctx,
                           policy_of(load_config(env={})), "skills")
    left = [(f.path, f.line) for f in found if f.rule == "usage.prompt-omitted"]
    assert left == [("skills/c-last/SKILL.md", 2)]
    summary = next(f for f in found if f.rule == "usage.prompt-budget")
    assert "holds 2 of 3 eligible skills" in summary.message and "left out: 1 (c-last)" in summary.message
    assert "skills.limits.maxSkillsInPrompt to 3" in summary.message
