"""The space tree of ``GET /rooms/{roomId}/hierarchy``, walked over room state.

A space names its children with ``m.space.child`` state events (state key:
the child's room ID). The walk is depth-first, as the spec's endpoint says,
visits each room once (spaces may loop), follows a child only when the
requester may see it, and stops descending at ``max_depth``. Children are
visited in the spec's order ("Ordering of children within a space"): a
valid ``order`` string first, lexicographically, then the child event's
``origin_server_ts``, then the room ID.

Pagination is stateless: the ``from`` token counts the rooms already served
and repeats ``max_depth`` and ``suggested_only``, so a token used with other
values is refused (400 ``M_INVALID_PARAM``) and any worker at any site can
continue a page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from outlast.core.errors import MatrixError

SPACE_CHILD: Final = "m.space.child"
SPACE: Final = "m.space"
DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 50
MAX_DEPTH: Final = 10
# Rooms looked at per request, at most: a hostile space graph cannot make one page expensive.
MAX_VISITED: Final = 2000

_ORDER: Final = re.compile(r"[\x20-\x7e]{0,50}")
_TOKEN: Final = re.compile(r"h([0-9]{1,6})_([0-9]{1,2})_([01])")


@dataclass(frozen=True)
class SpaceRoom:
    """What the walk needs of one room: its public summary, its child events, and
    whether the requesting user may see it (joined, invited, world readable, public)."""

    entry: Mapping[str, Any]
    child_events: Sequence[Mapping[str, Any]]
    visible: bool


@dataclass(frozen=True)
class Request:
    """The query of one page: defaults applied, values checked."""

    max_depth: int
    suggested_only: bool
    limit: int
    skip: int


def _invalid(message: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", message)


def _integer(value: str | None, name: str, default: int, low: int) -> int:
    if value is None:
        return default
    if not value.isascii() or not value.isdigit() or len(value) > 9 or int(value) < low:
        raise _invalid(f"{name} must be an integer of at least {low}")
    return int(value)


def parse(query: Mapping[str, str]) -> Request:
    """Read ``max_depth``, ``suggested_only``, ``limit`` and ``from``; clamp to the maxima."""
    depth = min(_integer(query.get("max_depth"), "max_depth", MAX_DEPTH, 0), MAX_DEPTH)
    limit = min(_integer(query.get("limit"), "limit", DEFAULT_LIMIT, 1), MAX_LIMIT)
    # Python clients (matrix-nio) send the flag as "True"; its meaning is not in doubt.
    flag = query.get("suggested_only", "false").lower()
    if flag not in ("true", "false"):
        raise _invalid("suggested_only must be true or false")
    suggested = flag == "true"
    token = query.get("from")
    if token is None:
        return Request(depth, suggested, limit, 0)
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise _invalid("unknown from token")
    if (int(match.group(2)), match.group(3) == "1") != (depth, suggested):
        raise _invalid("max_depth and suggested_only cannot change while paginating")
    return Request(depth, suggested, limit, int(match.group(1)))


def token(request: Request, served: int) -> str:
    return f"h{served}_{request.max_depth}_{int(request.suggested_only)}"


def _valid_child(event: Mapping[str, Any], suggested_only: bool) -> bool:
    """A child counts when its ``via`` is a non-empty list (else it was removed)."""
    content = event.get("content")
    if not isinstance(content, Mapping) or not isinstance(event.get("state_key"), str):
        return False
    via = content.get("via")
    if not (isinstance(via, list) and via and all(isinstance(v, str) for v in via)):
        return False
    return not suggested_only or content.get("suggested") is True


def _order_key(event: Mapping[str, Any]) -> tuple[int, str, int, str]:
    order = event["content"].get("order")
    valid = isinstance(order, str) and _ORDER.fullmatch(order) is not None
    ts = event.get("origin_server_ts")
    return (
        0 if valid else 1,
        order if valid else "",
        ts if isinstance(ts, int) and not isinstance(ts, bool) else 0,
        str(event["state_key"]),
    )


def children(room: SpaceRoom, suggested_only: bool) -> list[Mapping[str, Any]]:
    """A space's valid child events in the spec's order; none for a room that is not a space."""
    if room.entry.get("room_type") != SPACE:
        return []
    valid = [e for e in room.child_events if _valid_child(e, suggested_only)]
    return sorted(valid, key=_order_key)


def children_state(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Child events as stripped state with ``origin_server_ts``, as the response carries them."""
    return [
        {
            "type": SPACE_CHILD,
            "state_key": e["state_key"],
            "content": e["content"],
            "sender": e.get("sender"),
            "origin_server_ts": e.get("origin_server_ts", 0),
        }
        for e in events
    ]


def _walk(
    root: str, lookup: Callable[[str], SpaceRoom | None], request: Request
) -> Iterator[dict[str, Any]]:
    stack: list[tuple[str, int]] = [(root, 0)]
    seen: set[str] = set()
    while stack and len(seen) < MAX_VISITED:
        room_id, depth = stack.pop()
        if room_id in seen:
            continue
        seen.add(room_id)
        room = lookup(room_id)
        if room is None or not room.visible:
            continue  # unknown here, or not the requester's to see: neither it nor below
        kids = children(room, request.suggested_only)
        yield {**room.entry, "children_state": children_state(kids)}
        if depth < request.max_depth:
            stack.extend((str(e["state_key"]), depth + 1) for e in reversed(kids))


def page(root: str, lookup: Callable[[str], SpaceRoom | None], request: Request) -> dict[str, Any]:
    """One page of the tree below (and including) ``root``; the caller has checked that the
    requester may see ``root`` itself."""
    rooms: list[dict[str, Any]] = []
    more = False
    for index, entry in enumerate(_walk(root, lookup, request)):
        if index < request.skip:
            continue
        if len(rooms) == request.limit:
            more = True
            break
        rooms.append(entry)
    body: dict[str, Any] = {"rooms": rooms}
    if more:
        body["next_batch"] = token(request, request.skip + len(rooms))
    return body
