"""The sandbox is a development tool beside the application, never part of it. Which packages
import which is checked by `lint-imports` (pyproject.toml); Django, which import-linter can only
forbid whole, is checked here: only the sandbox's app and its command use it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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


def test_only_the_sandbox_app_and_its_command_use_django():
    users = {
        path
        for path, names in imported_modules("sandbox").items()
        if any(top_level(name) == "django" for name in names)
    }
    assert users <= {
        "sandbox/apps.py",
        "sandbox/management/commands/calendar_sandbox.py",
        "sandbox/management/commands/caldav_demo.py",
    }
