"""The view's rooms: events, current state, membership, relations, and aliases.

This module is the only writer of ``rooms``, ``events``, ``state``,
``members``, ``membership_changes``, ``relations`` and ``aliases``. Room events are stored in
log order and messages are judged again at their place in the log
(:func:`apply_room_events`); a redaction rewrites its target in place
(:func:`apply_redaction`). Reads other capabilities share are in
outlast/view/queries.py.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from outlast.core import auth, jsonenc, redaction, relations, room_versions
from outlast.core.errors import MatrixError
from outlast.log.client import LogMessage
from outlast.log.facts import AliasDeleted, AliasSet, RoomEvents, RoomForgotten
from outlast.view import queries
from outlast.view.queries import StateMap
from outlast.view.state_cache import BatchStates

SCHEMA = """
CREATE TABLE IF NOT EXISTS aliases (
    alias TEXT PRIMARY KEY, room_id TEXT NOT NULL, creator TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rooms (
    room_id TEXT PRIMARY KEY, stream TEXT NOT NULL, state_seq INTEGER NOT NULL,
    version TEXT NOT NULL, creator TEXT NOT NULL, created_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    stream TEXT NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
    room_id TEXT NOT NULL, event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
    state_key TEXT, sender TEXT NOT NULL, json TEXT NOT NULL,
    txn_device TEXT, txn_id TEXT, hist_vis TEXT NOT NULL,
    PRIMARY KEY (stream, seq, idx)
);
CREATE INDEX IF NOT EXISTS events_by_room ON events (room_id, seq, idx);
CREATE TABLE IF NOT EXISTS state (
    room_id TEXT NOT NULL, type TEXT NOT NULL, state_key TEXT NOT NULL,
    event_id TEXT NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
);
CREATE TABLE IF NOT EXISTS membership_changes (
    room_id TEXT NOT NULL, user_id TEXT NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
    membership TEXT NOT NULL, PRIMARY KEY (room_id, user_id, seq, idx)
);
-- device_lists reads a room's membership changes within a sync window.
CREATE INDEX IF NOT EXISTS membership_changes_by_seq ON membership_changes (room_id, seq);
CREATE TABLE IF NOT EXISTS members (
    room_id TEXT NOT NULL, user_id TEXT NOT NULL, membership TEXT NOT NULL,
    seq INTEGER NOT NULL, idx INTEGER NOT NULL, forgotten INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX IF NOT EXISTS members_by_user ON members (user_id, membership);
-- One row per stored event with a well-formed cleartext m.relates_to (edits,
-- reactions, thread replies, references); gone once the child is redacted.
CREATE TABLE IF NOT EXISTS relations (
    event_id TEXT PRIMARY KEY, parent_id TEXT NOT NULL, room_id TEXT NOT NULL,
    rel_type TEXT NOT NULL, event_type TEXT NOT NULL, sender TEXT NOT NULL,
    seq INTEGER NOT NULL, idx INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS relations_by_parent ON relations (parent_id, rel_type);
CREATE INDEX IF NOT EXISTS relations_by_room ON relations (room_id, rel_type);
"""


def apply_alias(conn: sqlite3.Connection, fact: AliasSet) -> set[str]:
    conn.execute(
        "INSERT OR REPLACE INTO aliases (alias, room_id, creator) VALUES (?, ?, ?)",
        (fact.alias, fact.room_id, fact.creator),
    )
    return set()


def apply_alias_deleted(conn: sqlite3.Connection, fact: AliasDeleted) -> set[str]:
    conn.execute("DELETE FROM aliases WHERE alias = ?", (fact.alias,))
    return set()


# Told of each event as it is stored, with the room's state including it (push
# rules are evaluated there); returns users whose /sync it changed.
StoredHook = Callable[[int, dict[str, Any], StateMap], set[str]]


def apply_room_events(
    conn: sqlite3.Connection,
    msg: LogMessage,
    fact: RoomEvents,
    states: BatchStates,
    on_stored: StoredHook | None = None,
) -> set[str]:
    """Store a fact's room events in log order.

    State events arrive on the room's state subject, fenced: they were checked
    against exactly the state they follow. Messages arrive unfenced on the
    timeline subject, checked by the writer against the state its view had;
    they are checked again here against the state at their place in the log,
    and an event that fails (its sender was kicked meanwhile, say) is never
    stored. Every view replays the same log through the same rules, so every
    view rejects the same events.
    """
    affected: set[str] = set()
    rooms: set[str] = set()
    is_state_subject = msg.subject.endswith(".state")
    txn = fact.txn or {}
    events = fact.events
    if is_state_subject:
        # The fence compares with the subject's last sequence: keep the view's
        # copy in step even when every event of the message is a repeat.
        for room_id in {e["room_id"] for e in events}:
            conn.execute("UPDATE rooms SET state_seq = ? WHERE room_id = ?", (msg.seq, room_id))
    for idx, event in enumerate(events):
        room_id = event["room_id"]
        state = states.state(room_id)
        if not is_state_subject and not _allowed_message(event, state):
            continue
        vis = state.get(("m.room.history_visibility", ""))
        hist_vis = (vis or {}).get("content", {}).get("history_visibility")
        # OR IGNORE: event ids are unique, so a retry that slipped past the log's
        # dedup window is stored once (positions never repeat: the projector
        # skips sequences it has applied).
        inserted = conn.execute(
            "INSERT OR IGNORE INTO events (stream, seq, idx, room_id, event_id, type, state_key,"
            " sender, json, txn_device, txn_id, hist_vis)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                msg.stream,
                msg.seq,
                idx,
                room_id,
                event["event_id"],
                event["type"],
                event.get("state_key"),
                event["sender"],
                jsonenc.dumps_text(event),
                txn.get("device_id"),
                txn.get("txn_id"),
                hist_vis if isinstance(hist_vis, str) else "shared",
            ),
        ).rowcount
        if not inserted:
            continue
        rooms.add(room_id)
        _index_relation(conn, msg, idx, event)
        if "state_key" in event:
            _apply_state(conn, msg, idx, event)
            states.changed(room_id)
            if event["type"] == "m.room.member":
                affected.add(event["state_key"])
        if event["type"] == "m.room.redaction":
            affected |= apply_redaction(conn, msg, idx, event)
            states.changed(room_id)  # it may have rewritten a state event
        if on_stored is not None:
            affected |= on_stored(idx, event, states.state(room_id))
    for room_id in rooms:
        affected |= states.audience(room_id)
    return affected


def _index_relation(
    conn: sqlite3.Connection, msg: LogMessage, idx: int, event: dict[str, Any]
) -> None:
    rel = relations.relation_of(event)
    if rel is None:
        return
    conn.execute(
        "INSERT OR IGNORE INTO relations (event_id, parent_id, room_id, rel_type, event_type,"
        " sender, seq, idx) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event["event_id"],
            rel.event_id,
            event["room_id"],
            rel.rel_type,
            event["type"],
            event["sender"],
            msg.seq,
            idx,
        ),
    )


def children_rows(
    conn: sqlite3.Connection, parent_ids: list[str], rel_type: str | None = None
) -> list[sqlite3.Row]:
    """The stored children of ``parent_ids`` (event rows plus ``parent_id``, ``rel_type``)."""
    out: list[sqlite3.Row] = []
    for start in range(0, len(parent_ids), 500):
        chunk = parent_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        where = f"r.parent_id IN ({marks})"
        args: list[Any] = list(chunk)
        if rel_type is not None:
            where += " AND r.rel_type = ?"
            args.append(rel_type)
        out += conn.execute(
            "SELECT e.*, r.parent_id AS parent_id, r.rel_type AS rel_type FROM relations r"
            f" JOIN events e ON e.event_id = r.event_id WHERE {where} ORDER BY e.seq, e.idx",
            args,
        )
    return out


def thread_rows(conn: sqlite3.Connection, room_id: str) -> list[sqlite3.Row]:
    """Every thread reply in a room (event rows plus ``parent_id``), oldest first."""
    return list(
        conn.execute(
            "SELECT e.*, r.parent_id AS parent_id FROM relations r"
            " JOIN events e ON e.event_id = r.event_id"
            " WHERE r.room_id = ? AND r.rel_type = ? ORDER BY e.seq, e.idx",
            (room_id, relations.THREAD),
        )
    )


def _allowed_message(event: dict[str, Any], state: StateMap) -> bool:
    """A timeline event passes the room's rules at its place in the log."""
    if "state_key" in event:
        return False  # state changes must go through the fenced state subject
    try:
        auth.check_event(event, state)
    except MatrixError:
        return False
    return True


def _apply_state(
    conn: sqlite3.Connection, msg: LogMessage, idx: int, event: dict[str, Any]
) -> None:
    room_id = event["room_id"]
    if event["type"] == "m.room.create" and event["state_key"] == "":
        content = event.get("content", {})
        conn.execute(
            "INSERT OR IGNORE INTO rooms (room_id, stream, state_seq, version, creator,"
            " created_seq) VALUES (?, ?, ?, ?, ?, ?)",
            (
                room_id,
                msg.stream,
                msg.seq,
                str(content.get("room_version", "11")),
                event["sender"],
                msg.seq,
            ),
        )
    conn.execute(
        "INSERT OR REPLACE INTO state (room_id, type, state_key, event_id, seq, idx)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (room_id, event["type"], event["state_key"], event["event_id"], msg.seq, idx),
    )
    if event["type"] == "m.room.member":
        membership = str(event.get("content", {}).get("membership", "leave"))
        user = event["state_key"]
        conn.execute(
            "INSERT OR IGNORE INTO membership_changes (room_id, user_id, seq, idx, membership)"
            " VALUES (?, ?, ?, ?, ?)",
            (room_id, user, msg.seq, idx, membership),
        )
        conn.execute(
            "INSERT INTO members (room_id, user_id, membership, seq, idx, forgotten)"
            " VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (room_id, user_id) DO UPDATE SET"
            " membership = excluded.membership, seq = excluded.seq, idx = excluded.idx,"
            " forgotten = 0",
            (room_id, user, membership, msg.seq, idx),
        )


def apply_forget(conn: sqlite3.Connection, fact: RoomForgotten) -> set[str]:
    conn.execute(
        "UPDATE members SET forgotten = 1 WHERE room_id = ? AND user_id = ?"
        " AND membership IN ('leave', 'ban')",
        (fact.room_id, fact.user_id),
    )
    return set()


# --- redactions -----------------------------------------------------------------
# When an ``m.room.redaction`` is stored, the event it names (in the same room)
# is rewritten, in the projector's transaction, to what the v11 redaction
# algorithm keeps plus ``unsigned.redacted_because``. Every later read then
# returns the redacted form; a rebuilt view arrives at the same result because it
# replays in log order. Whether the redaction takes effect is decided here,
# against the room's state at that point in the log, so a redaction sent through
# the plain /send path cannot bypass the ``redact`` power level.


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
    version = room_versions.version_of(state).identifier
    redacted = redaction.redacted_by(stored, event, version)
    conn.execute("UPDATE events SET json = ? WHERE event_id = ?", (json.dumps(redacted), target_id))
    # Redaction strips m.relates_to: the edit, reaction or reply no longer relates.
    conn.execute("DELETE FROM relations WHERE event_id = ?", (target_id,))
    return set()  # the room's members are woken for the redaction event itself
