"""The sandbox is a development tool beside the application, never part of it: no application
package imports it, and it imports none of them (DESIGN.md, "Shape")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPLICATION = ["config", "core", "accounts", "formations", "calendars"]


def imported_modules(package: str) -> dict[str, set[str]]:
    """Every module each file of `package` imports, by path relative to the repository."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def top_level(name: str) -> str:
    return name.split(".")[0]


def test_no_application_package_imports_the_sandbox():
    importers = {
        path: sorted(names)
        for package in APPLICATION
        for path, names in imported_modules(package).items()
        if any(top_level(name) == "sandbox" for name in names)
    }
    assert importers == {}


def test_the_sandbox_imports_no_application_package_but_core():
    forbidden = set(APPLICATION) - {"core"}
    importers = {
        path: sorted(name for name in names if top_level(name) in forbidden)
        for path, names in imported_modules("sandbox").items()
    }
    assert {path: names for path, names in importers.items() if names} == {}


def test_only_the_sandbox_app_and_its_command_use_django():
    users = {
        path
        for path, names in imported_modules("sandbox").items()
        if any(top_level(name) == "django" for name in names)
    }
    assert users <= {"sandbox/apps.py", "sandbox/management/commands/calendar_sandbox.py"}
