"""The suite's own layout: test modules share code through tests/support/ only, never by
importing one another (or a conftest), and fixtures reach the tests as plugins listed in
tests/conftest.py, never imported by name."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.imports import ROOT, imported_modules

TESTS = ROOT / "tests"
PLUGIN_PREFIX = "tests.support.fixtures_"


def forbidden_imports(path: Path) -> list[str]:
    """What the file imports that it must not: a test module, a conftest, a fixtures plugin."""
    found = []
    for name in sorted(imported_modules(path)):
        parts = name.split(".")
        if any(part.startswith("test_") or part == "conftest" for part in parts):
            found.append(f"{path.name} imports {name} (a test module or conftest)")
        elif name.startswith(PLUGIN_PREFIX):
            found.append(f"{path.name} imports {name} (fixtures come by name from the plugins)")
    return found


def registered_plugins() -> set[str]:
    """The modules tests/conftest.py lists in ``pytest_plugins``."""
    tree = ast.parse((TESTS / "conftest.py").read_text())
    [plugins] = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(target, "id", None) for target in node.targets] == ["pytest_plugins"]
    ]
    return set(ast.literal_eval(plugins))


def test_no_file_of_the_suite_imports_a_test_module_a_conftest_or_a_fixtures_plugin() -> None:
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 50  # the walk found the suite
    offenders = [found for path in files for found in forbidden_imports(path)]
    assert offenders == []


def test_every_fixtures_module_is_a_registered_plugin() -> None:
    modules = {f"tests.support.{path.stem}" for path in (TESTS / "support").glob("fixtures_*.py")}
    assert modules and registered_plugins() == modules


def test_the_check_sees_a_test_module_a_conftest_and_a_plugin_imported(tmp_path: Path) -> None:
    module = tmp_path / "test_m.py"
    module.write_text(
        "from tests.integration.test_checkin import buy\n"
        "def helper():\n"
        "    from tests.e2e import conftest\n"
        "from tests.support.fixtures_events import on_sale\n"
        "from tests.support.shop import buy as buy_again\n"
    )
    assert forbidden_imports(module) == [
        "test_m.py imports tests.e2e.conftest (a test module or conftest)",
        "test_m.py imports tests.integration.test_checkin (a test module or conftest)",
        "test_m.py imports tests.integration.test_checkin.buy (a test module or conftest)",
        "test_m.py imports tests.support.fixtures_events (fixtures come by name from the plugins)",
        "test_m.py imports tests.support.fixtures_events.on_sale (fixtures come by name from the "
        "plugins)",
    ]
