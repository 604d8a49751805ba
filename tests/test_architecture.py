"""docs/architecture.md's fact catalogue is generated from the fact types and kept current."""

from __future__ import annotations

import dataclasses

from outlast.log.facts import FACT_TYPES
from scripts.fact_catalogue import DOC, appliers, catalogue, with_catalogue


def test_the_document_holds_the_current_catalogue() -> None:
    document = DOC.read_text(encoding="utf-8")
    assert with_catalogue(document) == document, "run scripts/fact_catalogue.py --write"


def test_every_fact_the_view_follows_has_an_applier() -> None:
    applied = appliers()
    not_applied = {kind.__name__ for kind in FACT_TYPES.values()} - set(applied)
    assert not_applied == {"HealthProbe"}  # on the health stream, which no view follows
    assert applied["Logout"].startswith("`accounts.tables.apply_logout`")
    assert "`e2ee.tables.devices_gone`" in applied["Logout"]


def test_the_catalogue_names_every_kind_and_field() -> None:
    text = catalogue()
    for op, kind in FACT_TYPES.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{op}` |"))
        for field in dataclasses.fields(kind):
            assert field.name in row, (op, field.name)
