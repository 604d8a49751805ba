"""Turn stored event rows into what a client receives, and filter what it may see."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from outlast.core.visibility import (
    MembershipChange,
    event_visible,
    ignored_away,
    membership_after,
    membership_at,
)


def render(
    row: sqlite3.Row,
    device_id: str | None,
    user_id: str | None = None,
    *,
    now_ms: int,
    changes: Sequence[MembershipChange] | None = None,
) -> dict[str, Any]:
    """Client format, with ``unsigned.transaction_id`` only for the sending device and
    ``unsigned.age`` counted up to ``now_ms``. Given the reader's membership
    ``changes`` in the room, ``unsigned.membership`` too (spec v1.11)."""
    event: dict[str, Any] = json.loads(row["json"])
    unsigned = dict(event.get("unsigned") or {})
    unsigned["age"] = max(0, now_ms - int(event.get("origin_server_ts", 0)))
    if changes is not None:
        unsigned["membership"] = membership_after(changes, (int(row["seq"]), int(row["idx"])))
    own_device = device_id is not None and row["txn_device"] == device_id
    if row["txn_id"] is not None and own_device and (user_id is None or row["sender"] == user_id):
        unsigned["transaction_id"] = row["txn_id"]
    event["unsigned"] = unsigned
    return event


def visible_rows(
    rows: Iterable[sqlite3.Row],
    changes: list[MembershipChange],
    user_id: str,
    ignored: AbstractSet[str] = frozenset(),
) -> list[sqlite3.Row]:
    """Keep the rows the user may see under each event's history visibility, less those
    ``ignored`` senders sent (their state events stay)."""
    out = []
    for row in rows:
        if ignored and ignored_away(str(row["sender"]), row["state_key"] is not None, ignored):
            continue
        position = (int(row["seq"]), int(row["idx"]))
        own = row["type"] == "m.room.member" and row["state_key"] == user_id
        if event_visible(
            history_visibility=row["hist_vis"],
            membership_at_event=membership_at(changes, position),
            changes=changes,
            position=position,
            is_own_membership_event=own,
        ):
            out.append(row)
    return out
