"""The fact types (outlast.log.facts) read and write the wire format logs already hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from outlast.log.client import LogMessage
from outlast.log.facts import (
    FACT_TYPES,
    AccountDataSet,
    DecodeError,
    KeyClaimed,
    KeysUploaded,
    NewDevice,
    Register,
    RoomEvents,
    UnknownFact,
    decode,
)
from outlast.view.apply import apply_message
from tests.log.fixture_log import dump, load, project


def test_every_fact_of_the_v1_log_decodes_and_encodes_back_unchanged() -> None:
    for msg in load():
        fact = decode(msg.data)
        assert type(fact) is FACT_TYPES[msg.data["op"]]
        assert fact.encode() == msg.data, msg.data["op"]


def test_the_v1_log_holds_every_kind_of_fact() -> None:
    assert {msg.data["op"] for msg in load()} == set(FACT_TYPES)


@pytest.mark.parametrize(
    "fact",
    [
        Register("@a:x", None, 5, None),
        Register("@a:x", "h", 5, NewDevice("D", "t", "phone"), admin=True),
        RoomEvents(({"type": "m.room.message", "room_id": "!r:x"},), {"device_id": "D"}),
        RoomEvents(()),
        KeysUploaded("@a:x", "D", one_time_keys={"signed_curve25519:A": {"key": "k"}}),
        KeyClaimed("@a:x", "D", "signed_curve25519", "A", fallback=True),
        AccountDataSet("@a:x", "", "m.direct", {}),
    ],
)
def test_a_fact_survives_the_wire(fact: Any) -> None:
    assert decode(fact.encode()) == fact


def test_optional_parts_are_absent_on_the_wire_not_null() -> None:
    assert "txn" not in RoomEvents(()).encode()
    assert "fallback" not in KeyClaimed("@a:x", "D", "alg", "A").encode()
    upload = KeysUploaded("@a:x", "D").encode()
    assert upload == {"op": "keys_upload", "user_id": "@a:x", "device_id": "D"}
    assert not KeysUploaded("@a:x", "D").changes_anything()


@pytest.mark.parametrize(
    "data",
    [
        {"op": "register", "password_hash": None},  # no user id
        {"op": "login", "user_id": "@a:x", "device": "D"},  # device not an object
        {"op": "logout", "user_id": 7, "token_hash": "t"},
        {"op": "events", "events": ["not an event"]},
        {"op": "receipts.mark", "room_id": "!r:x", "user_id": "@a:x", "marks": {}},
        {"op": "to_device_ack", "user_id": "@a:x", "device_id": "D", "upto": "3"},
        {"op": "push_rules", "user_id": "@a:x", "doc": []},
        ["op", "register"],
    ],
)
def test_malformed_facts_do_not_decode(data: Any) -> None:
    with pytest.raises(DecodeError):
        decode(data)


@pytest.mark.parametrize("data", [{"op": "from_the_future", "x": 1}, {"op": 3}, {}])
def test_unknown_ops_are_their_own_error(data: Any) -> None:
    with pytest.raises(UnknownFact):
        decode(data)


def test_the_projector_skips_what_does_not_decode(tmp_path: Path) -> None:
    """A malformed or newer fact is passed over, never retried for ever."""
    conn = project(load(), tmp_path / "view.sqlite")
    try:
        before = dump(conn)
        users = "OUTLAST_USERS"
        odd: list[dict[str, Any]] = [
            {"op": "from_the_future"},
            {"op": "register", "user_id": None},
            {"op": "invalid"},
        ]
        for seq, data in enumerate(odd, start=1000):
            msg = LogMessage(users, seq, "outlast.users.x.account", data)
            assert apply_message(conn, msg) == set()
        assert dump(conn) == before
    finally:
        conn.close()
