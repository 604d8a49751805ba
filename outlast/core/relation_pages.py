"""Paging for ``/relations/{eventId}[/{relType}[/{eventType}]]`` and ``/threads``.

Both answer from plain rows that carry a room position (the same
``(seq, idx)`` order as ``/messages``) and use the same boundary tokens
(:mod:`outlast.core.tokens`), so a ``/messages`` or ``/sync`` token works as
``from``/``to`` too, as the spec allows.

``recurse=true`` follows relations of relations up to :data:`MAX_DEPTH`
levels (the spec asks for at least three). The ``relType``/``eventType``
filters apply to every level, and recursion only passes through events that
match them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from outlast.core.errors import invalid_param
from outlast.core.tokens import Position, encode_boundary

MAX_DEPTH: Final = 3
DEFAULT_LIMIT: Final = 5  # Synapse's default too; clients usually pass one
MAX_LIMIT: Final = 1000


@dataclass(frozen=True)
class Child:
    """One relation edge: ``event_id`` relates to ``parent_id`` with ``rel_type``."""

    event_id: str
    parent_id: str
    rel_type: str
    event_type: str
    position: Position


@dataclass(frozen=True)
class RelationsQuery:
    rel_type: str | None = None
    event_type: str | None = None
    forwards: bool = False
    limit: int = DEFAULT_LIMIT
    recurse: bool = False


def parse_query(
    rel_type: str | None,
    event_type: str | None,
    query: Mapping[str, str],
) -> RelationsQuery:
    """Validate the query string (``dir``, ``limit``, ``recurse``); 400 on nonsense."""
    direction = query.get("dir", "b")
    if direction not in ("b", "f"):
        raise invalid_param("dir must be b or f")
    raw_limit = query.get("limit")
    limit = DEFAULT_LIMIT
    if raw_limit is not None:
        if not (raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) < 10):
            raise invalid_param("limit must be a non-negative integer")
        limit = min(int(raw_limit), MAX_LIMIT)
    recurse = query.get("recurse", query.get("org.matrix.msc3981.recurse", "false"))
    if recurse not in ("true", "false"):
        raise invalid_param("recurse must be true or false")
    return RelationsQuery(rel_type, event_type, direction == "f", limit, recurse == "true")


def _matches(child: Child, query: RelationsQuery) -> bool:
    if query.rel_type is not None and child.rel_type != query.rel_type:
        return False
    return query.event_type is None or child.event_type == query.event_type


def related(
    parent_id: str,
    children_of: Callable[[str], Sequence[Child]],
    query: RelationsQuery,
) -> list[Child]:
    """Every matching child of ``parent_id`` (and, recursing, of matching children).

    ``children_of`` returns the direct children of an event (one view query);
    the walk visits each event once, so a malformed cycle cannot loop.
    """
    found: dict[str, Child] = {}
    frontier = [parent_id]
    for _ in range(MAX_DEPTH if query.recurse else 1):
        next_frontier: list[str] = []
        for event_id in frontier:
            for child in children_of(event_id):
                if child.event_id in found or child.event_id == parent_id:
                    continue
                if _matches(child, query):
                    found[child.event_id] = child
                    next_frontier.append(child.event_id)
        frontier = next_frontier
        if not frontier:
            break
    return sorted(found.values(), key=lambda c: c.position)


@dataclass(frozen=True)
class Page:
    """A page of positions, and the token for the next page if there is one."""

    positions: list[Position]
    next_batch: str | None


def page(
    positions: Sequence[Position],
    *,
    start: Position | None,
    end: Position | None,
    forwards: bool,
    limit: int,
) -> Page:
    """Cut one page out of ascending ``positions`` between two boundaries.

    Backwards (the default) returns the newest first, strictly before
    ``start`` and not before ``end``; forwards the oldest first, from
    ``start`` up to (not including) ``end``.
    """
    if forwards:
        rows = [p for p in positions if (start is None or p >= start) and (end is None or p < end)]
    else:
        rows = [
            p
            for p in reversed(positions)
            if (start is None or p < start) and (end is None or p >= end)
        ]
    chosen = rows[:limit]
    if len(rows) <= limit or not chosen:
        return Page(chosen, None)
    last = chosen[-1]
    return Page(chosen, encode_boundary((last[0], last[1] + 1) if forwards else last))


@dataclass(frozen=True)
class ThreadRoot:
    """A thread as ``/threads`` lists it: ordered by its latest event."""

    root_id: str
    latest: Position
    participants: frozenset[str]


def thread_page(
    threads: Sequence[ThreadRoot],
    user_id: str,
    *,
    include: str,
    start: Position | None,
    limit: int,
) -> tuple[list[ThreadRoot], str | None]:
    """One page of ``GET /rooms/{roomId}/threads``, most recently active thread first.

    ``include=participated`` keeps threads whose root or replies the user sent.
    """
    if include not in ("all", "participated"):
        raise invalid_param("include must be all or participated")
    wanted = [t for t in threads if include == "all" or user_id in t.participants]
    by_latest = sorted(wanted, key=lambda t: t.latest)
    cut = page([t.latest for t in by_latest], start=start, end=None, forwards=False, limit=limit)
    index = {t.latest: t for t in by_latest}
    return [index[p] for p in cut.positions], cut.next_batch
