"""Canonical JSON limits on event content: no floats, safe integers only."""

from __future__ import annotations

import pytest

from outlast.core.canonical_json import MAX_SAFE, check_content, violation
from outlast.core.errors import MatrixError


def test_canonical_content_passes() -> None:
    check_content({"body": "x", "n": MAX_SAFE, "m": -MAX_SAFE, "ok": [True, None, {"a": 1}]})


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ({"n": 1.5}, "content.n is a float"),
        ({"a": [{"b": 2.0}]}, "content.a[0].b is a float"),
        ({"n": MAX_SAFE + 1}, "content.n is out of range"),
        ({"n": -MAX_SAFE - 1}, "content.n is out of range"),
        ({1: "x"}, "content has a non-string key"),
        ({"s": {1, 2}}, "content.s is not JSON"),
    ],
)
def test_violations_are_located(content: object, where: str) -> None:
    assert violation(content) == where
    with pytest.raises(MatrixError) as err:
        check_content(content)
    assert (err.value.status, err.value.errcode) == (400, "M_BAD_JSON")


def test_deep_nesting_is_refused() -> None:
    deep: object = 1
    for _ in range(150):
        deep = [deep]
    assert violation(deep) is not None
