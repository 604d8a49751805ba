"""Architecture rules, checked by parsing every module's imports with ``ast``.

- ``outlast.core`` is pure Matrix logic: no log, view, service, HTTP, NATS or SQLite.
- ``outlast.http`` talks to services only: no SQLite and no log subject names.
- Only ``outlast.log`` talks to NATS: everything else goes through its adapter.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "outlast"

CORE_FORBIDDEN = (
    "outlast.log",
    "outlast.view",
    "outlast.service",
    "outlast.http",
    "aiohttp",
    "nats",
    "sqlite3",
)
HTTP_FORBIDDEN = ("sqlite3", "outlast.log.names")
NATS = ("nats",)

# Known violations, to be fixed by the module's owner. strict: the marker must go once fixed.
KNOWN: dict[str, str] = {}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, root: Path) -> Iterator[str]:
    """Every module an import statement in ``path`` names, relative imports resolved."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # ``from outlast.log import names`` imports the module outlast.log.names.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def is_within(name: str, forbidden: str) -> bool:
    return name == forbidden or name.startswith(forbidden + ".")


def violations(path: Path, forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    return sorted(
        {n for n in imported_names(path, root) if any(is_within(n, f) for f in forbidden)}
    )


def modules(subpackage: str, exclude: str | None = None) -> list[object]:
    params: list[object] = []
    for path in sorted((PACKAGE / subpackage).rglob("*.py")):
        if exclude and path.is_relative_to(PACKAGE / exclude):
            continue
        rel = path.relative_to(ROOT).as_posix()
        marks = [pytest.mark.xfail(reason=KNOWN[rel], strict=True)] if rel in KNOWN else []
        params.append(pytest.param(path, id=rel, marks=marks))
    return params


@pytest.mark.parametrize("path", modules("core"))
def test_core_is_pure(path: Path) -> None:
    assert violations(path, CORE_FORBIDDEN) == []


@pytest.mark.parametrize("path", modules("http"))
def test_http_does_not_reach_storage_or_log_names(path: Path) -> None:
    assert violations(path, HTTP_FORBIDDEN) == []


@pytest.mark.parametrize("path", modules("", exclude="log"))
def test_only_the_log_talks_to_nats(path: Path) -> None:
    assert violations(path, NATS) == []


# --- the checker itself -----------------------------------------------------


def checked(tmp_path: Path, source: str, forbidden: tuple[str, ...]) -> list[str]:
    """Check ``source`` as if it were outlast/core/x.py (so relative imports resolve)."""
    path = tmp_path / "outlast" / "core" / "x.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    return violations(path, forbidden, root=tmp_path)


@pytest.mark.parametrize(
    "source",
    [
        "import sqlite3",
        "import nats.js.api",
        "from nats import js",
        "from outlast.log import names",
        "from outlast.view.store import open_db",
        "from ..log import names",
        "from .. import service",
        "def f():\n    import aiohttp\n",
    ],
)
def test_checker_catches_forbidden_imports(tmp_path: Path, source: str) -> None:
    assert checked(tmp_path, source, CORE_FORBIDDEN)


@pytest.mark.parametrize(
    "source",
    [
        "import json",
        "from outlast.core import ids",
        "from . import errors",
        "import natsort",
        "from outlast.logging import x",
    ],
)
def test_checker_allows_other_imports(tmp_path: Path, source: str) -> None:
    assert checked(tmp_path, source, CORE_FORBIDDEN) == []


def test_http_rule_allows_other_log_modules_but_not_names(tmp_path: Path) -> None:
    assert checked(tmp_path, "from outlast.log import names", HTTP_FORBIDDEN)
    assert checked(tmp_path, "from outlast.log.client import Ack", HTTP_FORBIDDEN) == []
