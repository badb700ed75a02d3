"""The docs' secret figures and table come from the rule table, not from a hand count
(issue 29 item 16: the README said 132 providers when the table had more)."""

from __future__ import annotations

from pathlib import Path

from skillsyncd.validation.secrets.catalogue import figures, markdown_table

ROOT = Path(__file__).resolve().parent.parent


def _flat(path: Path) -> str:
    return " ".join(path.read_text().split())


def test_the_readme_quotes_the_tables_counts() -> None:
    """Regenerate with `python -m skillsyncd.validation.secrets.catalogue --figures`."""
    f = figures()
    assert f.formats > 200 and f.providers > 100
    assert f.text() in _flat(ROOT / "README.md"), f.text()


def test_the_docs_table_is_the_generated_one() -> None:
    """Regenerate with `python -m skillsyncd.validation.secrets.catalogue`."""
    assert markdown_table() in (ROOT / "docs" / "validation.md").read_text()
