"""One passing and one failing case per rule, plus the severity policy and the
guarantee that entry rules run before, and instead of, reading oversize blobs."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from inmemory import BlobStore, skill_from_files

from skillsyncd.config import Config
from skillsyncd.errors import ConfigError
from skillsyncd.model import MODE_EXEC, MODE_GITLINK, MODE_SYMLINK, Entry, Finding, Severity, Skill
from skillsyncd.validation.gate import (
    check_entries,
    check_release,
    check_skill,
    skill_metadata,
    validate_skill,
)
from skillsyncd.validation.rules import RULES, has_errors

CFG = Config()
GOOD = "---\nname: pdf\ndescription: Read PDF files.\nmetadata:\n  version: \"1.0\"\n---\n# PDF\n"


def run(files: dict[str, Any], cfg: Config = CFG, name: str = "pdf", prefix: str = "") -> list[Finding]:
    skill, store = skill_from_files(name, files)
    return list(validate_skill(skill, store, cfg, prefix=prefix))


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


def md(**fields: str) -> str:
    body = "".join(f"{k}: {v}\n" for k, v in fields.items())
    return f"---\n{body}---\n# Body\n"


def test_good_skill_is_clean() -> None:
    assert run({"SKILL.md": GOOD, "scripts/run.py": (MODE_EXEC, "print('hi')\n")}) == []


def test_every_rule_has_a_dotted_id_and_default() -> None:
    for rule_id, rule in RULES.items():
        assert "." in rule_id and rule.id == rule_id and rule.summary
        assert rule.default in (Severity.ERROR, Severity.WARNING)


# --- SKILL.md and frontmatter -------------------------------------------------------


def test_skill_md_missing_with_rename_hint() -> None:
    found = run({"skill.md": GOOD})
    f = next(f for f in found if f.rule == "skill-md.missing")
    assert f.severity is Severity.ERROR and "rename" in f.message


@pytest.mark.parametrize(
    ("content", "rule", "severity"),
    [
        (b"# no frontmatter\n", "frontmatter.missing", Severity.ERROR),
        (b"---\nname: pdf\n", "frontmatter.unclosed", Severity.ERROR),
        (b"---\nname: a\nname: b\ndescription: d\n---\n", "yaml.duplicate-key", Severity.ERROR),
        (b"---\n- a\n---\n", "yaml.not-mapping", Severity.ERROR),
        (b"---\na: &a [*a]\ndescription: d\n---\n", "yaml.limits", Severity.ERROR),
        (b"---\nname: pdf\ndescription: d\n---\nbody \x00\n", "skill-md.nul", Severity.WARNING),
        (b"---\nname: pdf\ndescription: caf\xe9\n---\n", "skill-md.encoding", Severity.WARNING),
        (b"---\nname: pdf\ndescription: Use it: now\n---\n", "yaml.recovered", Severity.WARNING),
    ],
)
def test_frontmatter_rules(content: bytes, rule: str, severity: Severity) -> None:
    """Errors where the gateway cannot load the skill (or it is unsafe), warnings where it can."""
    found = [f for f in run({"SKILL.md": content}) if f.rule != "field.version-missing"]
    assert [f.rule for f in found] == [rule]
    assert found[0].severity is severity
    assert found[0].path == "SKILL.md" and found[0].line is not None


def test_the_gateway_decides_what_loads() -> None:
    """Four skills OpenClaw loads: no name, an unquoted ': ', 150 KB, a list-valued field.
    Each deploys with warnings only, and the metadata is what the gateway shows."""
    big = b"---\nname: big\ndescription: big one\n---\n" + (b"x" * 99 + b"\n") * 1100
    cases = {
        "review": (b"---\ndescription: Run critical review\n---\nbody\n", "field.name-missing"),
        "d": (b"---\nname: d\ndescription: Handles the workflow: checking branch status\n---\n",
              "yaml.recovered"),
        "big": (big, None),
        "compat": (b"---\nname: compat\ndescription: c\ncompatibility: [claude, openclaw]\n---\n",
                   "field.type"),
    }
    for name, (content, rule) in cases.items():
        skill, store = skill_from_files(name, {"SKILL.md": content})
        result = check_skill(skill, store, Config())
        assert not has_errors(result.findings), (name, result.findings)
        if rule:
            assert rule in rules(list(result.findings))
        assert result.metadata["effective_name"] == name
    skill, store = skill_from_files("d", {"SKILL.md": cases["d"][0]})
    assert check_skill(skill, store, Config()).metadata["description"] == \
        "Handles the workflow: checking branch status"


def test_over_the_gateway_cap_is_held_back_whatever_the_setting() -> None:
    big = b"---\nname: big\ndescription: big one\n---\n" + b"x" * 256_000
    skill, store = skill_from_files("big", {"SKILL.md": big})
    found = check_skill(skill, store, Config(max_skill_md_bytes=10**6)).findings
    assert "size.skill-md" in rules(list(found)) and has_errors(found)


def test_finding_path_has_the_repo_prefix() -> None:
    found = run({"SKILL.md": "# nothing\n"}, prefix="skills/pdf")
    assert found[0].location() == "skills/pdf/SKILL.md:1"


# --- fields --------------------------------------------------------------------------


def test_missing_description_is_an_error_and_missing_name_a_warning() -> None:
    found = run({"SKILL.md": md(license="MIT")})
    req = [f for f in found if f.rule == "field.required"]
    assert len(req) == 1 and "description" in req[0].message and req[0].severity is Severity.ERROR
    named = next(f for f in found if f.rule == "field.name-missing")
    assert named.severity is Severity.WARNING and "'pdf'" in named.message and named.line == 2


def test_required_name_is_an_operator_choice() -> None:
    found = run({"SKILL.md": md(description="d")}, Config(required_fields=("name", "description")))
    assert [(f.rule, f.severity) for f in found if f.rule == "field.required"] == [
        ("field.required", Severity.ERROR)]


def test_empty_description_is_an_error() -> None:
    found = run({"SKILL.md": md(name="pdf", description='""')})
    assert "field.required" in rules(found) and has_errors(found)


def test_version_missing_is_a_warning_by_default() -> None:
    found = run({"SKILL.md": md(name="pdf", description="d")})
    assert [(f.rule, f.severity) for f in found] == [("field.version-missing", Severity.WARNING)]


def test_version_required_reproduces_the_seed() -> None:
    cfg = Config(required_fields=("name", "version", "description"))
    found = run({"SKILL.md": md(name="pdf", description="d")}, cfg)
    assert [(f.rule, f.severity) for f in found] == [("field.required", Severity.ERROR)]
    assert run({"SKILL.md": GOOD}, cfg) == []  # metadata.version satisfies it
    assert run({"SKILL.md": md(name="pdf", description="d", version='"2.0"')}, cfg) == []


def test_other_required_fields_are_configurable() -> None:
    cfg = Config(required_fields=("description", "license"))
    assert "field.required" in rules(run({"SKILL.md": GOOD}, cfg))
    assert run({"SKILL.md": GOOD.replace("name: pdf", "name: pdf\nlicense: MIT")}, cfg) == []


def test_implicit_version_float_says_how_to_quote() -> None:
    found = run({"SKILL.md": md(name="pdf", description="d", version="1.10")})
    f = next(f for f in found if f.rule == "yaml.implicit-type")
    assert f.severity is Severity.WARNING and 'version: "1.10"' in f.message and f.line == 4
    assert not has_errors(found)


def test_implicit_bool_name_and_date_version() -> None:
    found = run({"SKILL.md": md(name="yes", description="d", version="2024-05-01")}, name="yes")
    assert [f.rule for f in found].count("yaml.implicit-type") == 2


def test_quoted_version_is_fine() -> None:
    assert run({"SKILL.md": md(name="pdf", description="d", version='"1.10"')}) == []


def test_field_type_list_description_warns_as_the_gateway_loads_it() -> None:
    found = run({"SKILL.md": md(name="pdf", description="[a, b]")})
    assert "field.type" in rules(found) and not has_errors(found)


def test_version_conflict() -> None:
    text = '---\nname: pdf\ndescription: d\nversion: "1.0"\nmetadata:\n  version: "2.0"\n---\n'
    assert rules(run({"SKILL.md": text})) == {"field.version-conflict"}


@pytest.mark.parametrize("name", ["pdf", "pdf-2", "a", "x" * 64])
def test_name_format_ok(name: str) -> None:
    found = run({"SKILL.md": md(name=name, description="d", version='"1"')}, name=name)
    assert found == []


@pytest.mark.parametrize("name", ["PDF Tools", "pdf--x", "-pdf", "pdf_tools", "x" * 65, "pdf-"])
def test_name_format_warns(name: str) -> None:
    found = run({"SKILL.md": md(name=f'"{name}"', description="d", version='"1"')}, name=name)
    f = next(f for f in found if f.rule == "field.name-format")
    assert f.severity is Severity.WARNING and f.line == 2


def test_name_must_match_folder_warning_then_strict_error() -> None:
    found = run({"SKILL.md": GOOD}, name="pdf-tools")
    assert [(f.rule, f.severity) for f in found] == [("field.name-folder", Severity.WARNING)]
    strict = run({"SKILL.md": GOOD}, Config(strict=True), name="pdf-tools")
    assert [(f.rule, f.severity) for f in strict] == [("field.name-folder", Severity.ERROR)]


def test_description_length() -> None:
    assert run({"SKILL.md": md(name="pdf", description="d" * 1024, version='"1"')}) == []
    found = run({"SKILL.md": md(name="pdf", description="d" * 1025, version='"1"')})
    assert rules(found) == {"field.description-length"}


def test_unknown_fields_are_allowed() -> None:
    text = GOOD.replace("name: pdf", "name: pdf\nlicense: MIT\nallowed-tools: Read\nx-custom: 1")
    assert run({"SKILL.md": text}) == []


# --- severity policy --------------------------------------------------------------------


def test_override_off_warning_error() -> None:
    base = {"SKILL.md": md(name="pdf", description="d")}
    assert run(base, Config(severity={"field.version-missing": "off"})) == []
    found = run(base, Config(severity={"field.version-missing": "error"}))
    assert has_errors(found)
    off_group = run({"SKILL.md": "# none\n"}, Config(severity={"frontmatter.*": "warning"}))
    assert not has_errors(off_group) and off_group


def test_explicit_override_beats_strict() -> None:
    cfg = Config(strict=True, severity={"field.version-missing": "warning"})
    found = run({"SKILL.md": md(name="pdf", description="d")}, cfg)
    assert [f.severity for f in found] == [Severity.WARNING]


def test_unknown_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown validation rule"):
        run({"SKILL.md": GOOD}, Config(severity={"feild.required": "off"}))
    with pytest.raises(ConfigError, match="error, warning or off"):
        run({"SKILL.md": GOOD}, Config(severity={"field.required": "fatal"}))


# --- paths and modes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("../escape.md", "path.dotdot"),
        ("a/../../b", "path.dotdot"),
        ("/etc/passwd", "path.absolute"),
        (".git/config", "path.dot-git"),
        (".GIT/hooks/post-checkout", "path.dot-git"),
        ("sub/.git /config", "path.dot-git"),
        ("sub/.git./x", "path.dot-git"),
        ("git~1/config", "path.dot-git"),
        (".g\u200cit/config", "path.dot-git"),
        ("scripts\\run.py", "path.backslash"),
        ("notes\nSKILL.md", "path.control-char"),
        ("a\x1b[31m.md", "path.control-char"),
        ("a//b.md", "path.empty-component"),
        ("./b.md", "path.empty-component"),
        ("bad\udcff.md", "path.encoding"),
    ],
)
def test_bad_paths(path: str, rule: str) -> None:
    skill, _ = skill_from_files("pdf", {"SKILL.md": GOOD, path: "x"})
    found = check_entries(skill, CFG)
    assert rule in rules(list(found)) and has_errors(found)
    assert all("\n" not in f.path and "\x1b" not in f.path for f in found)


@pytest.mark.parametrize("path", [".gitignore", ".github/workflows/ci.yml", "git/notes.md", "a.git", "..foo"])
def test_git_look_alikes_are_fine(path: str) -> None:
    skill, _ = skill_from_files("pdf", {"SKILL.md": GOOD, path: "x"})
    assert check_entries(skill, CFG) == ()


def test_symlink_gitlink_and_odd_modes_are_never_read() -> None:
    skill, store = skill_from_files("pdf", {
        "SKILL.md": GOOD,
        "link": (MODE_SYMLINK, "/etc/passwd"),
        "vendor/lib": (MODE_GITLINK, "not a blob"),
        "odd": (0o100664, "x"),
    })
    found = validate_skill(skill, store, CFG)
    assert rules(list(found)) == {"path.symlink", "path.gitlink", "path.mode"}
    read_paths = {e.path for e in skill.entries if e.sha in store.reads}
    assert read_paths == {"SKILL.md"}


def test_case_collisions() -> None:
    skill, _ = skill_from_files("pdf", {"SKILL.md": GOOD, "README.md": "a", "readme.md": "b"})
    assert "path.case-collision" in rules(list(check_entries(skill, CFG)))
    skill, _ = skill_from_files("pdf", {"SKILL.md": GOOD, "docs": "file", "Docs/a.md": "dir"})
    assert "path.case-collision" in rules(list(check_entries(skill, CFG)))
    nfd, nfc = "cafe\u0301.md", "caf\u00e9.md"
    skill, _ = skill_from_files("pdf", {"SKILL.md": GOOD, nfd: "a", nfc: "b"})
    assert "path.case-collision" in rules(list(check_entries(skill, CFG)))


def test_same_folder_in_two_cases_merges_harmlessly() -> None:
    skill, _ = skill_from_files("pdf", {"SKILL.md": GOOD, "Docs/a.md": "a", "docs/b.md": "b"})
    assert check_entries(skill, CFG) == ()


def test_pycache_is_a_single_warning() -> None:
    skill, _ = skill_from_files("pdf", {
        "SKILL.md": GOOD, "scripts/__pycache__/run.cpython-311.pyc": b"\x00bin", "old.pyc": b"\x00"})
    found = check_entries(skill, CFG)
    assert [(f.rule, f.severity) for f in found] == [("path.pycache", Severity.WARNING)]
    assert "2 compiled" in found[0].message


# --- sizes ------------------------------------------------------------------------------


def _sized(path: str, size: int, mode: int = 0o100644) -> Entry:
    return Entry(path, mode, f"sha-{path}", size)


class Forbidden(BlobStore):
    """A reader that must not be asked for anything but SKILL.md."""

    def __call__(self, sha: str) -> bytes:
        if sha != "sha-SKILL.md":
            raise AssertionError(f"read {sha}")
        return GOOD.encode()


def test_oversize_files_are_refused_from_entry_sizes_without_reading() -> None:
    cfg = Config(max_file_bytes=1000, max_skill_md_bytes=500)
    skill = Skill("pdf", "t", (_sized("SKILL.md", 100), _sized("assets/huge.bin", 10**12)))
    found = validate_skill(skill, Forbidden(), cfg)
    assert rules(list(found)) == {"size.file", "size.skill"}
    assert any("1,000,000,000,000" in f.message for f in found)


def test_oversize_skill_md_is_not_read() -> None:
    cfg = Config(max_skill_md_bytes=50)
    skill = Skill("pdf", "t", (_sized("SKILL.md", 51),))
    store = BlobStore()
    found = validate_skill(skill, store, cfg)
    assert rules(list(found)) == {"size.skill-md"} and store.reads == []
    assert validate_skill(Skill("pdf", "t", (_sized("SKILL.md", 50),)), Forbidden(), cfg) == ()


def test_skill_total_and_file_count() -> None:
    cfg = Config(max_skill_bytes=1000, max_skill_files=3)
    ok = Skill("pdf", "t", (_sized("SKILL.md", 100), _sized("a", 400), _sized("b", 500)))
    assert check_entries(ok, cfg) == ()
    big = Skill("pdf", "t", (_sized("SKILL.md", 100), _sized("a", 400), _sized("b", 501)))
    assert rules(list(check_entries(big, cfg))) == {"size.skill"}
    many = Skill("pdf", "t", tuple(_sized(n, 1) for n in ("SKILL.md", "a", "b", "c")))
    assert rules(list(check_entries(many, cfg))) == {"size.files"}
    assert [f.path for f in check_entries(many, cfg)] == ["pdf"]
    assert [f.path for f in check_entries(many, cfg, prefix="skills/pdf")] == ["skills/pdf"]


def test_over_budget_skill_reads_only_skill_md() -> None:
    cfg = Config(max_skill_files=2)
    skill = Skill("pdf", "t", tuple(_sized(n, 10) for n in ("SKILL.md", "a", "b")))
    found = validate_skill(skill, Forbidden(), cfg)
    assert rules(list(found)) == {"size.files"}


def test_unknown_sizes_are_checked_after_reading() -> None:
    cfg = Config(max_file_bytes=10)
    skill, store = skill_from_files("pdf", {"SKILL.md": "x" * 5, "big.txt": "y" * 11}, sizes=False)
    cfg = dataclasses.replace(cfg, max_skill_md_bytes=4)
    found = validate_skill(skill, store, cfg)
    assert rules(list(found)) == {"size.skill-md", "size.file"}


# --- release ------------------------------------------------------------------------------


def test_duplicate_declared_names() -> None:
    a = Skill("pdf", "1", (_sized("SKILL.md", 10),))
    b = Skill("pdf-v2", "2", (_sized("SKILL.md", 10),))
    c = Skill("other", "3", (_sized("SKILL.md", 10),))
    cfg = Config(skills_path="skills")
    found = check_release([a, b, c], cfg, names={"pdf": "pdf", "pdf-v2": "pdf", "other": None})
    assert [(f.rule, f.path) for f in found] == [
        ("release.duplicate-name", "skills/pdf/SKILL.md"),
        ("release.duplicate-name", "skills/pdf-v2/SKILL.md"),
    ]
    assert "pdf-v2" in found[0].message and found[0].severity is Severity.WARNING
    assert check_release([a, b, c], cfg, names={"pdf": "pdf", "pdf-v2": "pdf-v2"}) == ()
    assert check_release([a, b, c], cfg) == ()
    # a folder without a declared name counts under its folder name
    assert len(check_release([a, b], cfg, names={"pdf": None, "pdf-v2": "pdf"})) == 2


def test_release_size_cap() -> None:
    skills = [Skill(n, n, (_sized("SKILL.md", 600),)) for n in ("a", "b")]
    assert check_release(skills, Config(max_release_bytes=1200)) == ()
    found = check_release(skills, Config(max_release_bytes=1199))
    assert rules(list(found)) == {"size.release"} and has_errors(found)


# --- metadata ---------------------------------------------------------------------------------


def test_skill_metadata_reads_metadata_version_and_never_raises() -> None:
    skill, store = skill_from_files("pdf", {"SKILL.md": GOOD})
    assert skill_metadata(skill, store) == {"name": "pdf", "effective_name": "pdf", "version": "1.0",
                                           "description": "Read PDF files."}
    skill, store = skill_from_files("pdf", {"SKILL.md": md(name="pdf", description="d", version="1.10")})
    assert skill_metadata(skill, store)["version"] == "1.10"
    skill, store = skill_from_files("pdf", {"SKILL.md": b"\x00\xff garbage"})
    assert skill_metadata(skill, store) == {"name": None, "effective_name": None, "version": None,
                                           "description": None}

    def broken(sha: str) -> bytes:
        raise OSError("gone")

    assert skill_metadata(skill, broken)["name"] is None
    assert skill_metadata(Skill("x", "t", ()), broken)["name"] is None


# --- one pass: findings and metadata from one read and one parse -------------------------


@pytest.mark.parametrize(
    "content",
    [GOOD, md(name="pdf", description="d", version="1.10"), md(name="Other Name", description="x"),
     "---\nname: a\nname: b\n---\n", b"\x00\xff garbage", "---\ndescription: Use it: now\n---\n"],
)
def test_check_skill_matches_validate_skill_and_skill_metadata(content: str | bytes) -> None:
    files = {"SKILL.md": content, "references/a.md": "token: 'ghp_Zq8Lm3Tx7Wp2Zq8Lm3Tx7Wp2Zq8Lm3Tx7Wp2'\n"}
    skill, store = skill_from_files("pdf", files)
    result = check_skill(skill, store, CFG, prefix="skills/pdf")
    assert result.findings == validate_skill(skill, store, CFG, prefix="skills/pdf")
    assert "secret.github-pat" in rules(list(result.findings))
    assert dict(result.metadata) == skill_metadata(skill, store)


def test_check_skill_reads_skill_md_once_and_reuses_entry_findings() -> None:
    skill, store = skill_from_files("pdf", {"SKILL.md": GOOD, "__pycache__/x.pyc": b"\x00"})
    entry_findings = check_entries(skill, CFG, prefix="pdf")
    assert rules(list(entry_findings)) == {"path.pycache"}
    store.reads.clear()
    result = check_skill(skill, store, CFG, prefix="pdf", entry_findings=entry_findings)
    assert store.reads.count(next(e.sha for e in skill.entries if e.path == "SKILL.md")) == 1
    assert result.metadata == {"name": "pdf", "effective_name": "pdf", "version": "1.0",
                               "description": "Read PDF files."}
    assert result.findings == validate_skill(skill, store, CFG, prefix="pdf")


def test_check_skill_metadata_for_a_skill_md_the_rules_do_not_read() -> None:
    """Over max_skill_md_bytes (reported, here only as a warning) but under the metadata
    cap: the rules skip the file, the metadata is still read, as skill_metadata does."""
    big = GOOD + "x" * 600
    cfg = Config(max_skill_md_bytes=500, severity={"size.skill-md": "warning"})
    skill, store = skill_from_files("pdf", {"SKILL.md": big})
    result = check_skill(skill, store, cfg)
    assert rules(list(result.findings)) == {"size.skill-md"}
    assert result.metadata["name"] == "pdf"
    assert validate_skill(skill, Forbidden(), cfg) == result.findings
