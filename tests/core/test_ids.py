"""Unit tests for Matrix identifier parsing and generation in outlast.core.ids."""

from __future__ import annotations

import re

import pytest

from outlast.core import ids
from outlast.core.errors import MatrixError

SERVER = "example.test"
URLSAFE_43 = re.compile(r"^\$[A-Za-z0-9_-]{43}$")


def rejected_localpart(localpart: str, server: str = SERVER) -> MatrixError:
    with pytest.raises(MatrixError) as info:
        ids.validate_new_localpart(localpart, server)
    assert (info.value.status, info.value.errcode) == (400, "M_INVALID_USERNAME")
    return info.value


# --- localparts -------------------------------------------------------------


@pytest.mark.parametrize("localpart", ["alice", "a", "0", "a.b_c=d-e/f+g", "user123"])
def test_valid_localparts_are_accepted(localpart: str) -> None:
    assert ids.validate_new_localpart(localpart, SERVER) == localpart


@pytest.mark.parametrize(
    "localpart",
    ["", "Alice", "al ice", "al:ice", "al@ice", "al#ice", "ålice", "al\tice", "alice\n", "\nalice"],
)
def test_invalid_localparts_are_rejected(localpart: str) -> None:
    rejected_localpart(localpart)


def test_localpart_limit_counts_the_whole_user_id_in_bytes() -> None:
    # "@" + localpart + ":" + server must be at most 255 bytes.
    room_for = 255 - len(f"@:{SERVER}")
    assert ids.validate_new_localpart("a" * room_for, SERVER)
    rejected_localpart("a" * (room_for + 1))


def test_localpart_limit_depends_on_server_name_length() -> None:
    long_server = "s" * 200 + ".test"
    room_for = 255 - len(f"@:{long_server}")
    assert ids.validate_new_localpart("a" * room_for, long_server)
    rejected_localpart("a" * (room_for + 1), long_server)


# --- parse_user_id ----------------------------------------------------------


def test_parse_user_id_splits_localpart_and_server() -> None:
    assert ids.parse_user_id("@alice:example.test") == ("alice", "example.test")


def test_parse_user_id_keeps_port_in_server_name() -> None:
    assert ids.parse_user_id("@alice:example.test:8448") == ("alice", "example.test:8448")


def test_parse_user_id_accepts_historical_localparts() -> None:
    assert ids.parse_user_id("@Alice!~:example.test") == ("Alice!~", "example.test")


@pytest.mark.parametrize(
    "value",
    [
        "alice:example.test",  # no sigil
        "@alice",  # no server
        "@:example.test",  # empty localpart
        "@alice:",  # empty server
        "@al ice:example.test",  # space is outside the historical grammar
        "@alice\n:example.test",
        "@" + "a" * 250 + ":example.test",  # over 255 bytes
        "",
    ],
)
def test_parse_user_id_rejects_malformed_ids(value: str) -> None:
    with pytest.raises(MatrixError) as info:
        ids.parse_user_id(value)
    assert (info.value.status, info.value.errcode) == (400, "M_INVALID_PARAM")
    assert ids.is_user_id(value) is False


def test_is_user_id_rejects_non_strings() -> None:
    assert ids.is_user_id(None) is False
    assert ids.is_user_id(42) is False
    assert ids.is_user_id("@bob:example.test") is True


# --- room ids and aliases ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("!abc:example.test", True),
        ("!abc:example.test:8448", True),
        ("abc:example.test", False),
        ("#abc:example.test", False),
        ("!abc", False),
        ("!" + "a" * 255 + ":example.test", False),
    ],
)
def test_is_room_id(value: str, expected: bool) -> None:
    assert ids.is_room_id(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("#room:example.test", True),
        ("#room.name-1:example.test:8448", True),
        ("!room:example.test", False),
        ("#room", False),
        ("#:example.test", False),
        ("#room:", False),
        ("#ro om:example.test", False),
        ("#room:exa\nmple.test", False),
        ("#" + "a" * 255 + ":example.test", False),
    ],
)
def test_is_room_alias(value: str, expected: bool) -> None:
    assert ids.is_room_alias(value) is expected


# --- generated ids ----------------------------------------------------------


def test_new_room_id_shape() -> None:
    room_id = ids.new_room_id(SERVER)
    assert re.fullmatch(r"![A-Za-z]{18}:example\.test", room_id)
    assert ids.is_room_id(room_id)
    assert ids.new_room_id(SERVER) != room_id


def test_new_event_id_shape() -> None:
    event_id = ids.new_event_id()
    assert URLSAFE_43.match(event_id)
    assert ids.new_event_id() != event_id


def test_new_device_id_shape() -> None:
    assert re.fullmatch(r"[A-Z]{10}", ids.new_device_id())


def test_access_tokens_are_long_unique_and_url_safe() -> None:
    tokens = {ids.new_access_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert token.startswith("olt_")
        assert len(token) >= 40
        assert re.fullmatch(r"olt_[A-Za-z0-9_-]+", token)


def test_token_hash_is_sha256_hex_and_deterministic() -> None:
    digest = ids.token_hash("olt_secret")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert ids.token_hash("olt_secret") == digest
    assert ids.token_hash("olt_secreT") != digest
    assert "secret" not in digest


# --- txn_event_id -----------------------------------------------------------

TXN = {
    "sender": "@alice:example.test",
    "device_id": "DEVICE",
    "room_id": "!room:example.test",
    "event_type": "m.room.message",
    "txn_id": "txn1",
}


def txn_id_with(**changes: str) -> str:
    return ids.txn_event_id(**{**TXN, **changes})


def test_txn_event_id_is_deterministic_and_event_id_shaped() -> None:
    assert txn_id_with() == txn_id_with()
    assert URLSAFE_43.match(txn_id_with())


@pytest.mark.parametrize(
    "changes",
    [
        {"sender": "@bob:example.test"},
        {"device_id": "OTHER"},
        {"room_id": "!other:example.test"},
        {"event_type": "m.reaction"},
        {"txn_id": "txn2"},
    ],
)
def test_txn_event_id_changes_with_each_input(changes: dict[str, str]) -> None:
    assert txn_id_with(**changes) != txn_id_with()


def test_txn_event_id_inputs_do_not_run_together() -> None:
    # Moving a character across a field boundary must not give the same id.
    assert txn_id_with(device_id="DEV", txn_id="ICEtxn1") != txn_id_with(txn_id="txn1")
    assert txn_id_with(device_id="DEVICEt", txn_id="xn1") != txn_id_with()


# --- login identifiers ------------------------------------------------------


def test_localpart_from_login_accepts_bare_and_full_ids() -> None:
    assert ids.localpart_from_login("Alice", SERVER) == "alice"
    assert ids.localpart_from_login("@Alice:example.test", SERVER) == "alice"


def test_localpart_from_login_rejects_other_servers() -> None:
    with pytest.raises(MatrixError) as info:
        ids.localpart_from_login("@alice:elsewhere.test", SERVER)
    assert info.value.status == 403
