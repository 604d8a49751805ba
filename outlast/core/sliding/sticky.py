"""Sticky request parameters, for clients that send them only once.

MSC4186 asks a client to send its whole request every time, and Element X
(matrix-rust-sdk) does. matrix-js-sdk's ``SlidingSync`` still speaks the
earlier MSC3575 habit: a list's ``timeline_limit``, ``required_state`` and
``filters`` and each extension's ``enabled`` only when they change, room
subscriptions once (dropped again with ``unsubscribe_rooms``). Remembering the
last value of each with the connection state serves both: a client that sends
everything overrides all of it on every request.

A request that names its connection (``conn_id``, which matrix-rust-sdk always
sends and matrix-js-sdk 36 never does) is taken as complete, as MSC4186 asks:
nothing is filled in, so leaving ``filters`` out really means "no filters".
``ranges`` and the to-device ``since`` are never sticky: they move every time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outlast.core.sliding.request import MAX_SUBSCRIPTIONS

_NOT_STICKY_LIST = ("ranges", "range")
_NOT_STICKY_EXTENSION = ("since",)


def _obj(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def applies(body: Mapping[str, Any]) -> bool:
    """Whether this request's omissions are filled from memory (no ``conn_id``)."""
    return not body.get("conn_id")


def fill(body: Mapping[str, Any], sticky: Mapping[str, Any]) -> dict[str, Any]:
    """The request as the client meant it: ``body`` with what it left out taken from
    the connection's remembered parameters (malformed parts are left for the parser)."""
    out = dict(body)
    lists = body.get("lists")
    if isinstance(lists, Mapping):
        remembered = _obj(sticky.get("lists"))
        out["lists"] = {
            key: {**_obj(remembered.get(key)), **value} if isinstance(value, Mapping) else value
            for key, value in lists.items()
        }
    extensions = body.get("extensions")
    if extensions is None or isinstance(extensions, Mapping):
        merged = _obj(sticky.get("extensions"))
        for name, value in _obj(extensions).items():
            merged[name] = (
                {**_obj(merged.get(name)), **value} if isinstance(value, Mapping) else value
            )
        out["extensions"] = merged
    subscriptions = body.get("room_subscriptions")
    if subscriptions is None or isinstance(subscriptions, Mapping):
        subs = {**_obj(sticky.get("room_subscriptions")), **_obj(subscriptions)}
        gone = body.get("unsubscribe_rooms")
        if isinstance(gone, list):
            for room_id in gone:
                if isinstance(room_id, str):
                    subs.pop(room_id, None)
        if len(subs) > MAX_SUBSCRIPTIONS:  # the oldest go first
            subs = dict(list(subs.items())[-MAX_SUBSCRIPTIONS:])
        out["room_subscriptions"] = subs
    return out


def remember(filled: Mapping[str, Any]) -> dict[str, Any]:
    """What to keep from a (validated, filled) request for the next one."""
    lists = {
        key: {k: v for k, v in _obj(value).items() if k not in _NOT_STICKY_LIST}
        for key, value in _obj(filled.get("lists")).items()
    }
    extensions = {
        name: {k: v for k, v in _obj(value).items() if k not in _NOT_STICKY_EXTENSION}
        for name, value in _obj(filled.get("extensions")).items()
    }
    out: dict[str, Any] = {}
    if lists:
        out["lists"] = lists
    if extensions:
        out["extensions"] = extensions
    subscriptions = _obj(filled.get("room_subscriptions"))
    if subscriptions:
        out["room_subscriptions"] = subscriptions
    return out
