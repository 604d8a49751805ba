"""View tables and log handlers for push rules and pushers.

- ``push_rules``: one row per user holding the whole rules document (see
  ``outlast/core/pushrules.py``) and the log sequence that wrote it. The
  service fences its next write on that sequence, so two concurrent edits
  (at two sites) cannot silently overwrite each other; /sync uses it to tell
  whether ``m.push_rules`` changed since a token.
- ``pushers``: one row per (app_id, pushkey, user).
- ``push_actions``: one row per (user, event) that notified, written when the
  event is applied (:func:`record_notifications`), so /sync counts and
  /notifications are plain reads. Every input of the evaluation (the room's
  state at the event, the event, the user's rules as this view holds them)
  is taken at the event's place in the log; see docs/push.md. Old rows are
  forgotten as events are applied (``push/prune.py``), also by log facts only.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping
from typing import Any

from outlast.core import auth, push_counts
from outlast.core.push_counts import MAIN, Counts, ReadUpTo, RoomCounts, read_up_to
from outlast.core.push_eval import CompiledRule, Recipient, compile_rules, evaluate
from outlast.core.push_prune import PrunePolicy
from outlast.core.redaction import redaction_target
from outlast.core.unread import Position
from outlast.log.client import LogMessage
from outlast.log.facts import PusherDeleted, PusherSet, PushRulesSet
from outlast.receipts.tables import read_marks
from outlast.view.queries import StateMap

SCHEMA = """
CREATE TABLE IF NOT EXISTS push_rules (
    user_id TEXT PRIMARY KEY, doc TEXT NOT NULL, seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pushers (
    app_id TEXT NOT NULL, pushkey TEXT NOT NULL, user_id TEXT NOT NULL,
    pusher TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (app_id, pushkey, user_id)
);
CREATE INDEX IF NOT EXISTS pushers_by_user ON pushers (user_id);
CREATE TABLE IF NOT EXISTS push_actions (
    user_id TEXT NOT NULL, room_id TEXT NOT NULL, stream TEXT NOT NULL,
    seq INTEGER NOT NULL, idx INTEGER NOT NULL,
    thread_id TEXT NOT NULL, highlight INTEGER NOT NULL, actions TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, seq, idx)
);
CREATE INDEX IF NOT EXISTS push_actions_by_time ON push_actions (user_id, ts, seq, idx);
CREATE INDEX IF NOT EXISTS push_actions_by_message ON push_actions (stream, seq);
"""

log = logging.getLogger(__name__)

# A row names its event by place, the events table's primary key, not by event id: the
# id is ~44 bytes stored again in 15 rows per message in a room of 16 (bench/RESULTS.md).
JOIN_EVENTS = "JOIN events e ON e.stream = p.stream AND e.seq = p.seq AND e.idx = p.idx"

# Keys Outlast adds to a stored pusher (never shown to clients).
OWN_KEY_PREFIX = "io.outlast."
PUSHKEY_TS_KEY = "io.outlast.pushkey_ts"

# A room's counts look at no more than this many notifications after the read
# position: the numbers saturate there rather than scanning a long history.
MAX_COUNTED = 1000
MAX_COMPILED = 4096  # users whose compiled rules are kept
_compiled: dict[tuple[str, str], tuple[CompiledRule, ...]] = {}
# The stored JSON of a compiled rule's actions, by the tuple's id; the tuple is kept in
# the value, so while an entry exists its id cannot name another tuple.
_texts: dict[int, tuple[tuple[Any, ...], str]] = {}


def apply_push_rules(conn: sqlite3.Connection, msg: LogMessage, fact: PushRulesSet) -> set[str]:
    conn.execute(
        "INSERT INTO push_rules (user_id, doc, seq) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET doc = excluded.doc, seq = excluded.seq",
        (fact.user_id, json.dumps(fact.doc), msg.seq),
    )
    return {fact.user_id}


def apply_pusher_set(conn: sqlite3.Connection, msg: LogMessage, fact: PusherSet) -> set[str]:
    pusher = fact.pusher
    if not fact.append:
        # Spec: without append, this pushkey now belongs to this user only.
        conn.execute(
            "DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id != ?",
            (pusher["app_id"], pusher["pushkey"], fact.user_id),
        )
    conn.execute(
        "INSERT INTO pushers (app_id, pushkey, user_id, pusher, seq) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (app_id, pushkey, user_id) DO UPDATE"
        " SET pusher = excluded.pusher, seq = excluded.seq",
        (pusher["app_id"], pusher["pushkey"], fact.user_id, json.dumps(pusher), msg.seq),
    )
    return set()


def apply_pusher_delete(conn: sqlite3.Connection, msg: LogMessage, fact: PusherDeleted) -> set[str]:
    conn.execute(
        "DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id = ?",
        (fact.app_id, fact.pushkey, fact.user_id),
    )
    return set()


def rules_document(conn: sqlite3.Connection, user_id: str) -> tuple[dict[str, Any] | None, int]:
    """The user's stored rules document (None: untouched defaults) and its sequence."""
    row = conn.execute("SELECT doc, seq FROM push_rules WHERE user_id = ?", (user_id,)).fetchone()
    if row is None:
        return None, 0
    return json.loads(row["doc"]), int(row["seq"])


def pushers(conn: sqlite3.Connection, user_id: str) -> list[dict[str, Any]]:
    """The user's pushers as GET /pushers shows them (without Outlast's own keys)."""
    return [
        {k: v for k, v in stored.items() if not k.startswith(OWN_KEY_PREFIX)}
        for stored, _ in pushers_with_time(conn, user_id)
    ]


def pushers_with_time(conn: sqlite3.Connection, user_id: str) -> list[tuple[dict[str, Any], int]]:
    """Each stored pusher and when its pushkey was set (seconds; 0 if not recorded)."""
    rows = conn.execute(
        "SELECT pusher FROM pushers WHERE user_id = ? ORDER BY seq", (user_id,)
    ).fetchall()
    out = []
    for row in rows:
        stored = json.loads(row["pusher"])
        ts = stored.get(PUSHKEY_TS_KEY)
        out.append((stored, ts if isinstance(ts, int) else 0))
    return out


def actions_at(conn: sqlite3.Connection, stream: str, seq: int) -> list[sqlite3.Row]:
    """The notifications one log message produced, with their events."""
    return conn.execute(
        "SELECT p.user_id, p.room_id, e.event_id, p.actions, e.json FROM push_actions p"
        f" {JOIN_EVENTS} WHERE p.stream = ? AND p.seq = ?"
        " ORDER BY p.idx, p.user_id",
        (stream, seq),
    ).fetchall()


# --- evaluating events as they are applied -------------------------------------


def record_notifications(
    conn: sqlite3.Connection,
    msg: LogMessage,
    idx: int,
    event: Mapping[str, Any],
    state: StateMap,
    policy: PrunePolicy,
) -> set[str]:
    """Evaluate a just-stored event for its recipients (see :func:`_record`), then
    forget what ``policy`` says of their older notifications in the room.

    Never raises for a fault of its own: the projector retries a failing batch
    for ever, and a fault in push evaluation must not stop the view. A failure is
    logged and the event notifies no one at this view (rows are written all at
    once, or not at all). But a failure that ended the projector's transaction
    (SQLite rolls the whole transaction back on a full disk or an I/O error) is
    raised: swallowed, the rest of the batch would run in autocommit and commit
    positions past events that were rolled back — a disk-full drill lost 17
    messages at a site's view that way.
    """
    try:
        notified = _record(conn, msg, idx, event, state)
    except Exception:
        if not conn.in_transaction:
            raise
        log.exception("push evaluation of %s failed; it notifies no one", event.get("event_id"))
        return set()
    now = event.get("origin_server_ts")
    if notified and isinstance(now, int) and policy.due(msg.seq):
        try:
            for user_id in sorted(notified):
                prune(conn, user_id, str(event.get("room_id")), now, policy)
        except Exception:  # one DELETE per user: each is whole or not at all
            if not conn.in_transaction:
                raise  # the transaction is gone (see above)
            log.exception("pruning notifications at %s failed", event.get("event_id"))
    return notified


def _record(
    conn: sqlite3.Connection, msg: LogMessage, idx: int, event: Mapping[str, Any], state: StateMap
) -> set[str]:
    """Evaluate a just-stored event for each recipient; store a row for each it notifies.

    Recipients are the room's joined members (``state`` is the room's state
    with the event applied) and the target of an invite, minus the sender.
    Returns the users who got a row (their /sync counts changed).
    """
    room_id, sender = str(event.get("room_id")), event.get("sender")
    if event.get("type") == "m.room.redaction":
        return _forget_redacted(conn, room_id, event)
    joined: list[str] = []
    names: dict[str, str | None] = {}
    for (event_type, key), member in state.items():
        if event_type != "m.room.member":
            continue
        content = member.get("content") or {}
        name = content.get("displayname")
        names[key] = name if isinstance(name, str) else None
        if content.get("membership") == "join":
            joined.append(key)
    recipients = set(joined)
    content = event.get("content")
    if (
        event.get("type") == "m.room.member"
        and isinstance(content, Mapping)
        and content.get("membership") == "invite"
        and isinstance(event.get("state_key"), str)
    ):
        recipients.add(event["state_key"])
    recipients.discard(str(sender))
    if not recipients:
        return set()
    levels = auth.power_levels(state)
    thread_id = push_counts.thread_of(event, lambda eid: _event_in_room(conn, room_id, eid))
    ts = event.get("origin_server_ts")
    rows = []
    docs = _rules_documents(conn, recipients)
    memo: dict[str, bool] = {}  # one event, one room state: see push_eval.evaluate
    for user_id in sorted(recipients):
        recipient = Recipient(user_id, names.get(user_id), len(joined), levels)
        outcome = evaluate(_compiled_for(user_id, docs.get(user_id, "")), event, recipient, memo)
        if not outcome.notify:
            continue
        text = _actions_text(outcome.actions)
        rows.append(
            (
                user_id,
                room_id,
                msg.stream,
                msg.seq,
                idx,
                thread_id,
                int(outcome.highlight),
                text,
                ts if isinstance(ts, int) else 0,
            )
        )
    conn.executemany(
        "INSERT OR IGNORE INTO push_actions (user_id, room_id, stream, seq, idx,"
        " thread_id, highlight, actions, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return {row[0] for row in rows}


def _forget_redacted(
    conn: sqlite3.Connection, room_id: str, redaction: Mapping[str, Any]
) -> set[str]:
    """A redaction that took effect (``rooms/tables.py`` applied it just before) removes
    its target's notifications, as Synapse does: a deleted message stops counting and
    leaves /notifications. Redactions themselves notify no one under the default rules."""
    target_id = redaction_target(redaction)
    row = (
        conn.execute(
            "SELECT json, stream, seq, idx FROM events WHERE event_id = ? AND room_id = ?",
            (target_id, room_id),
        ).fetchone()
        if target_id
        else None
    )
    if row is None:
        return set()
    because = (json.loads(row[0]).get("unsigned") or {}).get("redacted_because") or {}
    if because.get("event_id") != redaction.get("event_id"):
        return set()
    place = tuple(row[1:])
    where = " FROM push_actions WHERE stream = ? AND seq = ? AND idx = ?"
    users = {str(r[0]) for r in conn.execute("SELECT user_id" + where, place)}
    conn.execute("DELETE" + where, place)
    return users


def _event_in_room(conn: sqlite3.Connection, room_id: str, event_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT json FROM events WHERE event_id = ? AND room_id = ?", (event_id, room_id)
    ).fetchone()
    return json.loads(row[0]) if row else None


def _rules_documents(conn: sqlite3.Connection, user_ids: set[str]) -> dict[str, str]:
    """The stored rules documents (JSON text) of those users who edited theirs."""
    found: dict[str, str] = {}
    ids = sorted(user_ids)
    for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT user_id, doc FROM push_rules WHERE user_id IN ({marks})", chunk
        ):
            found[str(row[0])] = str(row[1])
    return found


def _compiled_for(user_id: str, text: str) -> tuple[CompiledRule, ...]:
    key = (user_id, text)
    rules = _compiled.get(key)
    if rules is None:
        if len(_compiled) >= MAX_COMPILED:
            _compiled.clear()
            _texts.clear()
        rules = _compiled[key] = compile_rules(user_id, json.loads(text) if text else None)
    return rules


def _actions_text(actions: tuple[Any, ...]) -> str:
    known = _texts.get(id(actions))
    if known is None:
        known = _texts[id(actions)] = (actions, json.dumps(list(actions)))
    return known[1]


# --- forgetting old notifications ---------------------------------------------
# core/push_prune.py's rule as one SQL statement, run in the projector's
# transaction right after an event's notifications are written, for each user it
# notified, on the messages ``PrunePolicy.due`` picks. Its inputs (the user's rows
# and read receipts in the room, the event's ``origin_server_ts``) are facts of the
# room's partition, so every site and every rebuild forgets the same rows.


def prune(
    conn: sqlite3.Connection, user_id: str, room_id: str, now: int, policy: PrunePolicy
) -> int:
    """Delete what ``push_prune.doomed`` forgets of the user's rows in the room; how many."""
    read = read_up_to(read_marks(conn, room_id, user_id))
    seen, seen_args = _read_condition(read)
    sql = (
        "WITH old AS (SELECT seq, idx, ts, " + seen + " AS r FROM push_actions"
        " WHERE user_id = ? AND room_id = ? AND ts <= ?),"
        " ranked AS (SELECT seq, idx, ts, r,"
        " ROW_NUMBER() OVER (PARTITION BY r ORDER BY seq DESC, idx DESC) AS n FROM old)"
        " DELETE FROM push_actions WHERE user_id = ? AND room_id = ? AND (seq, idx) IN"
        " (SELECT seq, idx FROM ranked WHERE (r AND (n > ? OR ts < ?)) OR (NOT r AND n > ?))"
    )
    args: list[Any] = [
        *seen_args,
        user_id,
        room_id,
        now - policy.min_age_ms,
        user_id,
        room_id,
        policy.keep_read,
        now - policy.max_age_ms,
        policy.keep_unread,
    ]
    before = conn.total_changes  # a statement that starts with WITH has no rowcount
    conn.execute(sql, args)
    return conn.total_changes - before


def _read_condition(read: ReadUpTo) -> tuple[str, list[Any]]:
    """``ReadUpTo.has_read`` over a row's ``(seq, idx, thread_id)``, as SQL and its arguments."""
    parts: list[str] = []
    args: list[Any] = []
    if read.unthreaded is not None:
        parts.append("(seq < ? OR (seq = ? AND idx <= ?))")
        seq, idx = read.unthreaded
        args += [seq, seq, idx]
    for thread_id, (seq, idx) in sorted(read.threads.items()):
        parts.append("(thread_id = ? AND (seq < ? OR (seq = ? AND idx <= ?)))")
        args += [thread_id, seq, seq, idx]
    return ("(" + " OR ".join(parts) + ")" if parts else "FALSE"), args


# --- reading notifications ------------------------------------------------------


def unread_counts(
    conn: sqlite3.Connection,
    user_id: str,
    room_id: str,
    read: ReadUpTo,
    after: Position | None,
    threaded: bool,
) -> RoomCounts:
    """``push_counts.room_counts`` in SQL: the user's notifications in a room after
    ``after`` (their unthreaded receipt or join) and not covered by a threaded receipt,
    the newest ``MAX_COUNTED`` of them, counted per thread.

    Counted by SQLite, not by decoding rows: /sync asks for every joined room and
    delivery for every recipient's badge, so this runs per message per member.
    """
    seq, idx = after or (0, -1)
    sql = (
        "SELECT thread_id, highlight FROM push_actions WHERE user_id = ? AND room_id = ?"
        " AND (seq > ? OR (seq = ? AND idx > ?))"
    )
    args: list[Any] = [user_id, room_id, seq, seq, idx]
    for thread_id, (t_seq, t_idx) in read.threads.items():
        sql += " AND NOT (thread_id = ? AND (seq < ? OR (seq = ? AND idx <= ?)))"
        args += [thread_id, t_seq, t_seq, t_idx]
    sql += " ORDER BY seq DESC, idx DESC LIMIT ?"
    args.append(MAX_COUNTED)
    rows = conn.execute(
        f"SELECT thread_id, COUNT(*), SUM(highlight) FROM ({sql}) AS unread GROUP BY thread_id",
        args,
    ).fetchall()
    room = Counts()
    threads: dict[str, Counts] = {}
    for thread_id, count, highlights in rows:
        counts = Counts(int(count), int(highlights or 0))
        if threaded and str(thread_id) != MAIN:
            threads[str(thread_id)] = counts
        else:
            room = Counts(
                room.notification_count + counts.notification_count,
                room.highlight_count + counts.highlight_count,
            )
    return RoomCounts(room, threads)


def notifications_page(
    conn: sqlite3.Connection,
    user_id: str,
    before: tuple[int, str, int, int] | None,
    limit: int,
    only_highlight: bool,
) -> list[sqlite3.Row]:
    """The user's notifications, newest first, strictly before the ``before`` key.

    The key ``(ts, stream, seq, idx)`` is the same at every site (``ts`` is the
    event's ``origin_server_ts``), so a ``from`` token works at any of them.
    """
    sql = (
        "SELECT p.room_id, p.stream, p.seq, p.idx, e.event_id, p.thread_id, p.highlight,"
        f" p.actions, p.ts, e.json FROM push_actions p {JOIN_EVENTS} WHERE p.user_id = ?"
    )
    args: list[Any] = [user_id]
    if only_highlight:
        sql += " AND p.highlight = 1"
    if before is not None:
        sql += " AND (p.ts, p.stream, p.seq, p.idx) < (?, ?, ?, ?)"
        args += list(before)
    sql += " ORDER BY p.ts DESC, p.stream DESC, p.seq DESC, p.idx DESC LIMIT ?"
    args.append(limit)
    return conn.execute(sql, args).fetchall()
