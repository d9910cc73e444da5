"""What a Python file imports, read from its syntax tree without running it: for the unit tests
that keep imports pointing the right way (app layers, test modules)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    """Every module the file imports, and each name it imports from one as ``module.name`` (the
    name may be a submodule); relative imports are resolved against the file's own package."""
    package = _package_of(path)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _package_of(path: Path) -> list[str]:
    try:
        return list(path.resolve().relative_to(ROOT).parent.parts)
    except ValueError:  # outside the repository: relative imports resolve from nowhere
        return []
