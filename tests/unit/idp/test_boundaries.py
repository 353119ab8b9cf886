"""ARCHITECTURE.md: `idp/` never imports `store/`, `services/`, `api/`, `web/` or `gateway/`."""

from __future__ import annotations

import ast
from pathlib import Path

import keystile.idp

FORBIDDEN = ("keystile.store", "keystile.services", "keystile.api", "keystile.web", "keystile.gateway", "keystile.app")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_idp_imports_nothing_above_it():
    package = Path(keystile.idp.__file__).parent
    files = sorted(package.rglob("*.py"))
    assert len(files) >= 10
    for path in files:
        bad = {m for m in imported_modules(path) if m.startswith(FORBIDDEN)}
        assert not bad, f"{path.name} imports {bad}"
