"""The lower layers never reach up: transport/, paging/ and files/ import no hook or operator."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import airflow_provider_analytics_export

PACKAGE = Path(airflow_provider_analytics_export.__file__).parent
LOWER = ("transport", "paging", "files")
UPPER = ("hooks", "operators", "sensors", "triggers")


def imported_modules(path: Path) -> list[str]:
    """Every module ``path`` imports, type-checking-only imports included, as absolute names."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's own package
                parts = path.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level]
                base = ".".join(parts)
                names.append(f"{base}.{node.module}" if node.module else base)
            else:
                names.append(node.module or "")
            names += [f"{names[-1]}.{alias.name}" for alias in node.names]
    return names


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_import_nothing_above_them(layer: str) -> None:
    upward = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in (PACKAGE / layer).rglob("*.py")
        for name in imported_modules(path)
        if any(name.startswith(f"{PACKAGE.name}.{upper}") for upper in UPPER)
    }
    assert not upward
