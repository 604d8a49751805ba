"""Unit tests for read positions and the per-message unread count (outlast.core.unread)."""

from __future__ import annotations

from typing import Any

from outlast.core.unread import (
    Receipt,
    has_read,
    read_positions,
    receipt_content,
    unread_count,
    visible_to,
)

ALICE = "@alice:example.test"
BOB = "@bob:example.test"
CAROL = "@carol:example.test"


def message(
    body: str, sender: str = BOB, etype: str = "m.room.message", **extra: Any
) -> dict[str, Any]:
    return {
        "type": etype,
        "sender": sender,
        "content": {"msgtype": "m.text", "body": body, **extra},
    }


# --- read positions -----------------------------------------------------------


def test_read_position_is_the_furthest_receipt_of_each_user() -> None:
    got = read_positions([(BOB, (5, 0)), (BOB, (7, 1)), (BOB, (6, 3)), (CAROL, (2, 0))])
    assert got == {BOB: (7, 1), CAROL: (2, 0)}


def test_read_positions_of_nothing_is_empty() -> None:
    assert read_positions([]) == {}


def test_a_receipt_on_the_event_or_a_later_one_means_read() -> None:
    assert has_read((5, 0), (5, 0))
    assert has_read((5, 0), (5, 1))
    assert has_read((5, 2), (6, 0))
    assert not has_read((5, 1), (5, 0))
    assert not has_read((5, 0), None)


# --- the per-message unread count ---------------------------------------------------


def test_unread_count_excludes_the_sender_and_counts_members_without_receipts() -> None:
    joined = [ALICE, BOB, CAROL]
    assert unread_count((10, 0), ALICE, joined, {}) == 2
    assert unread_count((10, 0), ALICE, joined, {BOB: (10, 0)}) == 1
    assert unread_count((10, 0), ALICE, joined, {BOB: (10, 0), CAROL: (12, 0)}) == 0


def test_unread_count_ignores_receipts_before_the_event_and_members_who_left() -> None:
    assert unread_count((10, 0), ALICE, [ALICE, BOB], {BOB: (9, 5), CAROL: (20, 0)}) == 1
    assert unread_count((10, 0), ALICE, [ALICE], {}) == 0


def test_unread_count_counts_each_member_once() -> None:
    assert unread_count((1, 0), ALICE, [BOB, BOB, CAROL], {}) == 2


# --- notification counts ------------------------------------------------------------


# --- receipt events ---------------------------------------------------------------


def test_receipt_content_groups_by_event_type_and_user() -> None:
    receipts = [
        Receipt(BOB, "m.read", "", "$e1", 100),
        Receipt(CAROL, "m.read", "main", "$e1", 200),
        Receipt(CAROL, "m.read.private", "", "$e2", 300),
    ]
    assert receipt_content(receipts) == {
        "$e1": {"m.read": {BOB: {"ts": 100}, CAROL: {"ts": 200, "thread_id": "main"}}},
        "$e2": {"m.read.private": {CAROL: {"ts": 300}}},
    }


def test_private_receipts_are_visible_to_their_owner_only() -> None:
    private = Receipt(BOB, "m.read.private", "", "$e", 1)
    public = Receipt(BOB, "m.read", "", "$e", 1)
    assert visible_to(private, BOB)
    assert not visible_to(private, ALICE)
    assert visible_to(public, ALICE)


def test_members_who_joined_after_a_message_do_not_count() -> None:
    from outlast.core.unread import unread_count

    joined_at = {"@a:x": (1, 0), "@b:x": (1, 1), "@late:x": (9, 0)}
    # Message at (5, 0) by a: b has not read it; late joined afterwards.
    assert unread_count((5, 0), "@a:x", joined_at.keys(), {}, joined_at) == 1
    assert unread_count((5, 0), "@a:x", joined_at.keys(), {}) == 2
    # A message after late joined counts them.
    assert unread_count((10, 0), "@a:x", joined_at.keys(), {}, joined_at) == 2
