"""`skillsyncd validate PATH`: the corpus passes, a repository shaped like the
user's gets precise findings, and the output formats hold."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from skillsyncd.cli import main
from skillsyncd.config import Config
from skillsyncd.errors import EXIT_OK, EXIT_REJECTED, ConfigError
from skillsyncd.model import Finding, Severity
from skillsyncd.validation.report import Report, exit_code, render
from skillsyncd.validation.worktree import load_skill, validate_tree

CORPUS = Path(__file__).parent / "corpus"
GOOD = "---\nname: {name}\ndescription: Does {name} things.\nmetadata:\n  version: \"1.0\"\n---\n# {name}\n"


def write(root: Path, rel: str, content: str | bytes = "", mode: int | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    if mode is not None:
        path.chmod(mode)
    return path


def skill(root: Path, name: str, text: str | None = None) -> Path:
    write(root, f"{name}/SKILL.md", text if text is not None else GOOD.format(name=name))
    return root / name


def by_rule(report: Report) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in report.findings:
        out.setdefault(f.rule, []).append(f)
    return out


# --- the corpus ------------------------------------------------------------------------


def test_corpus_validates_with_zero_errors() -> None:
    report = validate_tree(CORPUS, Config())
    assert report.errors == 0, render(report)
    assert len(report.skills) >= 8
    # the only warning: an unquoted `version: 1.0` in the CRLF + BOM skill
    assert [(f.rule, f.path) for f in report.findings if f.rule != "layout.root-files"] == [
        ("yaml.implicit-type", "csv-report/SKILL.md")]
    assert exit_code(report) == EXIT_OK


def test_corpus_is_not_collected_as_tests() -> None:
    assert not list(CORPUS.rglob("test_*.py")) and not list(CORPUS.rglob("*_test.py"))
    assert not list(CORPUS.rglob("conftest.py"))


def test_corpus_really_has_crlf_bom_and_executables() -> None:
    raw = (CORPUS / "csv-report" / "SKILL.md").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf---\r\n")
    entries = {e.path: e for e in load_skill(CORPUS / "pdf-forms")[0].entries}
    assert entries["scripts/fill_form.py"].mode == 0o100755
    assert entries["SKILL.md"].mode == 0o100644


def test_corpus_in_strict_mode_fails_only_on_the_warning() -> None:
    report = validate_tree(CORPUS, Config(strict=True, severity={"layout.root-files": "off"}))
    assert [f.rule for f in report.findings if f.severity is Severity.ERROR] == ["yaml.implicit-type"]


# --- working trees -----------------------------------------------------------------------


def test_entries_from_disk(tmp_path: Path) -> None:
    d = skill(tmp_path, "pdf")
    write(d, "scripts/run.sh", "#!/bin/sh\n", mode=0o755)
    os.symlink("/etc/passwd", d / "passwd")
    write(d, "vendor/lib/.git", "gitdir: ../../.git/modules/lib\n")
    write(d, "vendor/lib/file.txt", "x")
    s, _ = load_skill(d)
    modes = {e.path: e.mode for e in s.entries}
    assert modes == {"SKILL.md": 0o100644, "scripts/run.sh": 0o100755, "passwd": 0o120000,
                     "vendor/lib": 0o160000}
    report = validate_tree(tmp_path, Config())
    assert set(by_rule(report)) == {"path.symlink", "path.gitlink"}
    assert exit_code(report) == EXIT_REJECTED


def test_hidden_and_non_skill_folders_are_skipped_and_said(tmp_path: Path) -> None:
    skill(tmp_path, "pdf")
    skill(tmp_path, ".github")
    write(tmp_path, "docs/index.md", "# docs")
    write(tmp_path, "README.md", "# skills")
    report = validate_tree(tmp_path, Config())
    assert report.skills == ("pdf",)
    assert sorted((f.rule, f.path) for f in report.findings) == [
        ("layout.hidden", ".github"), ("layout.not-a-skill", "docs"), ("layout.root-files", ".")]
    assert not report.errors


def test_skills_path_prefixes_findings(tmp_path: Path) -> None:
    skill(tmp_path / "skills", "pdf", "# no frontmatter\n")
    report = validate_tree(tmp_path, Config(skills_path="skills"))
    assert [f.location() for f in report.findings] == ["skills/pdf/SKILL.md:1"]


def test_missing_skills_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="skills_path"):
        validate_tree(tmp_path, Config(skills_path="nope"))


def test_no_skills_is_reported(tmp_path: Path) -> None:
    report = validate_tree(tmp_path, Config())
    assert set(by_rule(report)) == {"layout.no-skills"}
    assert exit_code(report) == EXIT_REJECTED


def test_a_path_that_is_a_skill_is_validated_as_that_skill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    skill(tmp_path, "pdf", "---\nname: pdf\n---\n")  # no description: an error
    skill(tmp_path, "other")
    assert main(["validate", str(tmp_path / "pdf")]) == EXIT_REJECTED
    out = capsys.readouterr().out
    assert "1 skill checked" in out and "pdf/SKILL.md" in out and "field.required" in out
    assert "other" not in out
    skill(tmp_path, "good")
    assert main(["validate", str(tmp_path / "good")]) == EXIT_OK
    assert "1 skill checked" in capsys.readouterr().out


def test_allowlist_from_repo_root_and_skills_root(tmp_path: Path) -> None:
    key = "gh" + "p_" + "Zq8Lm3Tx7Wp2" * 3
    d = skill(tmp_path / "skills", "demo")
    write(d, "notes.md", f"fixture {key}\n")
    cfg = Config(skills_path="skills")
    assert "secret.github-pat" in by_rule(validate_tree(tmp_path, cfg))
    write(tmp_path, "skills/.skillsync-allow",
          "# fake token used in notes.md\nskills/demo/notes.md:secret.github-pat\n")
    assert "secret.github-pat" not in by_rule(validate_tree(tmp_path, cfg))
    (tmp_path / "skills/.skillsync-allow").unlink()
    write(tmp_path, ".skillsync-allow", "skills/*/notes.md:secret.*\n")
    assert "secret.github-pat" not in by_rule(validate_tree(tmp_path, cfg))


def test_repository_shaped_like_the_users(tmp_path: Path) -> None:
    """The user's repository in small: root SKILL.md, a parallel skills/ tree, an unquoted
    ': ', names with spaces, committed __pycache__, skill.yaml folders, a grouped skill."""
    write(tmp_path, "SKILL.md", "# Kurultai\nThe whole council.\n")
    skill(tmp_path, "researcher")
    skill(tmp_path, "writer", "---\nname: Content Writer\ndescription: Writes.\n---\n")
    skill(tmp_path, "planner", "---\nname: planner\ndescription: Plans: step by step\n---\n")
    skill(tmp_path, "no-front", "# Just markdown\n")
    skill(tmp_path, "no-name", "---\ndescription: Missing its name.\nversion: 1.2\n---\n")
    write(tmp_path, "researcher/__pycache__/helper.cpython-312.pyc", b"\x00\x01")
    write(tmp_path, "legacy/skill.yaml", "name: legacy\n")
    write(tmp_path, "legacy/prompts/main.md", "# prompt")
    skill(tmp_path / "group", "deep")
    skill(tmp_path / "skills", "researcher")
    write(tmp_path, "bundle.zip", b"PK\x03\x04")
    report = validate_tree(tmp_path, Config())
    found = by_rule(report)
    errors = sorted((f.rule, f.path) for f in report.findings if f.severity is Severity.ERROR)
    assert errors == [("frontmatter.missing", "no-front/SKILL.md")]
    assert found["yaml.recovered"][0].line == 3 and "quoted" in found["yaml.recovered"][0].message
    assert [f.path for f in found["field.name-missing"]] == ["no-name/SKILL.md"]
    assert {f.path for f in found["layout.not-a-skill"]} == {"legacy"}
    assert "skill.yaml" in found["layout.not-a-skill"][0].message
    assert [f.path for f in found["layout.root-skill-md"]] == ["SKILL.md"]
    assert "SKILLSYNC_SKILLS_PATH=skills" in found["layout.skills-subfolder"][0].message
    # Compiled caches are ignored by default: never judged, and the count is said.
    assert "path.pycache" not in found and "researcher/__pycache__" in found["layout.ignored"][0].message
    assert {f.rule for f in found["field.name-format"] + found["field.name-folder"]} == {
        "field.name-format", "field.name-folder"}
    assert "yaml.implicit-type" in found  # version: 1.2 in no-name
    assert report.skills == ("no-front", "no-name", "planner", "researcher", "writer", "group/deep")


def test_duplicate_names_across_folders(tmp_path: Path) -> None:
    skill(tmp_path, "pdf")
    skill(tmp_path, "pdf-copy", GOOD.format(name="pdf"))
    report = validate_tree(tmp_path, Config())
    assert {f.path for f in by_rule(report)["release.duplicate-name"]} == {
        "pdf/SKILL.md", "pdf-copy/SKILL.md"}


# --- output ------------------------------------------------------------------------------------

REPORT = Report(
    root="repo",
    skills=("skills/pdf",),
    findings=(
        Finding("yaml.syntax", Severity.ERROR, "skills/pdf/SKILL.md", "invalid YAML: a, b: c\n100%", 3),
        Finding("field.version-missing", Severity.WARNING, "skills/pdf/SKILL.md", "no version", None),
    ),
)


def test_render_text() -> None:
    out = render(REPORT)
    assert out.splitlines()[0].startswith("skills/pdf/SKILL.md: warning [field.version-missing]")
    assert "skills/pdf/SKILL.md:3: error [yaml.syntax]" in out
    assert out.splitlines()[-1] == "1 skill checked in repo: 1 error, 1 warning"


def test_render_json() -> None:
    data = json.loads(render(REPORT, "json"))
    assert data["ok"] is False and data["errors"] == 1 and data["warnings"] == 1
    assert data["findings"][1] == {"rule": "yaml.syntax", "severity": "error", "path": "skills/pdf/SKILL.md",
                                   "line": 3, "message": "invalid YAML: a, b: c\n100%"}


def test_render_github_escapes() -> None:
    lines = render(REPORT, "github").splitlines()
    assert lines[0] == "::warning file=skills/pdf/SKILL.md,title=field.version-missing::no version"
    assert lines[1] == ("::error file=skills/pdf/SKILL.md,line=3,title=yaml.syntax::"
                        "invalid YAML: a, b: c%0A100%25")
    assert len(lines) == 3


def test_render_unknown_format() -> None:
    with pytest.raises(ValueError, match="github"):
        render(REPORT, "xml")


def test_exit_codes() -> None:
    assert exit_code(REPORT) == EXIT_REJECTED == 4
    assert exit_code(Report("r", ("pdf",), REPORT.findings[1:])) == EXIT_OK
    assert exit_code(Report("r", (), ())) == EXIT_REJECTED  # nothing found: the wrong folder


def test_cli_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(CORPUS)]) == EXIT_OK
    assert "0 errors" in capsys.readouterr().out
    skill(tmp_path, "pdf", "---\nname: pdf\n---\n")
    assert main(["validate", str(tmp_path), "--format", "github"]) == EXIT_REJECTED
    out = capsys.readouterr().out
    assert "::error file=pdf/SKILL.md" in out and "field.required" in out


def test_corpus_through_a_real_git_commit(tmp_path: Path) -> None:
    """The same verdict from git tree entries (sizes from object headers) as from disk."""
    import shutil
    import subprocess

    from dulwich.objects import ObjectID
    from dulwich.repo import Repo

    from skillsyncd.source.snapshot import find_skills
    from skillsyncd.validation.gate import check_entries, validate_skill
    from skillsyncd.validation.rules import has_errors

    work = tmp_path / "repo"
    shutil.copytree(CORPUS, work / "skills")
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
           "-c", "core.autocrlf=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "corpus"], check=True)
    repo = Repo(str(work))
    try:
        tree = repo[repo.head()].tree.decode()  # type: ignore[attr-defined]
        skills = find_skills(repo.object_store, tree, "skills")

        def read_blob(sha: str) -> bytes:
            return bytes(repo.object_store[ObjectID(sha.encode())].as_raw_string())

        assert len(skills) == 8
        cfg = Config(skills_path="skills")
        for name, s in skills.items():
            assert not has_errors(check_entries(s, cfg, prefix=f"skills/{name}"))
            found = validate_skill(s, read_blob, cfg, prefix=f"skills/{name}")
            assert not has_errors(found), [str(f) for f in found]
        modes = {e.path: e.mode for e in skills["pdf-forms"].entries}
        assert modes["scripts/fill_form.py"] == 0o100755
    finally:
        repo.close()
