"""Architecture rules (docs/architecture.md), checked by parsing every module's imports
with ``ast`` — imports inside functions and under ``TYPE_CHECKING`` included.

- ``outlast.core`` is pure Matrix logic: no log, view, service, HTTP, NATS or SQLite.
- ``outlast.log`` imports no view, service, HTTP or site module.
- The view layer (``outlast/view`` and every capability's ``tables.py``,
  ``signing_tables.py``, ``queries.py``) imports no service, HTTP or site module.
- Services (every other module of a capability folder, and ``outlast.context``)
  import no HTTP or site module (``outlast.site``, ``outlast.services``).
- ``outlast.http`` talks to services only: no SQLite and no log subject names,
  and it reaches them only through ``outlast.http.request.services``.
- Only ``outlast.log`` talks to NATS: everything else goes through its adapter.
- No import cycles among outlast's modules (scripts/import_cycles.py).
- mypy checks every handler's call into a service: a copy of a handler with one
  wrong argument fails it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.import_cycles import cycles, graph

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "outlast"

CAPABILITIES = (
    "accounts",
    "rooms",
    "sync",
    "receipts",
    "presence",
    "profiles",
    "directory",
    "account_data",
    "push",
    "e2ee",
    "room_keys",
    "media",
    "voip",
    "ops",
)
VIEW_MODULE_NAMES = ("tables", "signing_tables", "queries")
SITE = ("outlast.site", "outlast.services")

CORE_FORBIDDEN = (
    "outlast.log",
    "outlast.view",
    "outlast.context",
    *(f"outlast.{c}" for c in CAPABILITIES),
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
        "from .. import rooms",
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


# --- layers of the capability folders -----------------------------------------------


def layer(name: str) -> str:
    """core, log, view, service, http, site or other, for an outlast module name."""
    parts = name.split(".")
    if len(parts) < 2 or parts[0] != "outlast":
        return "other"
    top = parts[1]
    if top in ("core", "log", "view", "http"):
        return top
    if name in SITE:
        return "site"
    if name == "outlast.context":
        return "service"
    if top in CAPABILITIES:
        if len(parts) == 2:
            return "package"  # the folder itself: ``from outlast.rooms import tables``
        return "view" if parts[2] in VIEW_MODULE_NAMES else "service"
    return "other"


def layer_of_import(imported: str, known: set[str]) -> str:
    """The layer of the module an import names (``pkg.mod.Name`` counts as ``pkg.mod``)."""
    while imported and imported not in known:
        imported = imported.rpartition(".")[0]
    return layer(imported) if imported else "other"


KNOWN_MODULES = {module_name(p, ROOT) for p in PACKAGE.rglob("*.py")}
FORBIDDEN_LAYERS = {
    "log": {"view", "service", "http", "site"},
    "view": {"service", "http", "site"},
    "service": {"http", "site"},
}


def modules_of_layer(wanted: str) -> list[object]:
    params: list[object] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if layer(module_name(path, ROOT)) == wanted:
            params.append(pytest.param(path, id=path.relative_to(ROOT).as_posix()))
    return params


def crossings(path: Path, forbidden: set[str]) -> list[str]:
    return sorted(
        {n for n in imported_names(path, ROOT) if layer_of_import(n, KNOWN_MODULES) in forbidden}
    )


@pytest.mark.parametrize("path", modules_of_layer("log"))
def test_log_imports_no_view_service_http_or_site(path: Path) -> None:
    assert crossings(path, FORBIDDEN_LAYERS["log"]) == []


@pytest.mark.parametrize("path", modules_of_layer("view"))
def test_view_imports_no_service_http_or_site(path: Path) -> None:
    assert crossings(path, FORBIDDEN_LAYERS["view"]) == []


@pytest.mark.parametrize("path", modules_of_layer("service"))
def test_services_import_no_http_or_site(path: Path) -> None:
    assert crossings(path, FORBIDDEN_LAYERS["service"]) == []


def test_every_capability_module_has_a_layer() -> None:
    assert {layer(m) for m in KNOWN_MODULES if m.split(".")[1:2] == ["rooms"]} == {
        "package",
        "service",
        "view",
    }
    assert layer("outlast.e2ee.signing_tables") == "view"
    assert layer("outlast.e2ee.keys") == "service"
    assert layer("outlast.services") == "site"


@pytest.mark.parametrize("path", modules("http"))
def test_handlers_reach_services_only_through_the_accessor(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    reaches = [line for line in source.splitlines() if "request.app[" in line]
    # The services; the HTTP layer's own rate limits, metrics and /versions answer (which
    # is derived from its route table).
    allowed = (
        "request.app[SERVICES]",
        "request.app[LIMITS_KEY]",
        "request.app.get(METRICS_KEY)",
        "request.app[VERSIONS_KEY]",
    )
    assert [line for line in reaches if not any(a in line for a in allowed)] == []


def test_no_import_cycles_among_outlast_modules() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# --- mypy sees through the composition root -----------------------------------------


def mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_mypy_rejects_a_handler_that_calls_a_service_wrongly(tmp_path: Path) -> None:
    """The handler for POST /keys/claim, copied as it is (mypy accepts it) and with one
    extra argument in its call into the keys service (mypy must refuse it)."""
    source = (PACKAGE / "http" / "routes" / "devices.py").read_text(encoding="utf-8")
    call = 'services(request).keys.claim(body.get("one_time_keys"))'
    assert call in source
    good, bad = tmp_path / "handlers_ok.py", tmp_path / "handlers_wrong.py"
    good.write_text(source, encoding="utf-8")
    bad.write_text(source.replace(call, call[:-1] + ', "surplus")'), encoding="utf-8")
    assert mypy(good).returncode == 0, mypy(good).stdout
    refused = mypy(bad)
    assert refused.returncode != 0
    assert 'Too many arguments for "claim" of "Keys"' in refused.stdout, refused.stdout
