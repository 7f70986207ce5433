"""The house rules a linter does not check: each package says what it offers, and no package
imports another's private names. (The floors themselves are import-linter's contracts in
pyproject.toml, checked by `make lint`.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "workloads", "submissions", "sweeps", "reports")


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


@pytest.mark.parametrize("init", sorted(p for p in _modules() if p.name == "__init__.py"))
def test_every_package_says_what_it_offers(init: Path) -> None:
    tree = ast.parse(init.read_text())
    names = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    assert "__all__" in names, f"{init.relative_to(REPO)} has no __all__"


def test_no_package_imports_another_packages_private_names() -> None:
    found = []
    for path in _modules():
        own = path.relative_to(REPO).parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.module or node.level:
                continue
            top = node.module.split(".")[0]
            if top not in PACKAGES or top == own:
                continue
            private = [a.name for a in node.names if a.name.startswith("_")]
            private += [p for p in node.module.split(".") if p.startswith("_")]
            if private:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.module} {private}")
    assert found == []
