"""Differential: skillsyncd's usage predictions against the real OpenClaw 2026.9.6 gateway.

- eligibility: hypothesis generates ``requires``/``os``/``always`` combinations over a PATH
  the test builds (executables present, a file without the execute bit, names absent),
  variables set, blank and unset, config paths truthy and falsy; every prediction must
  equal the running gateway's ``skills.status`` (eligible and each missing list);
- the prompt budget: generated skill sets around ``skills.limits``, and the user's
  repository when its bundle is present; the predicted catalog must equal, character for
  character, the one the gateway's own ``buildSkillSnapshot`` builds for the agent's prompt
  (openclaw_catalog.mjs) against the same folders, config and environment: format, the cut
  of every description, the skills left out. ``/context json`` reports only the catalog's
  length and per-skill block sizes of that same text, and needs an agent turn with a model;
  the snapshot is the text itself;
- allow-lists and shadowing: a gateway config with two agents and a workspace tier.
Each test prints its case count and disagreements (always 0 when it passes).
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitserver import free_port
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openclaw_peer import Gateway, Install
from polling import wait_for

from skillsyncd.config import load_config
from skillsyncd.validation.gate import policy_of
from skillsyncd.validation.usage import budget
from skillsyncd.validation.usage.check import catalog_entries, usage_findings
from skillsyncd.validation.usage.context import GatewayContext, read_context, skills_in
from skillsyncd.validation.usage.eligibility import evaluate

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
CATALOG_JS = HERE / "openclaw_catalog.mjs"
BUNDLE = Path(os.environ.get(
    "SKILLSYNC_CORPORA", Path(__file__).resolve().parents[3] / "shared" / "corpora"
)) / "kurultai-skills.bundle"

PRESENT, NOT_EXECUTABLE, ABSENT = ("usage-tool-a", "usage-tool-b"), "usage-tool-x", "usage-tool-y"
BINS = [*PRESENT, NOT_EXECUTABLE, ABSENT]
ENV = {"USAGE_SET": "1", "USAGE_BLANK": "  "}
ENVS = ["USAGE_SET", "USAGE_BLANK", "USAGE_UNSET", "USAGE_FROM_CONFIG"]
FLAGS = {"on": True, "off": False, "one": 1, "zero": 0, "text": "x", "blank": "", "list": ["a"]}
CONFIGS = [*(f"skills.entries.flags.config.{k}" for k in FLAGS), "skills.entries.flags.config.missing",
           "browser.enabled", "skills.entries.flags.config.list.0"]
OSES = ["linux", "darwin", "win32"]


def make_bindir(root: Path) -> Path:
    d = root / "bin"
    d.mkdir(parents=True)
    for name in PRESENT:
        (d / name).write_text("#!/bin/sh\n")
        (d / name).chmod(0o755)
    (d / NOT_EXECUTABLE).write_text("no execute bit\n")
    return d


spec_strategy = st.fixed_dictionaries({
    "bins": st.lists(st.sampled_from(BINS), max_size=3, unique=True),
    "anyBins": st.lists(st.sampled_from(BINS), max_size=3, unique=True),
    "env": st.lists(st.sampled_from(ENVS), max_size=2, unique=True),
    "config": st.lists(st.sampled_from(CONFIGS), max_size=2, unique=True),
    "os": st.lists(st.sampled_from(OSES), max_size=2, unique=True),
    "always": st.sampled_from([None, True, False]),
    "key": st.sampled_from(["openclaw", "clawdbot"]),
    "style": st.sampled_from(["line", "json", "yaml"]),  # metadata: a JSON line, indented JSON, YAML
    "csv": st.booleans(),  # lists written as comma-separated strings
    "enabled": st.sampled_from([None, True, False]),  # skills.entries.<name>.enabled
    "entry_env": st.booleans(),  # USAGE_FROM_CONFIG in skills.entries.<name>.env
})


def skill_text(name: str, spec: dict[str, Any]) -> bytes:
    def lst(v: list[str]) -> Any:
        return ", ".join(v) if spec["csv"] else v

    block: dict[str, Any] = {"requires": {k: lst(spec[k]) for k in ("bins", "anyBins", "env", "config")}}
    if spec["os"]:
        block["os"] = lst(spec["os"])
    if spec["always"] is not None:
        block["always"] = spec["always"]
    meta = {spec["key"]: block}
    if spec["style"] == "line":
        text = f"metadata: {json.dumps(meta)}\n"
    else:
        dumped = json.dumps(meta, indent=2) if spec["style"] == "json" else \
            yaml.safe_dump(meta, default_flow_style=False, sort_keys=False)
        text = "metadata:\n" + "\n".join("  " + line for line in dumped.splitlines()) + "\n"
    return f"---\nname: {name}\ndescription: Generated case {name}.\n{text}---\nBody.\n".encode()


def entries_for(specs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    entries: dict[str, Any] = {"flags": {"config": FLAGS}}
    for name, spec in zip(names, specs, strict=True):
        entry: dict[str, Any] = {}
        if spec["enabled"] is not None:
            entry["enabled"] = spec["enabled"]
        if spec["entry_env"]:
            entry["env"] = {"USAGE_FROM_CONFIG": "from-config"}
        if entry:
            entries[name] = entry
    return entries


class Catalogs:
    """openclaw_catalog.mjs: the gateway's own buildSkillSnapshot, one node process."""

    def __init__(self, inst: Install, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([str(inst.node), str(CATALOG_JS), str(inst.package)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)
        assert self.proc.stdout is not None
        first = json.loads(self.proc.stdout.readline())
        assert first.get("ready"), first

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self.proc.stdout.readline())
        assert reply.get("ok"), reply.get("error")
        return reply

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


@dataclasses.dataclass
class Peer:
    gateway: Gateway
    catalogs: Catalogs
    state: Path

    def context(self, **flags: Any) -> GatewayContext:
        cfg = load_config(flags={"gateway_config": str(self.state / "openclaw.json"),
                                 "gateway_bundled_dir": str(self.gateway.inst.package / "skills"),
                                 **flags}, env={})
        return read_context(cfg, self.gateway.env)


@pytest.fixture
def peer(openclaw: Install, tmp_path: Path) -> Iterator[Callable[..., Peer]]:
    """Start a gateway with published skills, its config and env; plus the catalog client."""
    started: list[Peer] = []

    def start(skills: dict[str, bytes], settings_: dict[str, Any], env: dict[str, str],
              workspace: dict[str, bytes] | None = None) -> Peer:
        work = tmp_path / f"gw{len(started)}"
        state = work / "openclaw-state"
        for folder, data in skills.items():
            (state / "skills" / folder).mkdir(parents=True)
            (state / "skills" / folder / "SKILL.md").write_bytes(data)
        for folder, data in (workspace or {}).items():
            (state / "workspace" / "skills" / folder).mkdir(parents=True)
            (state / "workspace" / "skills" / folder / "SKILL.md").write_bytes(data)
        own = {k: v(state) if callable(v) else v for k, v in settings_.items()}
        gw = Gateway(openclaw, work, free_port(), [], settings=own, env=env)
        try:
            gw.wait_ready()
        except BaseException:
            gw.stop()
            raise
        p = Peer(gw, Catalogs(openclaw, gw.env), state)
        started.append(p)
        # The gateway links its plugin skills into <state>/plugin-skills after "ready": wait
        # until skills.status lists them, so both sides see the same folders.
        wait_for(lambda: _plugin_skills_listed(gw, state), timeout=60, what="the gateway's plugin skills")
        return p

    yield start
    for p in started:
        p.catalogs.stop()
        p.gateway.stop()


def _plugin_skills_listed(gw: Gateway, state: Path) -> bool:
    folder = state / "plugin-skills"
    on_disk = {d.name for d in folder.iterdir()} if folder.is_dir() else set()
    listed = {Path(s["baseDir"]).name for s in gw.call("skills.status")["skills"]
              if str(s.get("baseDir", "")).startswith(str(folder))}
    return bool(on_disk) and on_disk == listed


def published_status(p: Peer, agent: str | None = None) -> dict[str, dict[str, Any]]:
    report = p.gateway.call("skills.status", {"agentId": agent} if agent else {})
    prefix = str(p.state / "skills") + "/"
    return {s["name"]: s for s in report["skills"] if str(s.get("filePath", "")).startswith(prefix)}


TALLY: dict[str, list[int]] = {}
FORMATS: dict[str, int] = {}


def tally(test: str, cases: int, disagreements: int) -> None:
    row = TALLY.setdefault(test, [0, 0])
    row[0] += cases
    row[1] += disagreements
    print(f"\n{test}: {row[0]} cases, {row[1]} disagreements")


@settings(max_examples=3, deadline=None, phases=[Phase.generate], database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(specs=st.lists(spec_strategy, min_size=80, max_size=80))
def test_eligibility_equals_skills_status(peer: Callable[..., Peer], tmp_path_factory: pytest.TempPathFactory,
                                          specs: list[dict[str, Any]]) -> None:
    bindir = make_bindir(tmp_path_factory.mktemp("path"))
    names = [f"case-{i:03d}" for i in range(len(specs))]
    p = peer({n: skill_text(n, s) for n, s in zip(names, specs, strict=True)},
             {"skills": {"entries": entries_for(specs, names)}, "browser": {"enabled": False}},
             {**ENV, "PATH": str(bindir)})
    ctx = p.context()
    status = published_status(p)
    mine = {s.name: s for s in skills_in(str(p.state / "skills"), "openclaw-managed")}
    assert set(mine) == set(names)
    assert set(status) == set(names), (sorted(set(names) - set(status)), sorted(set(status) - set(names)),
                                       p.gateway.log_tail())
    wrong: list[Any] = []
    for name in names:
        v, s = evaluate(mine[name], ctx.host), status[name]
        predicted: dict[str, Any] = {"eligible": v.eligible}
        actual: dict[str, Any] = {"eligible": s["eligible"]}
        if not v.disabled:
            predicted |= {"bins": list(v.bins), "anyBins": list(v.any_bins), "env": list(v.env),
                          "config": list(v.config), "os": list(v.os)}
            actual |= {k: s["missing"][k] for k in ("bins", "anyBins", "env", "config", "os")}
        if predicted != actual:
            wrong.append((name, specs[names.index(name)], predicted, actual))
    snapshot = p.catalogs.ask({"workspaceDir": str(p.state / "workspace"), "config": ctx.config,
                               "agentId": "main"})
    in_prompt = {n for n in snapshot["eligible"] if n in mine}
    if in_prompt != {n for n in names if evaluate(mine[n], ctx.host).eligible}:
        wrong.append(("the prompt's eligible set", None, None, sorted(in_prompt)))
    tally("eligibility", len(names), len(wrong))
    p.catalogs.stop()  # one gateway per example, not three at once (teardown stops it again: a no-op)
    p.gateway.stop()
    assert wrong == []


# --- the prompt budget -------------------------------------------------------------------

_SKILL_BLOCK = re.compile(r"  <skill>\n    <name>(.*?)</name>\n(?:    <description>(.*?)</description>\n)?"
                          r"    <location>(.*?)</location>\n  </skill>", re.S)


def parse_catalog(prompt: str) -> dict[str, Any]:
    """The gateway's catalog text read back: format, and per skill its shown description."""
    blocks = [(html.unescape(n), None if d is None else html.unescape(d)) for n, d, _ in
              _SKILL_BLOCK.findall(prompt)]
    fmt = "full" if budget._READ_FULL in prompt else "compact"
    return {"format": fmt, "names": [n for n, _ in blocks], "descriptions": dict(blocks)}


def compare_catalog(p: Peer, ctx: GatewayContext, published_dir: Path) -> tuple[budget.Catalog, list[Any]]:
    """Predicted catalog vs the gateway's own for the default agent: [] when they agree."""
    ctx = dataclasses.replace(ctx, published_dir=str(published_dir))
    published = skills_in(str(published_dir), "openclaw-managed")
    entries, _ = catalog_entries(published, ctx)
    max_chars, max_skills = ctx.limits()
    predicted = budget.prepare(entries, max_chars, max_skills)
    theirs = p.catalogs.ask({"workspaceDir": str(p.state / "workspace"), "config": ctx.config,
                             "agentId": "main", "managedSkillsDir": str(published_dir)})
    got = parse_catalog(theirs["prompt"])
    wrong: list[Any] = []
    if predicted.prompt != theirs["prompt"]:
        mine = parse_catalog(predicted.prompt)
        for key in ("format", "names"):
            if mine[key] != got[key]:
                wrong.append((key, mine[key], got[key]))
        by = {e.name: e for e in entries}
        for name, shown in got["descriptions"].items():
            kept = budget.js_len(shown or "")
            if name in by and kept != budget.kept_chars(by[name], predicted):
                wrong.append(("kept", name, budget.kept_chars(by[name], predicted), kept))
        wrong.append(("text", budget.js_len(predicted.prompt), budget.js_len(theirs["prompt"])))
    if list(predicted.kept) != theirs["resolved"]:
        wrong.append(("resolved", list(predicted.kept), theirs["resolved"]))
    return predicted, wrong


_WORD = st.text(st.sampled_from("abcdefghij klmnop<>&\"' \t\nÄé\U0001f600"), max_size=12)
budget_case = st.fixed_dictionaries({
    "skills": st.lists(st.tuples(
        st.from_regex(r"[a-z][a-z0-9_-]{0,14}", fullmatch=True),
        st.lists(_WORD, min_size=1, max_size=40).map(lambda ws: "x" + " ".join(ws))),
        min_size=1, max_size=90, unique_by=lambda t: t[0]),
    "chars": st.one_of(st.none(), st.integers(500, 40_000), st.floats(0.2, 1.05)),  # float: x full size
    "count": st.one_of(st.none(), st.none(), st.none(), st.integers(0, 120)),
    "depth": st.integers(0, 3),  # longer locations: the path's share of the budget
})


@pytest.fixture
def budget_peer(peer: Callable[..., Peer], tmp_path: Path) -> Peer:
    bindir = make_bindir(tmp_path / "budget-path")
    return peer({}, {}, {"PATH": f"{bindir}{os.pathsep}/usr/bin{os.pathsep}/bin"})


def test_prompt_budget_equals_the_gateways_catalog(budget_peer: Peer, tmp_path: Path) -> None:
    counter = iter(range(10**6))

    @settings(max_examples=150, deadline=None, phases=[Phase.generate], database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=budget_case)
    def one(case: dict[str, Any]) -> None:
        folder = tmp_path / f"case{next(counter)}" / ("deeper-folder/" * case["depth"]) / "skills"
        for name, description in case["skills"]:
            (folder / name).mkdir(parents=True)
            (folder / name / "SKILL.md").write_text(
                f"---\nname: {name}\ndescription: {json.dumps(description, ensure_ascii=False)}\n---\n",
                encoding="utf-8")
        cfg_file = folder.parent / "openclaw.json"
        bundled = str(budget_peer.gateway.inst.package / "skills")
        flags = {"gateway_config": str(cfg_file), "gateway_bundled_dir": bundled}
        chars = case["chars"]
        if isinstance(chars, float):  # around the limit: a share of what the full format needs
            cfg_file.write_text("{}")
            whole = read_context(load_config(flags=flags, env={}), budget_peer.gateway.env)
            whole = dataclasses.replace(whole, published_dir=str(folder))
            chars = int(chars * budget.prepare(catalog_entries(
                skills_in(str(folder), "openclaw-managed"), whole)[0]).full_chars)
        limits = {k: v for k, v in (("maxSkillsPromptChars", chars),
                                    ("maxSkillsInPrompt", case["count"])) if v is not None}
        cfg_file.write_text(json.dumps({"skills": {"limits": limits}}))
        ctx = read_context(load_config(flags=flags, env={}), budget_peer.gateway.env)
        predicted, wrong = compare_catalog(budget_peer, ctx, folder)
        kind = predicted.format + (", cut" if predicted.description_chars else "") + (
            ", skills left out" if predicted.omitted else "")
        FORMATS[kind] = FORMATS.get(kind, 0) + 1
        print(f"catalogs by format: {FORMATS}")
        tally("prompt budget (generated)", 1, len(wrong))
        assert wrong == [], (case, wrong)

    one()


@pytest.fixture(scope="module")
def users_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BUNDLE.is_file():
        pytest.skip(f"the user's repository bundle is not at {BUNDLE} (set SKILLSYNC_CORPORA)")
    dest = tmp_path_factory.mktemp("corpus") / "kurultai-skills"
    subprocess.run(["git", "clone", "--quiet", str(BUNDLE), str(dest)], check=True)
    return dest


def test_users_repository_budget_equals_the_gateways(peer: Callable[..., Peer], users_repository: Path,
                                                     tmp_path: Path) -> None:
    skills = {d.name: (d / "SKILL.md").read_bytes() for d in sorted(users_repository.iterdir())
              if d.is_dir() and not d.name.startswith(".") and (d / "SKILL.md").is_file()
              and not (d / ".git").exists()}
    p = peer(skills, {}, {})
    for folder in (p.state / "skills").iterdir():  # assets the skills reference: not needed here
        assert (folder / "SKILL.md").is_file()
    ctx = p.context()
    predicted, wrong = compare_catalog(p, ctx, p.state / "skills")
    status = p.gateway.call("skills.status")
    visible = sorted(s["name"] for s in status["skills"] if s.get("modelVisible"))
    entries, mine = catalog_entries(skills_in(str(p.state / "skills"), "openclaw-managed"), ctx)
    if sorted(e.name for e in entries) != visible:
        wrong.append(("skills.status modelVisible", sorted(e.name for e in entries), visible))
    print(f"\nuser's repository: {len(mine)} published + {len(entries) - len(mine)} other skills in the "
          f"catalog, format {predicted.format}, descriptions cut to {predicted.description_chars}, "
          f"{predicted.prompt_chars:,} characters (full format {predicted.full_chars:,}), "
          f"{len(predicted.omitted)} left out")
    moved = [dataclasses.replace(e, location=e.location.replace(str(p.state), "/data/.openclaw"))
             for e in entries]
    there, alone = budget.prepare(moved), budget.prepare([e for e in moved if e.name in mine])
    print(f"at the container's /data/.openclaw paths (predicted only): format {there.format}, descriptions "
          f"cut to {there.description_chars}, {there.prompt_chars:,} characters (full {there.full_chars:,}); "
          f"the repository's skills alone need {alone.full_chars:,} in the full format")
    tally("prompt budget (user's repository)", 1, len(wrong))
    assert wrong == []
    found = usage_findings(skills_in(str(p.state / "skills"), "openclaw-managed"), ctx,
                           policy_of(load_config(env={})), "")
    summary = [f for f in found if f.rule == "usage.prompt-budget"]
    assert len(summary) == (0 if predicted.format == "full" and not predicted.omitted else 1)


# --- allow-lists and shadowing ---------------------------------------------------------------


def md(name: str, description: str = "A skill.") -> bytes:
    return f"---\nname: {name}\ndescription: {description}\n---\nBody.\n".encode()


def test_allow_lists_and_shadowing_equal_the_gateways(peer: Callable[..., Peer]) -> None:
    published = {"pdf-tools": md("pdf"), "notes": md("notes"), "deploy": md("deploy"),
                 "search": md("search")}
    workspace = {"deploy": md("deploy", "The workspace's own deploy.")}
    def agents(state: Path) -> dict[str, Any]:  # main's workspace holds a skill; ops has its own
        return {"defaults": {"skills": ["notes", "pdf-tools", "deploy"]},
                "entries": {"main": {"workspace": str(state / "workspace")},
                            "ops": {"skills": ["pdf-tools", "search", "gone-skill"]}}}

    p = peer(published, {"agents": agents}, {}, workspace=workspace)
    ctx = p.context()
    found = usage_findings(skills_in(str(p.state / "skills"), "openclaw-managed"), ctx,
                           policy_of(load_config(env={})), "", {"old-folder": "gone-skill"})
    rules = sorted((f.rule, f.message.split(":")[0]) for f in found
                   if f.rule in {"usage.allowlist-renamed", "usage.allowlist-missing", "usage.shadowed"})
    assert rules == [
        ("usage.allowlist-missing", "agents.entries.ops.skills names 'gone-skill', which this release no "
                                    "longer has"),
        ("usage.allowlist-renamed", "agents.defaults.skills names 'pdf-tools', but folder pdf-tools now "
                                    "declares name 'pdf'"),
        ("usage.allowlist-renamed", "agents.entries.ops.skills names 'pdf-tools', but folder pdf-tools now "
                                    "declares name 'pdf'"),
        ("usage.shadowed", str(p.state / "workspace" / "skills" / "deploy" / "SKILL.md")
         + " (openclaw-workspace) is also named 'deploy' and wins"),
    ]
    wrong: list[Any] = []
    cases = 0
    report = p.gateway.call("skills.status")
    source = {s["name"]: s["source"] for s in report["skills"]}
    for name in ("pdf", "notes", "deploy", "search"):
        cases += 1
        want = "openclaw-workspace" if name == "deploy" else "openclaw-managed"
        if source.get(name) != want:
            wrong.append(("winner", name, want, source.get(name), report["workspaceDir"], report["agentId"]))
    for agent, allowed in (("main", {"notes", "deploy"}), ("ops", {"search"})):
        status = p.gateway.call("skills.status", {"agentId": agent})
        theirs = {s["name"] for s in status["skills"] if s["eligible"] and not s["blockedByAgentFilter"]}
        mine = next(f for f in found if f.rule == "usage.allowlist-renamed"
                    and (agent == "ops") == ("agents.entries.ops" in f.message))
        cases += 1
        if theirs != allowed or f"keep {len(allowed)} skill(s)" not in mine.message:
            wrong.append(("allow-list", agent, allowed, theirs, mine.message))
    tally("allow-lists and shadowing", cases, len(wrong))
    assert wrong == []
    shutil.rmtree(p.state / "workspace" / "skills")
