"""docs/architecture.md names every module of the package (issue 26: the map is the tree)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "skillsyncd"


def _named(doc: str, module: Path) -> bool:
    rel = module.relative_to(PACKAGE).as_posix()
    return rel in doc or f"`{module.name}`" in doc


def test_every_module_is_in_the_architecture_map() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = [p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__init__.py"]
    assert len(modules) > 50  # the walk found the package
    missing = [p.relative_to(PACKAGE).as_posix() for p in modules if not _named(doc, p)]
    assert not missing, f"docs/architecture.md does not name: {missing}"


def test_every_package_is_in_the_architecture_map() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    packages = [p.parent.relative_to(PACKAGE).as_posix() + "/"
                for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE]
    assert not [p for p in packages if p not in doc]
