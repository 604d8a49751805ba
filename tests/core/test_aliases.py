"""Room alias grammar and m.room.canonical_alias validation."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from outlast.core.aliases import (
    check_canonical_alias,
    valid_alias,
    valid_server_name,
    without_alias,
)
from outlast.core.errors import MatrixError

ROOM = "!room:hs"
ALIASES = {"#a:hs": ROOM, "#b:hs": ROOM, "#other:hs": "!elsewhere:hs"}


def resolve(alias: str) -> str | None:
    return ALIASES.get(alias)


def code(content: Mapping[str, object], previous: Mapping[str, object] | None = None) -> str:
    with pytest.raises(MatrixError) as err:
        check_canonical_alias(content, ROOM, previous, resolve)
    assert err.value.status == 400
    return err.value.errcode


@pytest.mark.parametrize(
    "name", ["hs", "matrix.org:8448", "1.2.3.4", "1.2.3.4:80", "[1234:5678::abcd]", "[::1]:8008"]
)
def test_valid_server_names(name: str) -> None:
    assert valid_server_name(name)


@pytest.mark.parametrize("name", ["", "bad_host", "hs:", "hs:123456", "1.2.3.999", "[zz]", "a b"])
def test_invalid_server_names(name: str) -> None:
    assert not valid_server_name(name)


def test_alias_grammar() -> None:
    assert valid_alias("#a:hs") and valid_alias("#ünïcode room:hs")
    for bad in ["a:hs", "#a", "#a:b:hs", "#a\0:hs", "#a:bad_host", "#" + "x" * 255 + ":hs", 5]:
        assert not valid_alias(bad)


def test_canonical_alias_checks() -> None:
    check_canonical_alias({"alias": "#a:hs", "alt_aliases": ["#b:hs"]}, ROOM, None, resolve)
    check_canonical_alias({}, ROOM, None, resolve)  # no canonical alias at all
    check_canonical_alias({"alias": ""}, ROOM, None, resolve)
    assert code({"alias": "not-an-alias"}) == "M_INVALID_PARAM"
    assert code({"alias": 7}) == "M_INVALID_PARAM"
    assert code({"alt_aliases": "#a:hs"}) == "M_INVALID_PARAM"
    assert code({"alt_aliases": ["#a:hs", 3]}) == "M_INVALID_PARAM"
    assert code({"alias": "#unknown:hs"}) == "M_BAD_ALIAS"
    assert code({"alias": "#other:hs"}) == "M_BAD_ALIAS"
    assert code({"alias": "#a:hs", "alt_aliases": ["#other:hs"]}) == "M_BAD_ALIAS"


def test_aliases_already_listed_are_not_checked_again() -> None:
    previous = {"alias": "#gone:hs", "alt_aliases": ["#other:hs"]}
    check_canonical_alias(
        {"alias": "#gone:hs", "alt_aliases": ["#other:hs"]}, ROOM, previous, resolve
    )
    assert code({"alias": "#gone:hs", "alt_aliases": ["#unknown:hs"]}, previous) == "M_BAD_ALIAS"


def test_deleting_an_alias_clears_it_from_the_event() -> None:
    content = {"alias": "#a:hs", "alt_aliases": ["#a:hs", "#b:hs"], "x": 1}
    assert without_alias(content, "#a:hs") == {"alt_aliases": ["#b:hs"], "x": 1}
    assert without_alias({"alt_aliases": ["#b:hs"]}, "#b:hs") == {}
    assert without_alias(content, "#zzz:hs") is None
