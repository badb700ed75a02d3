"""The manifest and the journal are read and written only through their own modules.

``skillsyncd/release/manifest.py`` is the only code that opens ``releases/<id>.json``
(everyone else asks ``Releases.manifest`` for the typed value), and
``skillsyncd/audit/journal.py`` (with ``audit/events.py``, its codec) the only code
that opens ``journal.jsonl`` and its segments. A grep over the package finds any
other place that builds those paths or parses those files.
"""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "skillsyncd"

# (what it catches, pattern, the files allowed to match it)
RULES: tuple[tuple[str, re.Pattern[str], frozenset[str]], ...] = (
    ("parses a manifest", re.compile(r"Manifest\.from_json\(|json\.loads\([^)]*manifest"),
     frozenset({"release/manifest.py"})),
    ("opens a manifest file", re.compile(
        r"manifest_path\([^)]*\)\.(read_bytes|read_text|open|write_bytes|write_text)\("
        r"|atomic_write\([^,]*manifest"), frozenset()),
    ("builds a manifest's path by hand", re.compile(r"""["']releases["']\s*/\s*f?["'][^"']*\.json"""),
     frozenset()),
    ("opens the journal file", re.compile(
        r"journal(_file|\.path)?\)?\.(open|read_bytes|read_text|write_bytes|write_text)\("
        r"|open\([^)]*journal"), frozenset({"audit/journal.py"})),
    ("names the journal's files", re.compile(r"""["']journal[-.][^"']*["']|\.jsonl"""),
     frozenset({"audit/journal.py", "config.py"})),
    ("parses or builds journal lines", re.compile(r"json\.(loads|dumps)\((event|encode)\b"),
     frozenset({"audit/journal.py", "audit/events.py"})),
)


def violations(files: dict[str, str]) -> list[str]:
    """``path:line: what`` for every line that reads a manifest or the journal outside its module."""
    found = []
    for rel, text in sorted(files.items()):
        for no, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            for what, pattern, allowed in RULES:
                if rel not in allowed and pattern.search(code):
                    found.append(f"{rel}:{no}: {what}: {line.strip()}")
    return found


def test_no_module_reads_the_manifest_or_the_journal_behind_their_modules() -> None:
    files = {p.relative_to(PACKAGE).as_posix(): p.read_text() for p in PACKAGE.rglob("*.py")}
    assert len(files) > 50 and "release/manifest.py" in files and "audit/journal.py" in files
    assert violations(files) == []


def test_the_grep_catches_the_reads_it_is_meant_to() -> None:
    # What notify once did, and what each rule forbids elsewhere.
    bad = {
        "notify/apprise.py": 'm = json.loads((self.state_dir / "releases" / f"{rid}.json").read_text())',
        "daemon/dashboard.py": "manifest = Manifest.from_json(releases.manifest_path(r).read_bytes())",
        "release/staging.py": "atomic_write(releases.manifest_path(rid), manifest.to_json())",
        "daemon/metrics.py": "for line in cfg.journal_file.open():",
        "status.py": 'tail = (state / "journal.jsonl").read_bytes()',
        "audit/history.py": "yield json.dumps(event, ensure_ascii=False)",
    }
    found = violations(bad)
    assert {f.split(":", 1)[0] for f in found} == set(bad), found
    allowed = {"release/manifest.py": "return Manifest.from_json(path.read_bytes())",
               "audit/journal.py": "fh = self.path.open('rb')  # journal.jsonl"}
    assert violations(allowed) == []
