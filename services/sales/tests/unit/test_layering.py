"""The layering the project promises: the domain imports neither gRPC, protobuf nor PyMongo; the
use cases import neither gRPC nor the API, and neither do the contract, events and storage below
it (a newcomer finds a rule in the domain, free of the framework)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import crm_sales

PACKAGE = Path(crm_sales.__file__).parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _offending(folder: str, forbidden: tuple[str, ...]) -> dict[str, set[str]]:
    found = {}
    for path in sorted((PACKAGE / folder).glob("*.py")):
        if not folder and path.name in ("bootstrap.py", "main.py", "__main__.py"):
            continue  # the wiring builds the API
        bad = {n for n in _imports(path) for f in forbidden if n == f or n.startswith(f + ".")}
        if bad:
            found[path.name] = bad
    return found


def test_the_package_has_the_layers_this_test_checks() -> None:
    assert {p.name for p in (PACKAGE / "domain").glob("*.py")} >= {"opportunity.py", "money.py"}
    assert (PACKAGE / "use_cases" / "opportunities.py").is_file()


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        (
            "domain",
            ("grpc", "google", "pymongo", "bson", "crm", "crm_sales.api", "crm_sales.storage"),
        ),
        ("use_cases", ("grpc", "crm_sales.api")),
        ("", ("crm_sales.api",)),  # contract, events, storage sit below the API
    ],
)
def test_layer_does_not_import_the_framework(folder: str, forbidden: tuple[str, ...]) -> None:
    assert _offending(folder, forbidden) == {}
