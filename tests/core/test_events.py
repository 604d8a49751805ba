"""Unit tests for event construction and the spec's size limits (outlast.core.events)."""

from __future__ import annotations

from typing import Any

import pytest

from outlast.core import events
from outlast.core.errors import MatrixError
from outlast.core.events import MAX_EVENT_BYTES, canonical_json, make_event


def build(content: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event_id": "$" + "e" * 43,
        "room_id": "!room:example.test",
        "sender": "@alice:example.test",
        "event_type": "m.room.message",
        "content": {"msgtype": "m.text", "body": "hi"} if content is None else content,
        "origin_server_ts": 1_700_000_000_000,
    }
    fields.update(overrides)
    return make_event(**fields)


def padded_to(size: int, body_char: str = "x") -> dict[str, Any]:
    """Content whose event serializes to exactly ``size`` bytes."""
    base = len(canonical_json(build({"body": ""})))
    pad = size - base
    assert pad % len(body_char.encode()) == 0
    return {"body": body_char * (pad // len(body_char.encode()))}


def rejected(**kwargs: Any) -> MatrixError:
    with pytest.raises(MatrixError) as info:
        build(**kwargs)
    return info.value


def test_make_event_has_client_format_fields() -> None:
    event = build()
    assert event == {
        "event_id": "$" + "e" * 43,
        "room_id": "!room:example.test",
        "sender": "@alice:example.test",
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": "hi"},
        "origin_server_ts": 1_700_000_000_000,
    }
    assert not events.is_state(event)


def test_state_event_keeps_empty_state_key() -> None:
    event = build({}, event_type="m.room.name", state_key="")
    assert event["state_key"] == ""
    assert events.is_state(event)


def test_event_of_exactly_65536_bytes_is_accepted() -> None:
    content = padded_to(MAX_EVENT_BYTES)
    assert len(canonical_json(build(content))) == MAX_EVENT_BYTES


def test_event_one_byte_over_limit_is_too_large() -> None:
    error = rejected(content=padded_to(MAX_EVENT_BYTES + 1))
    assert (error.status, error.errcode) == (413, "M_TOO_LARGE")


def test_size_limit_counts_utf8_bytes_not_characters() -> None:
    # "é" is two bytes: the limit is reached with half as many characters.
    assert build(padded_to(MAX_EVENT_BYTES, "é"))
    error = rejected(content=padded_to(MAX_EVENT_BYTES + 2, "é"))
    assert error.status == 413


@pytest.mark.parametrize("event_type", ["", "t" * 256, "é" * 128])
def test_event_type_must_be_1_to_255_bytes(event_type: str) -> None:
    error = rejected(event_type=event_type)
    assert (error.status, error.errcode) == (400, "M_BAD_JSON")


def test_event_type_of_255_bytes_is_accepted() -> None:
    assert build(event_type="t" * 255)["type"] == "t" * 255


def test_state_key_limit_is_255_bytes() -> None:
    assert build({}, event_type="m.x", state_key="k" * 255)["state_key"] == "k" * 255
    error = rejected(content={}, event_type="m.x", state_key="k" * 256)
    assert (error.status, error.errcode) == (400, "M_BAD_JSON")
    assert rejected(content={}, event_type="m.x", state_key="é" * 128).status == 400


@pytest.mark.parametrize("content", [[], "text", 1, None, True])
def test_validate_content_requires_an_object(content: Any) -> None:
    with pytest.raises(MatrixError) as info:
        events.validate_content(content)
    assert info.value.status == 400


def test_validate_content_returns_the_object() -> None:
    content = {"body": "hi"}
    assert events.validate_content(content) is content


def test_canonical_json_is_compact_sorted_utf8() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()
