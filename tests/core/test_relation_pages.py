"""/relations and /threads paging: filters, recursion and boundaries."""

from __future__ import annotations

import pytest

from outlast.core.errors import MatrixError
from outlast.core.relation_pages import (
    MAX_LIMIT,
    Child,
    RelationsQuery,
    ThreadRoot,
    page,
    parse_query,
    related,
    thread_page,
)

EDGES = [
    Child("$t1", "$root", "m.thread", "m.room.message", (1, 0)),
    Child("$t2", "$root", "m.thread", "m.room.message", (2, 0)),
    Child("$r1", "$t1", "m.annotation", "m.reaction", (3, 0)),
    Child("$e1", "$t1", "m.replace", "m.room.message", (4, 0)),
    Child("$r2", "$r1", "m.annotation", "m.reaction", (5, 0)),
    Child("$deep", "$r2", "m.reference", "m.room.message", (6, 0)),
    Child("$loop", "$deep", "m.reference", "m.room.message", (7, 0)),
    Child("$root", "$loop", "m.reference", "m.room.message", (8, 0)),  # malformed cycle
]


def children_of(event_id: str) -> list[Child]:
    return [c for c in EDGES if c.parent_id == event_id]


def ids(children: list[Child]) -> list[str]:
    return [c.event_id for c in children]


def test_direct_and_recursive_children() -> None:
    assert ids(related("$root", children_of, RelationsQuery())) == ["$t1", "$t2"]
    deep = related("$root", children_of, RelationsQuery(recurse=True))
    assert ids(deep) == ["$t1", "$t2", "$r1", "$e1", "$r2"]  # three levels, no more


def test_filters_apply_at_every_level() -> None:
    only_threads = RelationsQuery(rel_type="m.thread", recurse=True)
    assert ids(related("$root", children_of, only_threads)) == ["$t1", "$t2"]
    reactions = RelationsQuery(rel_type="m.annotation", recurse=True)
    assert ids(related("$t1", children_of, reactions)) == ["$r1", "$r2"]
    typed = RelationsQuery(rel_type="m.annotation", event_type="m.room.message")
    assert related("$t1", children_of, typed) == []


def test_cycles_terminate_and_never_return_the_parent() -> None:
    around = related("$deep", children_of, RelationsQuery(recurse=True))
    assert ids(around) == ["$t1", "$t2", "$loop", "$root"]  # three levels of a cycle


def test_pages_backwards_and_forwards() -> None:
    positions = [(1, 0), (2, 0), (2, 1), (3, 0), (4, 0)]
    first = page(positions, start=None, end=None, forwards=False, limit=2)
    assert first.positions == [(4, 0), (3, 0)] and first.next_batch == "t3_0"
    second = page(positions, start=(3, 0), end=None, forwards=False, limit=2)
    assert second.positions == [(2, 1), (2, 0)] and second.next_batch == "t2_0"
    last = page(positions, start=(2, 0), end=None, forwards=False, limit=2)
    assert last.positions == [(1, 0)] and last.next_batch is None
    fwd = page(positions, start=(2, 0), end=(4, 0), forwards=True, limit=2)
    assert fwd.positions == [(2, 0), (2, 1)] and fwd.next_batch == "t2_2"
    assert page(positions, start=(2, 2), end=(4, 0), forwards=True, limit=2).positions == [(3, 0)]
    bounded = page(positions, start=None, end=(3, 0), forwards=False, limit=9)
    assert bounded.positions == [(4, 0), (3, 0)] and bounded.next_batch is None


def test_query_parsing() -> None:
    q = parse_query("m.thread", None, {"dir": "f", "limit": "5000", "recurse": "true"})
    assert q == RelationsQuery("m.thread", None, True, MAX_LIMIT, True)
    assert parse_query(None, None, {}) == RelationsQuery()
    for bad in ({"dir": "up"}, {"limit": "-1"}, {"limit": "ten"}, {"recurse": "yes"}):
        with pytest.raises(MatrixError) as err:
            parse_query(None, None, bad)
        assert err.value.errcode == "M_INVALID_PARAM"


def test_threads_list() -> None:
    threads = [
        ThreadRoot("$a", (5, 0), frozenset({"@me:hs"})),
        ThreadRoot("$b", (9, 0), frozenset({"@you:hs"})),
        ThreadRoot("$c", (7, 0), frozenset({"@me:hs", "@you:hs"})),
    ]
    roots, token = thread_page(threads, "@me:hs", include="all", start=None, limit=2)
    assert [t.root_id for t in roots] == ["$b", "$c"] and token == "t7_0"
    roots, token = thread_page(threads, "@me:hs", include="all", start=(7, 0), limit=2)
    assert [t.root_id for t in roots] == ["$a"] and token is None
    mine, _ = thread_page(threads, "@me:hs", include="participated", start=None, limit=9)
    assert [t.root_id for t in mine] == ["$c", "$a"]
    with pytest.raises(MatrixError):
        thread_page(threads, "@me:hs", include="some", start=None, limit=9)
