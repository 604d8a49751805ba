"""Connection state: which rooms a response carries, and what the connection remembers."""

from __future__ import annotations

from collections.abc import Collection

import pytest

from outlast.core.errors import MatrixError
from outlast.core.sliding.connection import ConnectionState, RoomPlan, plan
from outlast.core.sliding.lists import RoomListEntry, select_rooms
from outlast.core.sliding.pos import Pos, parse_pos, sync_part
from outlast.core.sliding.request import SlidingRequest, parse_request
from outlast.core.tokens import SyncToken

ROOMS = [RoomListEntry(f"!{i}:hs", "join", 100 - i) for i in range(5)]


def request(end: int, limit: int = 1, required: list[list[str]] | None = None) -> SlidingRequest:
    return parse_request(
        {
            "lists": {
                "all": {
                    "ranges": [[0, end]],
                    "timeline_limit": limit,
                    "required_state": required or [],
                }
            }
        }
    )


def run(
    req: SlidingRequest,
    state: ConnectionState,
    changed: Collection[str] = (),
    expanded: Collection[str] = (),
) -> tuple[list[RoomPlan], ConnectionState]:
    selection = select_rooms(req, ROOMS, state.rooms)
    return plan(selection, state, changed, expanded)


def test_first_response_sends_window_initial() -> None:
    plans, state = run(request(1), ConnectionState())
    assert [(p.room_id, p.initial) for p in plans] == [("!0:hs", True), ("!1:hs", True)]
    assert set(state.rooms) == {"!0:hs", "!1:hs"} and len(state.configs) == 1


def test_growing_the_range_sends_only_new_rooms() -> None:
    _, state = run(request(1), ConnectionState())
    plans, state = run(request(3), state)
    assert [p.room_id for p in plans] == ["!2:hs", "!3:hs"]
    assert all(p.initial for p in plans)


def test_changed_rooms_come_as_deltas_and_quiet_rooms_not_at_all() -> None:
    _, state = run(request(3), ConnectionState())
    plans, after = run(request(3), state, changed={"!1:hs", "!4:hs"})
    assert [(p.room_id, p.initial) for p in plans] == [("!1:hs", False)]
    assert after == state  # nothing to store: the same state serves the next pos


def test_rooms_outside_the_window_are_forgotten_once_they_change() -> None:
    _, state = run(request(3), ConnectionState())
    _, narrow = run(request(0), state, changed={"!2:hs"})
    assert "!2:hs" not in narrow.rooms and "!3:hs" in narrow.rooms
    plans, _ = run(request(3), narrow)
    assert [(p.room_id, p.initial) for p in plans] == [("!2:hs", True)]


def test_widened_timeline_and_state_are_sent_at_once() -> None:
    _, state = run(request(1), ConnectionState())
    plans, after = run(request(1, limit=10), state)
    assert [(p.room_id, p.expanded_timeline, p.initial) for p in plans] == [
        ("!0:hs", True, False),
        ("!1:hs", True, False),
    ]
    assert plans[0].previous is not None and plans[0].previous.timeline_limit == 1
    widened = after.config_of("!0:hs")
    assert widened is not None and widened.timeline_limit == 10
    plans, _ = run(request(1, required=[["m.room.topic", ""]]), state, expanded={"!0:hs"})
    assert [(p.room_id, p.expanded_timeline) for p in plans] == [("!0:hs", False)]


def test_state_round_trips_through_json() -> None:
    _, state = run(
        request(2, limit=3, required=[["m.room.member", "$LAZY"], ["*", "*"]]), ConnectionState()
    )
    assert ConnectionState.from_json(state.to_json()) == state


@pytest.mark.parametrize(
    "stored",
    [None, {}, {"configs": [], "rooms": {"!a": 0}}, {"configs": "x", "rooms": {}}],
)
def test_unreadable_state_is_unknown_pos(stored: object) -> None:
    with pytest.raises(MatrixError) as err:
        ConnectionState.from_json(stored)
    assert (err.value.status, err.value.errcode) == (400, "M_UNKNOWN_POS")


def test_pos_round_trip_and_errors() -> None:
    pos = Pos(1042, SyncToken((57, 12, 9), 3))
    assert pos.encode() == "c1042-s57_12_9.3"
    assert parse_pos(pos.encode(), 3) == pos
    assert sync_part(pos.encode()) == "s57_12_9.3" and sync_part("s1_2") == "s1_2"
    for bad in ["", "s57_12_9", "c-s1_2_3", "cx-s1_2_3", "c1-s1_2", "c1-t5_0", "c1" + "9" * 30]:
        with pytest.raises(MatrixError) as err:
            parse_pos(bad, 3)
        assert err.value.errcode == "M_UNKNOWN_POS"
