"""How each kind of fact changes the view. Called inside the projector's transaction.

:func:`apply_message` decodes a log message into its fact type and
:func:`apply_fact` dispatches on the type: one ``case`` per kind, so the whole
vocabulary and who applies it is on one screen. Every function returns the
user ids whose /sync might now return something new, so the projector can wake
exactly those long-polls. A message that does not decode (an op from a newer
version, or a malformed fact) is skipped, never retried for ever.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

from outlast.account_data import tables as ext_account_data
from outlast.core import auth, jsonenc
from outlast.core.errors import MatrixError
from outlast.directory import tables as ext_directory
from outlast.e2ee import signing_tables as ext_cross_signing
from outlast.e2ee import tables as ext_devices
from outlast.log.client import LogMessage
from outlast.log.facts import (
    AccountDataSet,
    Admin,
    AliasDeleted,
    AliasSet,
    CrossSigningKeysSet,
    Deactivate,
    DecodeError,
    DeviceRenamed,
    DevicesDeleted,
    Fact,
    FilterStored,
    KeyClaimed,
    KeysUploaded,
    Login,
    Logout,
    LogoutAll,
    NewDevice,
    Password,
    PresenceSet,
    ProfileDeleted,
    ProfileSet,
    PusherDeleted,
    PusherSet,
    PushRulesSet,
    ReceiptsMarked,
    Register,
    RoomEvents,
    RoomForgotten,
    RoomListed,
    RoomTagged,
    SignaturesMade,
    ToDeviceReceived,
    ToDeviceSent,
    UnknownFact,
    decode,
)
from outlast.push import tables as ext_push
from outlast.receipts import tables as ext_receipts
from outlast.rooms import redaction_tables as ext_redactions
from outlast.view.queries import StateMap
from outlast.view.state_cache import BatchStates

log = logging.getLogger(__name__)


def apply_message(
    conn: sqlite3.Connection, msg: LogMessage, states: BatchStates | None = None
) -> set[str]:
    """Apply one message. ``states`` serves room state to room events (the
    projector passes its batch's; without one, state is read from ``conn``)."""
    try:
        fact = decode(msg.data)
    except UnknownFact:
        return set()  # from a newer version: skipped, not fatal
    except DecodeError as exc:
        log.error("malformed fact %s:%d skipped: %s", msg.stream, msg.seq, exc)
        return set()
    return apply_fact(conn, msg, fact, states or BatchStates(conn, None))


def apply_fact(
    conn: sqlite3.Connection, msg: LogMessage, fact: Fact, states: BatchStates
) -> set[str]:
    """The view's rule for each kind of fact (``msg`` gives its place in the log)."""
    match fact:
        # accounts, sessions, devices
        case Register():
            return _register(conn, msg, fact)
        case Login():
            return _login(conn, fact)
        case Logout():
            return _logout(conn, fact)
        case LogoutAll():
            return _logout_all(conn, fact)
        case Password():
            return _password(conn, msg, fact)
        case Deactivate():
            return _deactivate(conn, msg, fact)
        case Admin():
            return _admin(conn, fact)
        case FilterStored():
            return _filter(conn, fact)
        case DeviceRenamed():
            return ext_devices.apply_device_renamed(conn, msg, fact)
        case DevicesDeleted():
            return ext_devices.apply_devices_deleted(conn, msg, fact)
        # rooms and aliases
        case RoomEvents():
            return _room_events(conn, msg, fact, states)
        case ReceiptsMarked():
            return ext_receipts.apply_marks(conn, msg, fact)
        case RoomListed():
            return ext_directory.apply_room_listed(conn, msg, fact)
        case AliasSet():
            return _alias(conn, fact)
        case AliasDeleted():
            return _alias_delete(conn, fact)
        case RoomForgotten():
            return _forget(conn, fact)
        # what users set for themselves
        case PresenceSet():
            return ext_receipts.apply_presence(conn, msg, fact)
        case ProfileSet():
            return ext_directory.apply_profile_set(conn, msg, fact)
        case ProfileDeleted():
            return ext_directory.apply_profile_delete(conn, msg, fact)
        case AccountDataSet():
            return ext_account_data.apply_account_data(conn, msg, fact)
        case RoomTagged():
            return ext_account_data.apply_room_tag(conn, msg, fact)
        case PushRulesSet():
            return ext_push.apply_push_rules(conn, msg, fact)
        case PusherSet():
            return ext_push.apply_pusher_set(conn, msg, fact)
        case PusherDeleted():
            return ext_push.apply_pusher_delete(conn, msg, fact)
        # end-to-end encryption
        case KeysUploaded():
            return ext_devices.apply_keys_uploaded(conn, msg, fact)
        case KeyClaimed():
            return ext_devices.apply_key_claimed(conn, msg, fact)
        case CrossSigningKeysSet():
            return ext_cross_signing.apply_keys(conn, msg, fact)
        case SignaturesMade():
            return ext_cross_signing.apply_signatures(conn, msg, fact)
        case ToDeviceSent():
            return ext_devices.apply_to_device(conn, msg, fact)
        case ToDeviceReceived():
            return ext_devices.apply_to_device_received(conn, msg, fact)
        case _:
            return set()  # control facts (health probes): no view follows their streams


def _register(conn: sqlite3.Connection, msg: LogMessage, fact: Register) -> set[str]:
    conn.execute(
        "INSERT OR IGNORE INTO users (user_id, password_hash, created_ts, account_seq, admin)"
        " VALUES (?, ?, ?, ?, ?)",
        (fact.user_id, fact.password_hash, fact.ts, msg.seq, int(fact.admin)),
    )
    if fact.device is not None:
        _add_device(conn, fact.user_id, fact.device, fact.ts)
    return {fact.user_id}


def _add_device(conn: sqlite3.Connection, user_id: str, device: NewDevice, ts: int) -> None:
    # A login that reuses a device id replaces that device's old token.
    conn.execute(
        "DELETE FROM tokens WHERE user_id = ? AND device_id = ?", (user_id, device.device_id)
    )
    conn.execute(
        "INSERT INTO devices (user_id, device_id, display_name, created_ts) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id, device_id) DO UPDATE SET display_name ="
        " COALESCE(excluded.display_name, devices.display_name)",
        (user_id, device.device_id, device.display_name, ts),
    )
    conn.execute(
        "INSERT OR REPLACE INTO tokens (token_hash, user_id, device_id) VALUES (?, ?, ?)",
        (device.token_hash, user_id, device.device_id),
    )


def _remove_devices(conn: sqlite3.Connection, user_id: str, keep: str | None = None) -> None:
    conn.execute("DELETE FROM tokens WHERE user_id = ? AND device_id IS NOT ?", (user_id, keep))
    conn.execute("DELETE FROM devices WHERE user_id = ? AND device_id IS NOT ?", (user_id, keep))


def _password(conn: sqlite3.Connection, msg: LogMessage, fact: Password) -> set[str]:
    conn.execute(
        "UPDATE users SET password_hash = ?, account_seq = ? WHERE user_id = ?",
        (fact.password_hash, msg.seq, fact.user_id),
    )
    if fact.logout_devices:
        _remove_devices(conn, fact.user_id, keep=fact.keep_device)
    return {fact.user_id}


def _deactivate(conn: sqlite3.Connection, msg: LogMessage, fact: Deactivate) -> set[str]:
    conn.execute(
        "UPDATE users SET deactivated = 1, password_hash = NULL, account_seq = ? WHERE user_id = ?",
        (msg.seq, fact.user_id),
    )
    _remove_devices(conn, fact.user_id)
    return {fact.user_id}


def _admin(conn: sqlite3.Connection, fact: Admin) -> set[str]:
    """Grant or revoke the server-administrator flag (``outlast admin grant|revoke``)."""
    conn.execute("UPDATE users SET admin = ? WHERE user_id = ?", (int(fact.admin), fact.user_id))
    return set()


def _login(conn: sqlite3.Connection, fact: Login) -> set[str]:
    _add_device(conn, fact.user_id, fact.device, fact.ts)
    return {fact.user_id}


def _logout(conn: sqlite3.Connection, fact: Logout) -> set[str]:
    row = conn.execute(
        "SELECT device_id FROM tokens WHERE token_hash = ?", (fact.token_hash,)
    ).fetchone()
    if row is not None:
        conn.execute(
            "DELETE FROM tokens WHERE user_id = ? AND device_id = ?", (fact.user_id, row[0])
        )
        conn.execute(
            "DELETE FROM devices WHERE user_id = ? AND device_id = ?", (fact.user_id, row[0])
        )
    return {fact.user_id}


def _logout_all(conn: sqlite3.Connection, fact: LogoutAll) -> set[str]:
    _remove_devices(conn, fact.user_id)
    return {fact.user_id}


def _filter(conn: sqlite3.Connection, fact: FilterStored) -> set[str]:
    conn.execute(
        "INSERT OR IGNORE INTO filters (user_id, filter_id, json) VALUES (?, ?, ?)",
        (fact.user_id, fact.filter_id, json.dumps(fact.filter)),
    )
    return set()


def _alias(conn: sqlite3.Connection, fact: AliasSet) -> set[str]:
    conn.execute(
        "INSERT OR REPLACE INTO aliases (alias, room_id, creator) VALUES (?, ?, ?)",
        (fact.alias, fact.room_id, fact.creator),
    )
    return set()


def _alias_delete(conn: sqlite3.Connection, fact: AliasDeleted) -> set[str]:
    conn.execute("DELETE FROM aliases WHERE alias = ?", (fact.alias,))
    return set()


def _room_events(
    conn: sqlite3.Connection, msg: LogMessage, fact: RoomEvents, states: BatchStates
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
        if "state_key" in event:
            _apply_state(conn, msg, idx, event)
            states.changed(room_id)
            if event["type"] == "m.room.member":
                affected.add(event["state_key"])
        if event["type"] == "m.room.redaction":
            affected |= ext_redactions.apply_redaction(conn, msg, idx, event)
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


def _forget(conn: sqlite3.Connection, fact: RoomForgotten) -> set[str]:
    conn.execute(
        "UPDATE members SET forgotten = 1 WHERE room_id = ? AND user_id = ?"
        " AND membership IN ('leave', 'ban')",
        (fact.room_id, fact.user_id),
    )
    return set()
