"""The /_matrix/push/v1/notify bodies and the retry schedule, without a gateway."""

from __future__ import annotations

from typing import Any

import pytest

from outlast.core.push_gateway import (
    Backoff,
    Pusher,
    RoomNames,
    badge_notification,
    counts,
    delivered,
    event_notification,
    priority,
    rejected_pushkeys,
)

ALICE = "@alice:example.org"
STORED_DATA: dict[str, Any] = {
    "url": "https://push.example.org/_matrix/push/v1/notify",
    "custom": {"k": 1},
}
STORED: dict[str, Any] = {
    "app_id": "org.example.app.ios",
    "pushkey": "V2h5IG9uIGVhcnRoIGRpZCB5b3UgZGVjb2RlIHRoaXM/",
    "kind": "http",
    "app_display_name": "App",
    "device_display_name": "Phone",
    "lang": "en",
    "data": STORED_DATA,
}
MESSAGE = {
    "event_id": "$3957tyerfgewrf384",
    "room_id": "!slw48wfj34rtnrf:example.com",
    "type": "m.room.message",
    "sender": "@exampleuser:matrix.org",
    "origin_server_ts": 1,
    "content": {"msgtype": "m.text", "body": "I'm floating in a most peculiar way."},
}


def pusher(**data: Any) -> Pusher:
    stored = {**STORED, "data": {**STORED_DATA, **data}}
    made = Pusher.from_stored(stored, 12345678)
    assert made is not None
    return made


def test_full_format_carries_the_event_and_its_names() -> None:
    names = RoomNames("Major Tom", "Mission Control", "#exampleroom:matrix.org")
    body = event_notification(MESSAGE, pusher(), ALICE, {"sound": "bing"}, 2, names)
    assert body == {
        "notification": {
            "event_id": "$3957tyerfgewrf384",
            "room_id": "!slw48wfj34rtnrf:example.com",
            "type": "m.room.message",
            "sender": "@exampleuser:matrix.org",
            "sender_display_name": "Major Tom",
            "room_name": "Mission Control",
            "room_alias": "#exampleroom:matrix.org",
            "prio": "high",
            "content": {"msgtype": "m.text", "body": "I'm floating in a most peculiar way."},
            "counts": {"unread": 2},
            "devices": [
                {
                    "app_id": "org.example.app.ios",
                    "pushkey": "V2h5IG9uIGVhcnRoIGRpZCB5b3UgZGVjb2RlIHRoaXM/",
                    "pushkey_ts": 12345678,
                    "data": {"custom": {"k": 1}},  # everything but the url
                    "tweaks": {"sound": "bing"},
                }
            ],
        }
    }


def test_unknown_names_are_left_out() -> None:
    note = event_notification(MESSAGE, pusher(), ALICE, {}, 0)["notification"]
    assert not {"sender_display_name", "room_name", "room_alias", "user_is_target"} & set(note)
    assert note["counts"] == {"unread": 0} and note["prio"] == "low"
    assert "tweaks" not in note["devices"][0]


def test_event_id_only_format_keeps_format_in_data() -> None:
    note = event_notification(
        MESSAGE, pusher(format="event_id_only"), ALICE, {"highlight": True}, 1, RoomNames("Tom")
    )["notification"]
    assert set(note) == {"event_id", "room_id", "counts", "prio", "devices"}
    assert note["devices"][0]["data"] == {"format": "event_id_only", "custom": {"k": 1}}
    assert note["prio"] == "high"


def test_member_events_say_whether_the_user_is_the_target() -> None:
    invite = {
        **MESSAGE,
        "type": "m.room.member",
        "state_key": ALICE,
        "content": {"membership": "invite"},
    }
    assert event_notification(invite, pusher(), ALICE, {}, 1)["notification"]["user_is_target"]
    other = {**invite, "state_key": "@carol:example.org"}
    assert not event_notification(other, pusher(), ALICE, {}, 1)["notification"]["user_is_target"]


def test_badge_only_form() -> None:
    assert badge_notification(pusher(), 0) == {
        "notification": {
            "counts": {"unread": 0},
            "prio": "low",
            "devices": [
                {
                    "app_id": "org.example.app.ios",
                    "pushkey": "V2h5IG9uIGVhcnRoIGRpZCB5b3UgZGVjb2RlIHRoaXM/",
                    "pushkey_ts": 12345678,
                    "data": {"custom": {"k": 1}},
                }
            ],
        }
    }


def test_counts_and_priority() -> None:
    assert counts(3) == {"unread": 3} and counts(-1) == {"unread": 0}
    assert counts(1, missed_calls=2) == {"unread": 1, "missed_calls": 2}
    assert priority("m.room.encrypted", {}) == "high"
    assert priority("m.room.message", {"sound": "default"}) == "high"
    assert priority("m.room.message", {"highlight": False}) == "low"
    assert priority("m.room.message", {}) == "low"


def test_only_http_pushers_with_a_url_deliver() -> None:
    assert Pusher.from_stored({**STORED, "kind": "email"}, 1) is None
    assert Pusher.from_stored({**STORED, "data": {}}, 1) is None
    assert Pusher.from_stored({**STORED, "data": "x"}, 1) is None
    assert pusher().url == "https://push.example.org/_matrix/push/v1/notify"
    assert not pusher().event_id_only and pusher(format="event_id_only").event_id_only


def test_rejected_pushkeys_are_only_those_sent() -> None:
    sent = ["a", "b"]
    assert rejected_pushkeys({"rejected": ["a", "zzz", 3]}, sent) == {"a"}
    assert rejected_pushkeys({"rejected": []}, sent) == set()
    bad: Any
    for bad in (None, [], {"rejected": "a"}, {}):
        assert rejected_pushkeys(bad, sent) == set()


@pytest.mark.parametrize(
    ("status", "ok"), [(200, True), (204, True), (None, False), (404, False), (502, False)]
)
def test_delivered(status: int | None, ok: bool) -> None:
    assert delivered(status) is ok


def test_backoff_doubles_to_a_cap_then_gives_up() -> None:
    backoff = Backoff()
    assert backoff.schedule(11) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert backoff.delay(10_000) == 300  # no overflow
    assert backoff.delay(0) == 1
    assert backoff.delay(3, jitter=1.0) == 3.0 and backoff.delay(3, jitter=7) == 3.0
    assert backoff.delay(3, jitter=0.5) == 3.5
    assert not backoff.gives_up(first_failure=100.0, now=100.0 + 3599)
    assert backoff.gives_up(first_failure=100.0, now=100.0 + 3600)
    fast = Backoff(initial=0.1, factor=3, cap=1.0, give_up_after=5)
    assert fast.schedule(4) == pytest.approx([0.1, 0.3, 0.9, 1.0])
