"""What may import what, as docs/development.md ("Where code lives") draws it.

Read from the code with ``ast``, every import (also those inside functions), so the map in the
docs cannot drift from the code without this test failing.
"""

from __future__ import annotations

import ast

import pytest

from testkit import REPO_ROOT

FIRST_PARTY = {"minitwit", "testkit", "bench", "drills", "e2e", "tests", "helpers", "conftest"}
# folder -> the first-party packages its modules may import (itself included)
ALLOWED = {
    "service/minitwit": {"minitwit"},
    "testkit": {"testkit"},
    "bench": {"bench", "testkit", "minitwit"},
    "drills": {"drills", "bench"},
    "e2e": {"e2e", "testkit", "minitwit"},
}
BLUEPRINTS = {"minitwit.auth", "minitwit.timeline"}


def imported_modules(source: str, package: str) -> set[str]:
    """Absolute names of the modules ``source`` imports; relative imports resolved in ``package``."""
    parts = package.split(".")
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level:  # from . import x / from .x import y
            base = ".".join(parts[: len(parts) - node.level + 1])
            found |= {f"{base}.{node.module}"} if node.module else {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module)
    return found


def package_of(folder: str) -> str:
    return "minitwit" if folder == "service/minitwit" else folder.replace("/", ".")


def first_party(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules} & FIRST_PARTY


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_each_folder_imports_only_what_the_map_allows(folder):
    files = sorted((REPO_ROOT / folder).rglob("*.py"))
    assert files, f"{folder} has no Python files"
    wrong = {}
    for path in files:
        names = first_party(imported_modules(path.read_text(), package_of(folder))) - ALLOWED[folder]
        if names:
            wrong[str(path.relative_to(REPO_ROOT))] = sorted(names)
    assert wrong == {}


def test_the_api_imports_no_other_blueprint():
    """Rules and writes the UI shares with the API live in models.py, not in a blueprint."""
    source = (REPO_ROOT / "service" / "minitwit" / "api.py").read_text()
    assert imported_modules(source, "minitwit") & BLUEPRINTS == set()


def test_the_import_reader_sees_relative_and_nested_imports():
    """The checks above are only as good as this reader."""
    source = "from . import auth\nfrom .models import User\nimport json\ndef f():\n    from drills.stats import x\n"
    assert imported_modules(source, "minitwit") == {"minitwit.auth", "minitwit.models", "json", "drills.stats"}
    assert first_party(imported_modules(source, "minitwit")) == {"minitwit", "drills"}
