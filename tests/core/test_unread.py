"""Unit tests for read positions, unread counts and notification counts (outlast.core.unread)."""

from __future__ import annotations

from typing import Any

from outlast.core.unread import (
    Receipt,
    counted,
    has_read,
    highlights,
    notification_counts,
    read_positions,
    receipt_content,
    threaded_notification_counts,
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


def test_only_messages_from_others_count() -> None:
    assert counted(message("hi"), ALICE)
    assert counted(message("", etype="m.room.encrypted"), ALICE)
    assert not counted(message("mine", sender=ALICE), ALICE)
    assert not counted({"type": "m.room.member", "sender": BOB}, ALICE)


def test_highlight_on_user_id_display_name_or_intentional_mention() -> None:
    assert highlights({"body": f"ping {ALICE}"}, ALICE, None)
    assert highlights({"body": "Hey ALICE, lunch?"}, ALICE, "Alice")
    assert highlights({"body": "x", "m.mentions": {"user_ids": [ALICE]}}, ALICE, None)
    assert not highlights({"body": "Hey Alicent"}, ALICE, "Alice")  # whole words only
    assert not highlights({"body": "nothing here"}, ALICE, "Alice")
    assert not highlights({"body": "x", "m.mentions": {"user_ids": [BOB]}}, ALICE, None)


def test_highlight_copes_with_odd_content() -> None:
    assert not highlights(None, ALICE, "Alice")
    assert not highlights({"body": 5}, ALICE, "Alice")
    assert not highlights({"body": "a.b"}, ALICE, "   ")
    assert highlights({"body": "see (a.b)"}, ALICE, "a.b")  # names are matched literally
    assert not highlights({"body": "see axb"}, ALICE, "a.b")


def test_notification_counts() -> None:
    events = [
        message("hello"),
        message("alice, are you there?", sender=CAROL),
        message("my own", sender=ALICE),
        message("Alice", etype="m.room.encrypted"),  # unreadable: counts, never highlights
        {"type": "m.reaction", "sender": BOB, "content": {}},
    ]
    assert notification_counts(events, ALICE, "Alice") == {
        "notification_count": 3,
        "highlight_count": 1,
    }
    assert notification_counts([], ALICE, "Alice") == {
        "notification_count": 0,
        "highlight_count": 0,
    }


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


# --- threaded counts (unread_thread_notifications) -------------------------------


def test_threads_and_the_main_timeline_are_read_by_their_own_receipts() -> None:
    events = [
        ((1, 0), "main", message("main one")),
        ((2, 0), "$root", message("in the thread")),
        ((3, 0), "$root", message(f"{ALICE}, in the thread")),
        ((4, 0), "main", message("main two")),
        ((5, 0), "$other", message("another thread")),
    ]
    nothing_read = threaded_notification_counts(events, {}, ALICE, None)
    assert nothing_read == (
        {"notification_count": 2, "highlight_count": 0},
        {
            "$root": {"notification_count": 2, "highlight_count": 1},
            "$other": {"notification_count": 1, "highlight_count": 0},
        },
    )
    # A receipt in a thread reads that thread only, however far on it is.
    main, threads = threaded_notification_counts(events, {"$root": (3, 0)}, ALICE, None)
    assert main["notification_count"] == 2 and "$root" not in threads
    # A main-timeline receipt leaves threads unread.
    main, threads = threaded_notification_counts(events, {"main": (4, 0)}, ALICE, None)
    assert main["notification_count"] == 0 and threads["$root"]["notification_count"] == 2
    # The unthreaded receipt reads everything up to it, in every thread.
    main, threads = threaded_notification_counts(events, {"": (3, 0)}, ALICE, None)
    assert main["notification_count"] == 1 and set(threads) == {"$other"}
