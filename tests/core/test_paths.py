"""Dot-separated property paths: the appendix's escaping rules."""

from __future__ import annotations

import pytest

from outlast.core.paths import ABSENT, lookup, split_path


@pytest.mark.parametrize(
    ("key", "parts"),
    [
        ("content.body", ("content", "body")),
        ("content.m\\.relates_to.rel_type", ("content", "m.relates_to", "rel_type")),
        ("content.m\\\\foo", ("content", "m\\foo")),  # escaped backslash
        ("content.a\\x", ("content", "a\\x")),  # other escapes are literal
        ("type", ("type",)),
        ("a..b", ("a", "", "b")),
        ("trailing\\", ("trailing\\",)),
    ],
)
def test_split_path_follows_the_escaping_rules(key: str, parts: tuple[str, ...]) -> None:
    assert split_path(key) == parts


def test_lookup_walks_objects_only() -> None:
    event = {"content": {"m.relates_to": {"rel_type": "m.replace"}, "list": [1]}}
    assert lookup(event, split_path("content.m\\.relates_to.rel_type")) == "m.replace"
    assert lookup(event, split_path("content.m.relates_to")) is ABSENT
    assert lookup(event, ("content", "list", "0")) is ABSENT
    assert lookup(event, ("nope",)) is ABSENT
