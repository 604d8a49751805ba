"""Applying redactions to the view: the stored target becomes its redacted form.

When an ``m.room.redaction`` is stored, the event it names (in the same room)
is rewritten, in the projector's transaction, to what the v11 redaction
algorithm keeps plus ``unsigned.redacted_because``. Every later read
(/messages, /event, /sync, /state, /context) then returns the redacted form;
a rebuilt view arrives at the same result because it replays in log order.

Whether the redaction takes effect is decided here, against the room's
state at that point in the log, so a redaction sent through the plain /send
path cannot bypass the ``redact`` power level.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from outlast.core import auth, redaction
from outlast.core.errors import MatrixError
from outlast.log.client import LogMessage
from outlast.view import queries


def apply_redaction(
    conn: sqlite3.Connection, msg: LogMessage, idx: int, event: dict[str, Any]
) -> set[str]:
    if event.get("type") != "m.room.redaction":
        return set()
    target_id = redaction.redaction_target(event)
    if target_id is None or target_id == event.get("event_id"):
        return set()
    row = conn.execute(
        "SELECT room_id, sender, json FROM events WHERE event_id = ?", (target_id,)
    ).fetchone()
    if row is None or row["room_id"] != event.get("room_id"):
        return set()  # unknown here, or in another room: nothing to redact
    state = queries.current_state(conn, str(event["room_id"]))
    try:
        auth.check_redaction(str(event.get("sender")), str(row["sender"]), state)
    except MatrixError:
        return set()  # stored as an event, but without the power to redact the target
    stored = json.loads(row["json"])
    if "redacted_because" in (stored.get("unsigned") or {}):
        return set()  # the first redaction stands; later ones change nothing
    redacted = redaction.redacted_by(stored, event)
    conn.execute("UPDATE events SET json = ? WHERE event_id = ?", (json.dumps(redacted), target_id))
    return set()  # the room's members are woken for the redaction event itself
