"""Imports point down (ARCHITECTURE.md, "Layers"): views and tasks -> services -> models. A
module that imports a layer above it fails here, before it makes an import circle."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.imports import ROOT, imported_modules

APP = ROOT / "app"

# What each layer may not import.
FORBIDDEN = {
    "models": ("app.services", "app.tasks", "app.views"),
    "services": ("app.tasks", "app.views"),
    "tasks": ("app.views",),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    offenders = [
        f"{path.relative_to(APP.parent)} imports {name}"
        for path in sorted((APP / layer).rglob("*.py"))
        for name in sorted(imported_modules(path))
        if name.startswith(FORBIDDEN[layer])
    ]
    assert offenders == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from app.tasks import celery\n")
    assert "app.tasks" in imported_modules(module)
