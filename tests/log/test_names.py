"""Unit tests for stream and subject naming (outlast.log.names)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from outlast.log import names
from outlast.log.names import Names

NAMES = Names()

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


def subjects_for(value: str, partitions: int = 4, prefix: str = "outlast") -> list[str]:
    n = Names(prefix, partitions)
    room = n.room_subjects(value)
    return [
        n.user_account_subject(value),
        n.user_session_subject(value),
        n.user_data_subject(value),
        n.alias_subject(value),
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
    room = Names(partitions=4).room_subjects("!room:example.test")
    p = names.partition_of("!room:example.test", 4)
    assert room.stream == NAMES.rooms_stream(p) == f"OUTLAST_ROOMS_{p}"
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
    assert [s.name for s in Names(partitions=3).streams()] == [
        "OUTLAST_USERS",
        "OUTLAST_DIRECTORY",
        "OUTLAST_ROOMS_0",
        "OUTLAST_ROOMS_1",
        "OUTLAST_ROOMS_2",
    ]


@pytest.mark.parametrize("value", HOSTILE_IDS[:6])
def test_every_subject_is_captured_by_exactly_one_stream(value: str) -> None:
    streams = Names(partitions=4).streams()
    for subject in subjects_for(value, 4):
        owners = [s.name for s in streams if any(subject_matches(p, subject) for p in s.subjects)]
        assert len(owners) == 1, (subject, owners)
    room = Names(partitions=4).room_subjects(value)
    owner = next(s for s in streams if subject_matches(s.subjects[0], room.state))
    assert owner.name == room.stream


def test_stream_subject_filters_do_not_overlap() -> None:
    filters = [p for s in Names(partitions=12).streams() for p in s.subjects]
    assert len(filters) == len(set(filters))
    # outlast.rooms.1.> must not capture outlast.rooms.10.x
    assert not subject_matches("outlast.rooms.1.>", "outlast.rooms.10.abc.state")


# --- prefixes -----------------------------------------------------------------


def test_the_default_names_are_the_ones_logs_in_the_field_use() -> None:
    user, room = "@alice:example.test", "!room:example.test"
    assert NAMES.users_stream == "OUTLAST_USERS"
    assert NAMES.media_bucket == "OUTLAST_MEDIA"
    assert [s.name for s in NAMES.control_streams()] == ["OUTLAST_HEALTH", "OUTLAST_DRILLS"]
    assert NAMES.user_account_subject(user) == f"outlast.users.{names.token(user)}.account"
    assert NAMES.device_keys_subject(user, "D") == (
        f"outlast.users.{names.token(user)}.keys.{names.token('D')}"
    )
    p = names.partition_of(room, NAMES.partitions)
    assert NAMES.directory_subject(room) == f"outlast.rooms.{p}.{names.token(room)}.directory"
    assert NAMES.typing_subject(room) == f"outlast_ephemeral.typing.{names.token(room)}"
    assert subject_matches(NAMES.typing_wildcard, NAMES.typing_subject(room))
    assert NAMES.health_subject("a", "w") == (
        f"outlast.health.{names.token('a')}.{names.token('w')}"
    )


def every_subject(n: Names, value: str) -> list[str]:
    return [
        *subjects_for(value, n.partitions, n.prefix),
        n.user_subject(value, "presence"),
        n.device_keys_subject(value, "D"),
        n.directory_subject(value),
        n.health_subject(value),
        n.drill_subject(value),
        n.typing_subject(value),
    ]


@pytest.mark.parametrize("value", HOSTILE_IDS[:4])
def test_two_prefixes_share_a_server_without_seeing_each_other(value: str) -> None:
    one, two = Names("t1", 2), Names("t2", 2)
    for mine, other in ((one, two), (two, one)):
        filters = [f for s in [*other.streams(), *other.control_streams()] for f in s.subjects]
        filters.append(other.typing_wildcard)
        names_of_other = {s.name for s in [*other.streams(), *other.control_streams()]}
        for subject in every_subject(mine, value):
            assert subject.startswith(mine.prefix)
            assert not any(subject_matches(f, subject) for f in filters), subject
        assert not names_of_other & {s.name for s in mine.streams()}
        assert mine.media_bucket != other.media_bucket


@pytest.mark.parametrize("prefix", ["", "Outlast", "a.b", "a*", "a>", "1abc", "a-b", "x" * 33])
def test_a_prefix_must_be_a_plain_token(prefix: str) -> None:
    with pytest.raises(ValueError):
        Names(prefix)
