"""Unit tests for stream and subject naming (outlast.log.names)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from outlast.log import names

# A NATS subject for publishing: non-empty tokens of safe characters, dot-separated.
SUBJECT = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")

HOSTILE_IDS = [
    "!room:example.test",
    "!a.b.c:example.test",
    "@*:example.test",
    "#>:example.test",
    "!sp ace:example.test",
    "!tab\there:x",
    "!new\nline:x",
    "@über:例え.jp",
    "!🙂:x",
    "",
    ".",
    "..",
    "*",
    ">",
    "a" * 1000,
]


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: ``*`` is one token, a final ``>`` is one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def subjects_for(value: str, partitions: int = 4) -> list[str]:
    room = names.room_subjects(value, partitions)
    return [
        names.user_account_subject(value),
        names.user_session_subject(value),
        names.user_data_subject(value),
        names.alias_subject(value),
        room.state,
        room.timeline,
    ]


# --- partitions -------------------------------------------------------------


@pytest.mark.parametrize("partitions", [1, 2, 4, 7, 64])
def test_partition_of_is_in_range_and_stable(partitions: int) -> None:
    for i in range(200):
        room_id = f"!room{i}:example.test"
        p = names.partition_of(room_id, partitions)
        assert 0 <= p < partitions
        assert names.partition_of(room_id, partitions) == p


def test_partition_of_is_a_fixed_function_of_the_room_id() -> None:
    # Every site must agree: the value may never depend on process state (hash seeds).
    assert [names.partition_of(f"!r{i}:x", 8) for i in range(8)] == [
        names.partition_of(f"!r{i}:x", 8) for i in range(8)
    ]
    assert names.partition_of("!room:example.test", 1) == 0


def test_partition_of_spreads_rooms_over_partitions() -> None:
    counts = Counter(names.partition_of(f"!room{i}:example.test", 8) for i in range(4000))
    assert set(counts) == set(range(8))
    assert min(counts.values()) > 4000 / 8 * 0.8
    assert max(counts.values()) < 4000 / 8 * 1.2


def test_room_subjects_live_in_the_rooms_partition_stream() -> None:
    room = names.room_subjects("!room:example.test", 4)
    p = names.partition_of("!room:example.test", 4)
    assert room.stream == names.rooms_stream(p) == f"OUTLAST_ROOMS_{p}"
    assert room.state.endswith(".state")
    assert room.timeline.endswith(".timeline")
    assert room.state.rsplit(".", 1)[0] == room.timeline.rsplit(".", 1)[0]


# --- subjects ---------------------------------------------------------------


@pytest.mark.parametrize("value", HOSTILE_IDS)
def test_subjects_are_valid_nats_subjects_for_hostile_ids(value: str) -> None:
    for subject in subjects_for(value):
        assert SUBJECT.fullmatch(subject), subject
        assert len(subject) < 100


def test_token_is_fixed_width_hex_and_distinguishes_ids() -> None:
    tokens = {names.token(v) for v in HOSTILE_IDS}
    assert len(tokens) == len(HOSTILE_IDS)
    for tok in tokens:
        assert re.fullmatch(r"[0-9a-f]{32}", tok)


def test_subject_kinds_do_not_collide() -> None:
    user = "@alice:example.test"
    assert len(set(subjects_for(user))) == 6


# --- streams ----------------------------------------------------------------


def test_all_streams_order() -> None:
    assert [s.name for s in names.all_streams(3)] == [
        "OUTLAST_USERS",
        "OUTLAST_DIRECTORY",
        "OUTLAST_ROOMS_0",
        "OUTLAST_ROOMS_1",
        "OUTLAST_ROOMS_2",
    ]


@pytest.mark.parametrize("value", HOSTILE_IDS[:6])
def test_every_subject_is_captured_by_exactly_one_stream(value: str) -> None:
    streams = names.all_streams(4)
    for subject in subjects_for(value, 4):
        owners = [s.name for s in streams if any(subject_matches(p, subject) for p in s.subjects)]
        assert len(owners) == 1, (subject, owners)
    room = names.room_subjects(value, 4)
    owner = next(s for s in streams if subject_matches(s.subjects[0], room.state))
    assert owner.name == room.stream


def test_stream_subject_filters_do_not_overlap() -> None:
    filters = [p for s in names.all_streams(12) for p in s.subjects]
    assert len(filters) == len(set(filters))
    # outlast.rooms.1.> must not capture outlast.rooms.10.x
    assert not subject_matches("outlast.rooms.1.>", "outlast.rooms.10.abc.state")
