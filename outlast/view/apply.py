"""How each kind of log message changes the view. Called inside one transaction.

Every function returns the user ids whose /sync might now return something
new, so the projector can wake exactly those long-polls.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from typing import Any

from outlast.core import auth, jsonenc
from outlast.core.errors import MatrixError
from outlast.log.client import LogMessage
from outlast.view.extension import EventHook, OpHandler
from outlast.view.queries import StateMap
from outlast.view.state_cache import BatchStates


def apply_message(
    conn: sqlite3.Connection, msg: LogMessage, states: BatchStates | None = None
) -> set[str]:
    """Apply one message. ``states`` serves room state to room events (the
    projector passes its batch's; without one, state is read from ``conn``)."""
    op = str(msg.data.get("op"))
    if op == "events":
        return _room_events(conn, msg, states or BatchStates(conn, None))
    handler: OpHandler | None = _HANDLERS.get(op)
    if handler is None:
        handler = _extension_handlers().get(op)
    if handler is None:
        return set()  # unknown ops from a newer version are skipped, not fatal
    return handler(conn, msg)


@functools.cache
def _extension_handlers() -> dict[str, OpHandler]:
    """Merged once: this runs for every message the projector applies."""
    from outlast.view.extensions import EXTENSIONS

    merged: dict[str, OpHandler] = {}
    for ext in EXTENSIONS:
        merged.update(ext.handlers)
    return merged


@functools.cache
def _event_hooks() -> tuple[EventHook, ...]:
    """Collected once: this runs for every room event the projector applies."""
    from outlast.view.extensions import EXTENSIONS

    return tuple(hook for ext in EXTENSIONS for hook in ext.event_hooks)


def _register(conn: sqlite3.Connection, msg: LogMessage) -> set[str]:
    d = msg.data
    conn.execute(
        "INSERT OR IGNORE INTO users (user_id, password_hash, created_ts, account_seq, admin)"
        " VALUES (?, ?, ?, ?, ?)",
        (d["user_id"], d.get("password_hash"), d.get("ts", 0), msg.seq, int(d.get("admin", 0))),
    )
    device = d.get("device")
    if device:
        _add_device(conn, d["user_id"], device, d.get("ts", 0))
    return {d["user_id"]}


def _add_device(conn: sqlite3.Connection, user_id: str, device: dict[str, Any], ts: int) -> None:
    # A login that reuses a device id replaces that device's old token.
    conn.execute(
        "DELETE FROM tokens WHERE user_id = ? AND device_id = ?", (user_id, device["device_id"])
    )
    conn.execute(
        "INSERT INTO devices (user_id, device_id, display_name, created_ts) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id, device_id) DO UPDATE SET display_name ="
        " COALESCE(excluded.display_name, devices.display_name)",
        (user_id, device["device_id"], device.get("display_name"), ts),
    )
    conn.execute(
        "INSERT OR REPLACE INTO tokens (token_hash, user_id, device_id) VALUES (?, ?, ?)",
        (device["token_hash"], user_id, device["device_id"]),
    )


def _remove_devices(conn: sqlite3.Connection, user_id: str, keep: str | None = None) -> None:
    conn.execute("DELETE FROM tokens WHERE user_id = ? AND device_id IS NOT ?", (user_id, keep))
    conn.execute("DELETE FROM devices WHERE user_id = ? AND device_id IS NOT ?", (user_id, keep))


def _password(conn: sqlite3.Connection, msg: LogMessage) -> set[str]:
    d = msg.data
    conn.execute(
        "UPDATE users SET password_hash = ?, account_seq = ? WHERE user_id = ?",
        (d["password_hash"], msg.seq, d["user_id"]),
    )
    if d.get("logout_devices"):
        _remove_devices(conn, d["user_id"], keep=d.get("keep_device"))
    return {d["user_id"]}


def _deactivate(conn: sqlite3.Connection, msg: LogMessage) -> set[str]:
    user = msg.data["user_id"]
    conn.execute(
        "UPDATE users SET deactivated = 1, password_hash = NULL, account_seq = ? WHERE user_id = ?",
        (msg.seq, user),
    )
    _remove_devices(conn, user)
    return {user}


def _admin(conn: sqlite3.Connection, msg: LogMessage) -> set[str]:
    """Grant or revoke the server-administrator flag (``outlast admin grant|revoke``)."""
    d = msg.data
    conn.execute(
        "UPDATE users SET admin = ? WHERE user_id = ?", (int(bool(d.get("admin"))), d["user_id"])
    )
    return set()


def _login(conn: sqlite3.Connection, msg: LogMessage) -> set[str]:
    d = msg.data
    _add_device(conn, d["user_id"], d["device"], d.get("ts", 0))
    return {d["user_id"]}


def _logout(conn: sqlite3.Connection, msg: LogMessage) -> set[str]:
    d = msg.data
    row = conn.execute(
        "SELECT device_id FROM tokens WHERE token_hash = ?", (d["token_hash"],)
    ).fetchone()
    if row is not None:
        conn.execute(
            "DELETE FROM tokens WHERE user_id = ? AND device_id = ?", (d["user_id"], row[0])
        )
        conn.execute(
            "DELETE FROM devices WHERE user_id = ? AND device_id = ?", (d["user_id"], row[0])
        )
    return {d["user_id"]}


def _logout_all(conn: sqlite3.Connection, msg: LogMessage) -> set[str]:
    _remove_devices(conn, msg.data["user_id"])
    return {msg.data["user_id"]}


def _filter(conn: sqlite3.Connection, msg: LogMessage) -> set[str]:
    d = msg.data
    conn.execute(
        "INSERT OR IGNORE INTO filters (user_id, filter_id, json) VALUES (?, ?, ?)",
        (d["user_id"], d["filter_id"], json.dumps(d["filter"])),
    )
    return set()


def _alias(conn: sqlite3.Connection, msg: LogMessage) -> set[str]:
    d = msg.data
    conn.execute(
        "INSERT OR REPLACE INTO aliases (alias, room_id, creator) VALUES (?, ?, ?)",
        (d["alias"], d["room_id"], d["creator"]),
    )
    return set()


def _alias_delete(conn: sqlite3.Connection, msg: LogMessage) -> set[str]:
    conn.execute("DELETE FROM aliases WHERE alias = ?", (msg.data["alias"],))
    return set()


def _room_events(conn: sqlite3.Connection, msg: LogMessage, states: BatchStates) -> set[str]:
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
    txn = msg.data.get("txn") or {}
    events = msg.data.get("events", [])
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
        if "state_key" in event:
            _apply_state(conn, msg, idx, event)
            states.changed(room_id)
            if event["type"] == "m.room.member":
                affected.add(event["state_key"])
        for hook in _event_hooks():
            affected |= hook(conn, msg, idx, event)
        if event["type"] == "m.room.redaction":
            states.changed(room_id)  # it may have rewritten a state event
    for room_id in rooms:
        affected |= states.audience(room_id)
    return affected


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


def _forget(conn: sqlite3.Connection, msg: LogMessage) -> set[str]:
    d = msg.data
    conn.execute(
        "UPDATE members SET forgotten = 1 WHERE room_id = ? AND user_id = ?"
        " AND membership IN ('leave', 'ban')",
        (d["room_id"], d["user_id"]),
    )
    return set()


_HANDLERS = {
    "register": _register,
    "password": _password,
    "deactivate": _deactivate,
    "admin": _admin,
    "login": _login,
    "logout": _logout,
    "logout_all": _logout_all,
    "filter": _filter,
    "alias": _alias,
    "alias_delete": _alias_delete,
    "forget": _forget,
}
