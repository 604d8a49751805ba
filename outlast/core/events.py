"""Event construction and validation limits from the spec."""

from __future__ import annotations

from typing import Any

from outlast.core import jsonenc
from outlast.core.canonical_json import check_content
from outlast.core.errors import MatrixError, bad_json

MAX_EVENT_BYTES = 65_536
MAX_TYPE_BYTES = 255
MAX_STATE_KEY_BYTES = 255


def canonical_json(value: Any) -> bytes:
    return jsonenc.canonical(value)


def validate_type(event_type: str) -> None:
    if not event_type or len(event_type.encode("utf-8")) > MAX_TYPE_BYTES:
        raise bad_json("event type must be 1 to 255 bytes")


def validate_content(content: Any) -> dict[str, Any]:
    """A client's event content: an object of canonical JSON (no floats, safe integers)."""
    if not isinstance(content, dict):
        raise MatrixError(400, "M_NOT_JSON", "event content must be a JSON object")
    check_content(content)
    return content


def make_event(
    *,
    event_id: str,
    room_id: str,
    sender: str,
    event_type: str,
    content: dict[str, Any],
    origin_server_ts: int,
    state_key: str | None = None,
) -> dict[str, Any]:
    """A client-format event, checked against the spec's 64 KiB event size limit."""
    validate_type(event_type)
    event: dict[str, Any] = {
        "event_id": event_id,
        "room_id": room_id,
        "sender": sender,
        "type": event_type,
        "content": content,
        "origin_server_ts": origin_server_ts,
    }
    if state_key is not None:
        if len(state_key.encode("utf-8")) > MAX_STATE_KEY_BYTES:
            raise bad_json("state_key must be at most 255 bytes")
        event["state_key"] = state_key
    if len(canonical_json(event)) > MAX_EVENT_BYTES:
        raise MatrixError(413, "M_TOO_LARGE", "event is larger than 65536 bytes")
    return event


def is_state(event: dict[str, Any]) -> bool:
    return "state_key" in event
