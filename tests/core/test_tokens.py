"""Unit tests for sync and pagination tokens (outlast.core.tokens)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from outlast.core.errors import MatrixError
from outlast.core.tokens import (
    SyncToken,
    encode_boundary,
    parse_boundary,
    parse_sync_token,
)

STREAMS = ["OUTLAST_USERS", "OUTLAST_DIRECTORY", "OUTLAST_ROOMS_0", "OUTLAST_ROOMS_1"]


def invalid(call: Callable[..., object], *args: object) -> None:
    with pytest.raises(MatrixError) as info:
        call(*args)
    assert (info.value.status, info.value.errcode) == (400, "M_INVALID_PARAM")


def test_sync_token_round_trip() -> None:
    token = SyncToken((5, 0, 17, 123456789))
    encoded = token.encode()
    assert encoded == "s5_0_17_123456789"
    assert parse_sync_token(encoded, len(STREAMS)) == token


def test_sync_token_get_by_stream_name() -> None:
    token = SyncToken((5, 0, 17, 9))
    assert token.get(STREAMS, "OUTLAST_ROOMS_0") == 17
    assert token.get(STREAMS, "OUTLAST_USERS") == 5


@pytest.mark.parametrize("token", ["s1_2_3", "s1_2_3_4_5", "s"])
def test_sync_token_with_wrong_stream_count_is_invalid(token: str) -> None:
    invalid(parse_sync_token, token, len(STREAMS))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "t1_2",
        "S1_2_3_4",
        "s1_2_3_x",
        "s1_2_3_-4",
        "s1_2_3_ 4",
        "s1__2_3",
        "s1_2_3_4\n",
        "s1_2_3_²",  # a Unicode digit that int() rejects
        "s1_2_3_٣",  # a Unicode digit that int() would accept
        "s1_2_3_" + "9" * 20,
        "s" + "1_" * 2000 + "1",
    ],
)
def test_garbage_sync_tokens_are_invalid(token: str) -> None:
    invalid(parse_sync_token, token, len(STREAMS))


def test_boundary_round_trip() -> None:
    assert encode_boundary((42, 3)) == "t42_3"
    assert parse_boundary("t42_3") == (42, 3)
    assert parse_boundary(encode_boundary((0, 0))) == (0, 0)


@pytest.mark.parametrize(
    "token", ["t", "t1", "t1_", "t_1", "tx_1", "t1_x", "t-1_0", "t1_2_3", "t²_0", "t1_٣", "x1_2"]
)
def test_garbage_boundaries_are_invalid(token: str) -> None:
    invalid(parse_boundary, token)


def test_sync_token_stands_in_for_the_boundary_after_its_position() -> None:
    token = "s5_0_17_9"
    room_seq = parse_sync_token(token, len(STREAMS)).get(STREAMS, "OUTLAST_ROOMS_0")
    # Just after everything the partition had applied: before the next event.
    assert parse_boundary(token, room_seq) == (18, 0)


def test_sync_token_needs_a_position_to_be_a_boundary() -> None:
    invalid(parse_boundary, "s5_0_17_9")


def test_boundary_token_ignores_sync_position() -> None:
    assert parse_boundary("t3_1", 99) == (3, 1)
