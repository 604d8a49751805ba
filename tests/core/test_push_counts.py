"""Notification counts from push actions, reset by (threaded) read receipts."""

from __future__ import annotations

from typing import Any

from outlast.core import auth
from outlast.core.push_counts import (
    MAIN,
    Counts,
    Notification,
    ReadUpTo,
    RoomCounts,
    badge,
    notification,
    read_up_to,
    room_counts,
    thread_of,
)
from outlast.core.push_eval import Outcome, Recipient, compile_rules, evaluate
from outlast.core.unread import Position

HIGHLIGHT = {"set_tweak": "highlight"}


def rel(rel_type: str | None, target: str) -> dict[str, Any]:
    relation: dict[str, Any] = {"event_id": target}
    if rel_type:
        relation["rel_type"] = rel_type
    return {"content": {"body": "x", "m.relates_to": relation}}


# The spec's threaded-receipts example: A and B are thread roots; C, E, G, H
# are in thread A; D and F in thread B; I is in the main timeline.
EVENTS: dict[str, dict[str, Any]] = {
    "$A": {"content": {"body": "root a"}},
    "$B": {"content": {"body": "root b"}},
    "$C": rel("m.thread", "$A"),
    "$D": rel("m.thread", "$B"),
    "$E": rel("m.thread", "$A"),
    "$F": rel("m.thread", "$B"),
    "$G": rel("m.thread", "$A"),
    "$H": rel("m.thread", "$A"),
    "$I": {"content": {"body": "main"}},
}
ORDER = list(EVENTS)
LETTERS = [e[1:] for e in ORDER]


def pos(event_id: str) -> Position:
    return (ORDER.index(event_id) + 1, 0)


def notifications(highlighted: frozenset[str] = frozenset()) -> list[Notification]:
    return [Notification(pos(e), thread_of(EVENTS[e], EVENTS.get), e in highlighted) for e in ORDER]


def unread_ids(read: ReadUpTo) -> list[str]:
    """The letters of the events still unread."""
    return [
        e[1:]
        for e, n in zip(ORDER, notifications(), strict=True)
        if not read.has_read(n.position, n.thread_id)
    ]


def test_thread_of_follows_relations_for_three_hops() -> None:
    assert [thread_of(EVENTS[e], EVENTS.get) for e in ORDER] == [
        MAIN, MAIN, "$A", "$B", "$A", "$B", "$A", "$A", MAIN,
    ]  # fmt: skip
    events = dict(EVENTS)
    events["$r1"] = rel("m.annotation", "$C")  # a reaction to a threaded reply: in thread A
    events["$r2"] = rel("m.reference", "$r1")
    events["$r3"] = rel("m.reference", "$r2")  # four relations from the root: too far
    events["$root_edit"] = rel("m.replace", "$A")  # related to the root, not in a thread
    assert thread_of(events["$r1"], events.get) == "$A"
    assert thread_of(events["$r2"], events.get) == "$A"
    assert thread_of(events["$r3"], events.get) == MAIN
    assert thread_of(events["$root_edit"], events.get) == MAIN
    assert thread_of(rel("m.annotation", "$unknown"), events.get) == MAIN
    reply = {"content": {"m.relates_to": {"m.in_reply_to": {"event_id": "$C"}}}}
    assert thread_of(reply, events.get) == MAIN  # a rich reply is not a relation


def test_spec_threaded_receipt_examples() -> None:
    # A threaded receipt on I (main) marks A, B and I read.
    assert unread_ids(read_up_to([("m.read", MAIN, pos("$I"))])) == list("CDEFGH")
    # A threaded receipt on E (thread A) marks C and E read.
    assert unread_ids(read_up_to([("m.read", "$A", pos("$E"))])) == list("ABDFGHI")
    # An unthreaded receipt on D marks A, B, C and D read.
    assert unread_ids(read_up_to([("m.read", "", pos("$D"))])) == list("EFGHI")
    # Reading root A does not read its thread.
    assert unread_ids(read_up_to([("m.read", MAIN, pos("$A"))])) == list("BCDEFGHI")


def test_the_furthest_of_public_and_private_receipts_counts() -> None:
    # The spec's example: m.read at C and m.read.private at A: read up to C.
    read = read_up_to([("m.read", "", pos("$C")), ("m.read.private", "", pos("$A"))])
    assert read.unthreaded == pos("$C")
    read = read_up_to(
        [
            ("m.read", "", pos("$C")),
            ("m.read.private", "", pos("$D")),
            ("m.fully_read", "", pos("$I")),
        ]
    )
    assert read.unthreaded == pos("$D")  # a fully-read marker clears nothing
    assert read_up_to([]).unthreaded is None and unread_ids(read_up_to([])) == LETTERS


def test_room_counts_whole_room_and_per_thread() -> None:
    items = notifications(frozenset({"$C", "$I"}))
    nothing_read = ReadUpTo()
    assert room_counts(items, nothing_read) == RoomCounts(Counts(9, 2))
    split = room_counts(items, nothing_read, threaded=True)
    assert split.room == Counts(3, 1)  # A, B, I
    assert split.threads == {"$A": Counts(4, 1), "$B": Counts(2, 0)}
    after = room_counts(items, read_up_to([("m.read", "$A", pos("$H"))]), threaded=True)
    assert after.threads == {"$B": Counts(2, 0)}  # a fully read thread is omitted
    assert after.sync_fields(threaded=True) == {
        "unread_notifications": {"notification_count": 3, "highlight_count": 1},
        "unread_thread_notifications": {"$B": {"notification_count": 2, "highlight_count": 0}},
    }
    everything = room_counts(items, read_up_to([("m.read", "", pos("$I"))]), threaded=True)
    assert everything.sync_fields(threaded=True) == {
        "unread_notifications": {"notification_count": 0, "highlight_count": 0},
        "unread_thread_notifications": {},  # asked for: present, if empty
    }
    assert "unread_thread_notifications" not in everything.sync_fields(threaded=False)
    assert badge([split, after, everything]) == 9 + 5


def test_counts_come_from_the_evaluated_rules() -> None:
    alice, bob = "@alice:x", "@bob:x"
    who = Recipient(alice, "Alice", 3, auth.power_levels({}))
    rules = compile_rules(alice, None)
    events = [
        {"type": "m.room.message", "sender": bob, "content": {"msgtype": "m.text", "body": "hi"}},
        {
            "type": "m.room.message",
            "sender": bob,
            "content": {"msgtype": "m.notice", "body": "bot"},
        },
        {
            "type": "m.room.message",
            "sender": bob,
            "content": {"body": "hey", "m.mentions": {"user_ids": [alice]}},
        },
        {"type": "m.room.message", "sender": alice, "content": {"body": "mine"}},
        {"type": "m.reaction", "sender": bob, "content": {}},
        {"type": "m.room.encrypted", "sender": bob, "content": {"ciphertext": "..."}},
    ]
    items = [notification(evaluate(rules, e, who), (i, 0), MAIN) for i, e in enumerate(events)]
    kept = [n for n in items if n is not None]
    assert [n.position[0] for n in kept] == [0, 2, 5]
    assert room_counts(kept, ReadUpTo()).room == Counts(3, 1)
    assert room_counts(kept, read_up_to([("m.read", "", (2, 0))])).room == Counts(1, 0)
    assert notification(Outcome((HIGHLIGHT,)), (1, 0), MAIN) is None
