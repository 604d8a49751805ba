"""Apply log messages to a real SQLite view and check the rows (outlast.view.apply)."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections import Counter
from typing import Any

import pytest

from outlast.log.client import LogMessage
from outlast.log.names import Names
from outlast.view.apply import apply_message
from outlast.view.state_cache import BatchStates, StateCache

PARTITIONS = 1
NAMES = Names(partitions=PARTITIONS)
STREAMS = [s.name for s in NAMES.streams()]
ALICE = "@alice:example.test"
BOB = "@bob:example.test"
ROOM = "!room:example.test"
SUBJECTS = NAMES.room_subjects(ROOM)
_ids = itertools.count()


class View:
    """A view database plus a fake log that numbers each stream's messages."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.seqs: Counter[str] = Counter()

    def send(self, stream: str, subject: str, data: dict[str, Any]) -> set[str]:
        self.seqs[stream] += 1
        msg = LogMessage(stream, self.seqs[stream], subject, data)
        self.conn.execute("BEGIN IMMEDIATE")
        affected = apply_message(self.conn, msg)
        self.conn.execute("COMMIT")
        return affected

    def account(self, user: str, data: dict[str, Any]) -> set[str]:
        return self.send(NAMES.users_stream, NAMES.user_account_subject(user), data)

    def session(self, user: str, data: dict[str, Any]) -> set[str]:
        return self.send(NAMES.users_stream, NAMES.user_session_subject(user), data)

    def state(self, *events: dict[str, Any], **extra: Any) -> set[str]:
        return self.send(
            SUBJECTS.stream, SUBJECTS.state, {"op": "events", "events": list(events), **extra}
        )

    def timeline(self, *events: dict[str, Any], **extra: Any) -> set[str]:
        return self.send(
            SUBJECTS.stream, SUBJECTS.timeline, {"op": "events", "events": list(events), **extra}
        )

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.conn.execute(sql, args)]

    def value(self, sql: str, *args: Any) -> Any:
        row = self.conn.execute(sql, args).fetchone()
        return None if row is None else row[0]


# --- builders ---------------------------------------------------------------


def device(device_id: str, token: str, display_name: str | None = None) -> dict[str, Any]:
    return {"device_id": device_id, "token_hash": token, "display_name": display_name}


def register(user: str = ALICE, dev: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "op": "register",
        "user_id": user,
        "password_hash": "hash0",
        "ts": 5,
        "device": dev,
        "admin": 0,
    }


def event(
    etype: str,
    content: dict[str, Any],
    state_key: str | None = None,
    sender: str = ALICE,
    event_id: str | None = None,
) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event_id": event_id or f"$ev{next(_ids)}",
        "room_id": ROOM,
        "sender": sender,
        "type": etype,
        "content": content,
        "origin_server_ts": 1,
    }
    if state_key is not None:
        ev["state_key"] = state_key
    return ev


def member(user: str, membership: str, sender: str | None = None) -> dict[str, Any]:
    return event("m.room.member", {"membership": membership}, user, sender or user)


def message(body: str, sender: str = ALICE) -> dict[str, Any]:
    return event("m.room.message", {"msgtype": "m.text", "body": body}, sender=sender)


def new_room() -> list[dict[str, Any]]:
    return [
        event("m.room.create", {"room_version": "11"}, ""),
        member(ALICE, "join"),
        event("m.room.power_levels", {"users": {ALICE: 100}}, ""),
    ]


def tokens(view: View, user: str = ALICE) -> list[tuple[Any, ...]]:
    return view.rows("SELECT token_hash, device_id FROM tokens WHERE user_id = ? ORDER BY 1", user)


def devices(view: View, user: str = ALICE) -> list[str]:
    return [
        r[0] for r in view.rows("SELECT device_id FROM devices WHERE user_id = ? ORDER BY 1", user)
    ]


def members(view: View) -> dict[str, str]:
    return dict(view.rows("SELECT user_id, membership FROM members WHERE room_id = ?", ROOM))


def state_seq(view: View) -> int:
    return int(view.value("SELECT state_seq FROM rooms WHERE room_id = ?", ROOM))


# --- accounts and sessions --------------------------------------------------


def test_register_creates_user_device_and_token(view: View) -> None:
    assert view.account(ALICE, register(dev=device("D1", "h1", "phone"))) == {ALICE}
    assert view.rows(
        "SELECT user_id, password_hash, deactivated, account_seq, created_ts FROM users"
    ) == [(ALICE, "hash0", 0, 1, 5)]
    assert view.rows("SELECT device_id, display_name FROM devices") == [("D1", "phone")]
    assert tokens(view) == [("h1", "D1")]


def test_register_without_login_has_no_device(view: View) -> None:
    view.account(ALICE, register())
    assert view.value("SELECT COUNT(*) FROM users") == 1
    assert devices(view) == [] and tokens(view) == []


def test_second_register_of_same_user_is_ignored(view: View) -> None:
    view.account(ALICE, register())
    view.account(ALICE, {**register(), "password_hash": "other"})
    assert view.rows("SELECT password_hash, account_seq FROM users") == [("hash0", 1)]


def test_login_adds_device_and_reusing_device_replaces_its_token(view: View) -> None:
    view.account(ALICE, register(dev=device("D1", "h1", "phone")))
    view.session(ALICE, {"op": "login", "user_id": ALICE, "device": device("D2", "h2")})
    assert tokens(view) == [("h1", "D1"), ("h2", "D2")]
    view.session(ALICE, {"op": "login", "user_id": ALICE, "device": device("D1", "h3")})
    assert tokens(view) == [("h2", "D2"), ("h3", "D1")]
    assert view.value("SELECT display_name FROM devices WHERE device_id = 'D1'") == "phone"


def test_logout_removes_only_that_token_and_device(view: View) -> None:
    view.account(ALICE, register(dev=device("D1", "h1")))
    view.session(ALICE, {"op": "login", "user_id": ALICE, "device": device("D2", "h2")})
    assert view.session(ALICE, {"op": "logout", "user_id": ALICE, "token_hash": "h1"}) == {ALICE}
    assert tokens(view) == [("h2", "D2")]
    assert devices(view) == ["D2"]


def keys_of(view: View, device_id: str) -> dict[str, Any]:
    return {
        table: view.value(f"SELECT COUNT(*) FROM {table} WHERE device_id = ?", device_id)
        for table in ("e2e_device_keys", "e2e_one_time_keys", "to_device_inbox")
    }


@pytest.mark.parametrize(
    "removal",
    [
        {"op": "logout", "user_id": ALICE, "token_hash": "h1"},
        {"op": "logout_all", "user_id": ALICE},
        {"op": "device_delete", "user_id": ALICE, "device_ids": ["D1"]},
        {"op": "deactivate", "user_id": ALICE},
    ],
)
def test_a_device_that_goes_takes_its_keys_and_inbox_and_is_a_device_list_change(
    view: View, removal: dict[str, Any]
) -> None:
    """The step a trigger on ``devices`` used to take unseen, now explicit in view/apply.py."""
    view.account(ALICE, register(dev=device("D1", "h1")))
    view.send(
        NAMES.users_stream,
        NAMES.device_keys_subject(ALICE, "D1"),
        {
            "op": "keys_upload",
            "user_id": ALICE,
            "device_id": "D1",
            "device_keys": {"user_id": ALICE, "device_id": "D1", "keys": {}},
            "one_time_keys": {"signed_curve25519:A": {"key": "k"}},
        },
    )
    view.send(
        NAMES.users_stream,
        NAMES.user_subject(ALICE, "todevice"),
        {
            "op": "to_device",
            "sender": BOB,
            "sender_device": "B1",
            "txn_id": "t",
            "type": "m.x",
            "target": ALICE,
            "messages": {"D1": {"a": 1}},
        },
    )
    assert keys_of(view, "D1") == {
        "e2e_device_keys": 1,
        "e2e_one_time_keys": 1,
        "to_device_inbox": 1,
    }
    changes_before = view.rows("SELECT seq FROM device_list_changes WHERE user_id = ?", ALICE)
    view.send(NAMES.users_stream, NAMES.user_session_subject(ALICE), removal)
    removed_at = view.seqs[NAMES.users_stream]
    assert devices(view) == []
    assert keys_of(view, "D1") == dict.fromkeys(keys_of(view, "D1"), 0)
    changes = view.rows("SELECT seq FROM device_list_changes WHERE user_id = ?", ALICE)
    assert changes == [*changes_before, (removed_at,)]


def test_logout_of_unknown_token_changes_nothing(view: View) -> None:
    view.account(ALICE, register(dev=device("D1", "h1")))
    view.session(ALICE, {"op": "logout", "user_id": ALICE, "token_hash": "nope"})
    assert tokens(view) == [("h1", "D1")]


def test_logout_all_removes_every_token_of_that_user_only(view: View) -> None:
    view.account(ALICE, register(dev=device("D1", "h1")))
    view.session(ALICE, {"op": "login", "user_id": ALICE, "device": device("D2", "h2")})
    view.account(BOB, register(BOB, device("B1", "hb")))
    view.session(ALICE, {"op": "logout_all", "user_id": ALICE})
    assert tokens(view) == [] and devices(view) == []
    assert tokens(view, BOB) == [("hb", "B1")]


def test_password_change_can_keep_only_the_current_device(view: View) -> None:
    view.account(ALICE, register(dev=device("D1", "h1")))
    view.session(ALICE, {"op": "login", "user_id": ALICE, "device": device("D2", "h2")})
    view.account(
        ALICE,
        {
            "op": "password",
            "user_id": ALICE,
            "password_hash": "hash1",
            "logout_devices": True,
            "keep_device": "D2",
        },
    )
    assert view.rows("SELECT password_hash, account_seq FROM users") == [("hash1", 3)]
    assert tokens(view) == [("h2", "D2")]
    assert devices(view) == ["D2"]


def test_password_change_without_logout_keeps_devices(view: View) -> None:
    view.account(ALICE, register(dev=device("D1", "h1")))
    view.account(
        ALICE,
        {
            "op": "password",
            "user_id": ALICE,
            "password_hash": "hash1",
            "logout_devices": False,
            "keep_device": "D1",
        },
    )
    assert tokens(view) == [("h1", "D1")]


def test_deactivate_clears_password_and_all_sessions(view: View) -> None:
    view.account(ALICE, register(dev=device("D1", "h1")))
    view.account(ALICE, {"op": "deactivate", "user_id": ALICE})
    assert view.rows("SELECT deactivated, password_hash, account_seq FROM users") == [(1, None, 2)]
    assert tokens(view) == [] and devices(view) == []


def test_filter_is_stored_once(view: View) -> None:
    subject = NAMES.user_data_subject(ALICE)
    fact = {"op": "filter", "user_id": ALICE, "filter_id": "f1", "filter": {"room": {}}}
    view.send(NAMES.users_stream, subject, fact)
    view.send(NAMES.users_stream, subject, {**fact, "filter": {"other": 1}})
    assert [json.loads(r[0]) for r in view.rows("SELECT json FROM filters")] == [{"room": {}}]


def test_alias_is_set_and_deleted(view: View) -> None:
    alias = "#room:example.test"
    subject = NAMES.alias_subject(alias)
    view.send(
        NAMES.directory_stream,
        subject,
        {"op": "alias", "alias": alias, "room_id": ROOM, "creator": ALICE},
    )
    assert view.rows("SELECT alias, room_id, creator FROM aliases") == [(alias, ROOM, ALICE)]
    view.send(NAMES.directory_stream, subject, {"op": "alias_delete", "alias": alias})
    assert view.rows("SELECT * FROM aliases") == []


def test_unknown_op_is_skipped(view: View) -> None:
    assert view.account(ALICE, {"op": "from_the_future", "user_id": ALICE}) == set()
    assert view.account(ALICE, {"no_op": True}) == set()


# --- rooms ------------------------------------------------------------------


def test_new_room_creates_room_state_members_and_events(view: View) -> None:
    create, join, power = new_room()
    assert view.state(create, join, power) == {ALICE}
    assert view.rows("SELECT stream, state_seq, version, creator, created_seq FROM rooms") == [
        (SUBJECTS.stream, 1, "11", ALICE, 1)
    ]
    assert sorted(view.rows("SELECT type, state_key, event_id, seq, idx FROM state")) == [
        ("m.room.create", "", create["event_id"], 1, 0),
        ("m.room.member", ALICE, join["event_id"], 1, 1),
        ("m.room.power_levels", "", power["event_id"], 1, 2),
    ]
    assert members(view) == {ALICE: "join"}
    assert view.rows("SELECT event_id, seq, idx FROM events ORDER BY idx") == [
        (create["event_id"], 1, 0),
        (join["event_id"], 1, 1),
        (power["event_id"], 1, 2),
    ]
    assert json.loads(view.value("SELECT json FROM events WHERE idx = 1")) == join


def test_messages_are_stored_with_txn_and_do_not_advance_state_seq(view: View) -> None:
    view.state(*new_room())
    hello = message("hello")
    affected = view.timeline(hello, txn={"device_id": "D1", "txn_id": "t1"})
    assert affected == {ALICE}
    assert state_seq(view) == 1
    assert view.rows(
        "SELECT seq, idx, type, state_key, txn_device, txn_id FROM events WHERE event_id = ?",
        hello["event_id"],
    ) == [(2, 0, "m.room.message", None, "D1", "t1")]
    assert view.value("SELECT COUNT(*) FROM state") == 3


def test_state_seq_follows_state_subject_messages_only(view: View) -> None:
    view.state(*new_room())  # seq 1
    view.timeline(message("a"))  # seq 2
    view.state(event("m.room.name", {"name": "Room"}, ""))  # seq 3
    assert state_seq(view) == 3
    view.timeline(message("b"))  # seq 4
    assert state_seq(view) == 3


def test_membership_changes_update_members_and_wake_the_target(view: View) -> None:
    view.state(*new_room())
    assert BOB in view.state(member(BOB, "invite", sender=ALICE))
    assert members(view) == {ALICE: "join", BOB: "invite"}
    assert view.state(member(BOB, "join")) >= {ALICE, BOB}
    view.timeline(message("hi bob"))
    assert view.state(member(BOB, "leave")) == {ALICE, BOB}
    assert members(view) == {ALICE: "join", BOB: "leave"}
    assert view.rows(
        "SELECT membership, seq FROM membership_changes WHERE user_id = ? ORDER BY seq", BOB
    ) == [("invite", 2), ("join", 3), ("leave", 5)]
    assert state_seq(view) == 5
    # A message after bob left no longer wakes bob.
    assert view.timeline(message("bye")) == {ALICE}


def test_forget_applies_only_after_leaving(view: View) -> None:
    view.state(*new_room(), member(BOB, "join"))
    forget = {"op": "forget", "user_id": BOB, "room_id": ROOM}
    view.session(BOB, forget)
    assert view.value("SELECT forgotten FROM members WHERE user_id = ?", BOB) == 0
    view.state(member(BOB, "leave"))
    view.session(BOB, forget)
    assert view.value("SELECT forgotten FROM members WHERE user_id = ?", BOB) == 1


def test_duplicate_event_id_is_stored_once(view: View) -> None:
    view.state(*new_room())
    hello = message("hello")
    view.timeline(hello)
    view.timeline(hello, message("after"))
    assert view.rows("SELECT seq, idx FROM events WHERE event_id = ?", hello["event_id"]) == [
        (2, 0)
    ]
    assert view.value("SELECT COUNT(*) FROM events") == 5


def test_duplicate_state_event_does_not_rewrite_state(view: View) -> None:
    view.state(*new_room())
    name = event("m.room.name", {"name": "A"}, "")
    view.state(name)
    view.state(name)
    assert view.rows("SELECT seq FROM state WHERE type = 'm.room.name'") == [(2,)]
    # The fence compares with the subject's last sequence, repeats included.
    assert state_seq(view) == 3


# --- messages are judged at their place in the log ---------------------------


def stored(view: View, ev: dict[str, Any]) -> bool:
    return bool(view.value("SELECT 1 FROM events WHERE event_id = ?", ev["event_id"]) == 1)


def test_message_from_a_non_member_is_never_stored(view: View) -> None:
    view.state(*new_room())
    intruder = message("let me in", sender=BOB)
    assert view.timeline(intruder) == set()
    assert not stored(view, intruder)


def test_message_checked_before_a_kick_but_logged_after_it_is_dropped(view: View) -> None:
    view.state(*new_room(), member(BOB, "join"))
    view.state(member(BOB, "leave", sender=ALICE))  # the kick commits first
    late = message("sent while being kicked", sender=BOB)
    view.timeline(late, message("still fine"))
    assert not stored(view, late)
    assert [r[0] for r in view.rows("SELECT sender FROM events WHERE type = 'm.room.message'")] == [
        ALICE
    ]


def test_message_below_the_power_level_is_dropped(view: View) -> None:
    view.state(*new_room(), member(BOB, "join"))
    view.state(event("m.room.power_levels", {"users": {ALICE: 100}, "events_default": 50}, ""))
    muted = message("am I muted?", sender=BOB)
    view.timeline(muted)
    assert not stored(view, muted)


def test_state_event_on_the_timeline_subject_is_dropped(view: View) -> None:
    view.state(*new_room())
    sneaky = event("m.room.name", {"name": "unfenced"}, "")
    view.timeline(sneaky)
    assert not stored(view, sneaky)
    assert view.value("SELECT COUNT(*) FROM state WHERE type = 'm.room.name'") == 0


def test_a_batch_sees_its_own_state_changes_through_the_cache(view: View) -> None:
    """The projector reads unchanged rooms from the cache, changed ones from the transaction."""
    view.state(*new_room(), member(BOB, "join"))
    cache = StateCache(view.conn)
    assert cache.audience(ROOM) == {ALICE, BOB}  # cached before the batch
    states = BatchStates(view.conn, cache)
    late = message("after my kick", sender=BOB)
    view.conn.execute("BEGIN IMMEDIATE")
    apply_message(view.conn, LogMessage(SUBJECTS.stream, 3, SUBJECTS.state, kick()), states)
    woken = apply_message(
        view.conn,
        LogMessage(SUBJECTS.stream, 4, SUBJECTS.timeline, {"op": "events", "events": [late]}),
        states,
    )
    view.conn.execute("COMMIT")
    assert not stored(view, late) and woken == set()
    assert states.touched == {ROOM}
    cache.invalidate(states.touched)
    assert cache.audience(ROOM) == {ALICE}


def kick() -> dict[str, Any]:
    return {"op": "events", "events": [member(BOB, "leave", sender=ALICE)]}


def test_history_visibility_is_recorded_per_event(view: View) -> None:
    view.state(*new_room())
    before = message("before")
    view.timeline(before)
    view.state(event("m.room.history_visibility", {"history_visibility": "joined"}, ""))
    after = message("after")
    view.timeline(after)
    view.state(event("m.room.history_visibility", {"history_visibility": 7}, ""))  # malformed
    odd = message("odd")
    view.timeline(odd)
    vis = dict(view.rows("SELECT event_id, hist_vis FROM events"))
    assert vis[before["event_id"]] == "shared"  # the spec's default
    assert vis[after["event_id"]] == "joined"
    assert vis[odd["event_id"]] == "shared"


def test_visibility_change_inside_one_message_applies_to_later_events(view: View) -> None:
    view.state(*new_room())
    first, second = message("1"), message("2")
    view.state(
        first, event("m.room.history_visibility", {"history_visibility": "invited"}, ""), second
    )
    vis = dict(view.rows("SELECT event_id, hist_vis FROM events"))
    assert (vis[first["event_id"]], vis[second["event_id"]]) == ("shared", "invited")
