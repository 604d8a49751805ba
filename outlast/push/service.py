"""Push rules and pushers: stored on the log, read from the view, rules shown in /sync.

Each edit of a user's push rules appends the whole new rules document to
``user_subject(user, "push")`` fenced on the last one, so concurrent edits at
two sites are serialised rather than lost. Pushers go to
``user_subject(user, "pushers")``.

The projector evaluates every room event against each recipient's rules and
stores what notified (``push_actions``, push/tables.py); this service reads
that table for the counts in /sync and for ``GET /notifications``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any

from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core import push_counts, pushrules
from outlast.core.errors import MatrixError, unavailable
from outlast.log.client import FenceBusy, FenceFailed
from outlast.log.facts import Fact, PusherDeleted, PusherSet, PushRulesSet
from outlast.push import tables
from outlast.receipts import tables as receipts
from outlast.sync.window import JoinedRoom, RoomExtras, SyncWindow
from outlast.view import queries

FENCE_ATTEMPTS = 8
PUSHER_KINDS = ("http", "email")


class Push:
    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx
        # (user, room, threaded) -> (partition position computed at, /sync fields).
        # Rows and receipts of a room only change with its partition, so an
        # unmoved partition means unchanged counts.
        self._counts: dict[tuple[str, str, bool], tuple[int, dict[str, Any]]] = {}

    # --- push rules -------------------------------------------------------------

    def rules(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        doc, _ = tables.rules_document(self.ctx.conn, user_id)
        return pushrules.ruleset(user_id, doc)

    def rule(self, user_id: str, kind: str, rule_id: str) -> dict[str, Any]:
        doc, _ = tables.rules_document(self.ctx.conn, user_id)
        return pushrules.find(user_id, doc, kind, rule_id)

    async def put_rule(
        self,
        user_id: str,
        kind: str,
        rule_id: str,
        body: dict[str, Any],
        before: str | None,
        after: str | None,
    ) -> None:
        await self._edit(
            user_id,
            lambda doc: pushrules.put_rule(user_id, doc, kind, rule_id, body, before, after),
        )

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        await self._edit(user_id, lambda doc: pushrules.delete_rule(doc, kind, rule_id))

    async def set_attribute(
        self, user_id: str, kind: str, rule_id: str, attr: str, value: Any
    ) -> None:
        await self._edit(
            user_id, lambda doc: pushrules.set_attribute(user_id, doc, kind, rule_id, attr, value)
        )

    async def _edit(self, user_id: str, change: Callable[[Any], dict[str, Any]]) -> None:
        """Read, change, append fenced on what was read; on a lost race, catch up and redo."""
        subject = self.ctx.names.user_subject(user_id, "push")
        for _ in range(FENCE_ATTEMPTS):
            doc, seq = tables.rules_document(self.ctx.conn, user_id)
            new = change(doc)
            try:
                ack = await self.ctx.log.append(
                    subject,
                    PushRulesSet(user_id, new),
                    expected_seq=seq,
                )
            except FenceBusy:
                await self.ctx.clock.sleep(0.05)
                continue
            except FenceFailed:
                await self.ctx.catch_up(self.ctx.names.users_stream, timeout=2.0)
                continue
            await self.ctx.applied(ack)
            return
        raise unavailable("push rules are being changed concurrently; try again")

    # --- pushers ----------------------------------------------------------------

    def pushers(self, user_id: str) -> list[dict[str, Any]]:
        return tables.pushers(self.ctx.conn, user_id)

    async def set_pusher(self, user_id: str, body: dict[str, Any]) -> None:
        app_id, pushkey = body.get("app_id"), body.get("pushkey")
        if not isinstance(app_id, str) or not app_id or len(app_id) > 64:
            raise _missing("app_id must be a string of at most 64 characters")
        if not isinstance(pushkey, str) or not pushkey or len(pushkey.encode()) > 512:
            raise _missing("pushkey must be a string of at most 512 bytes")
        if "kind" not in body:
            raise _missing("kind is required")
        subject = self.ctx.names.user_subject(user_id, "pushers")
        payload: Fact
        if body["kind"] is None:
            payload = PusherDeleted(user_id, app_id, pushkey)
        else:
            append = bool(body.get("append", False))
            pusher = _pusher(body, app_id, pushkey)
            pusher[tables.PUSHKEY_TS_KEY] = self.ctx.now_ms() // 1000  # the spec's pushkey_ts
            payload = PusherSet(user_id, pusher, append)
        ack = await self.ctx.log.append(subject, payload)
        await self.ctx.applied(ack)

    def notifications(
        self, who: Requester, limit: int, only: str | None, since: str | None = None
    ) -> dict[str, Any]:
        """GET /notifications: what notified the user, newest first, with ``read`` flags.

        ``from`` is the previous page's ``next_token``: the last row's key
        ``ts.seq.idx.stream``, the same at every site. ``only=highlight``
        keeps highlights (the spec names no other value; others are ignored).
        """
        before = _parse_token(since) if since is not None else None
        conn = self.ctx.conn
        rows = tables.notifications_page(
            conn, who.user_id, before, limit, only_highlight=only == "highlight"
        )
        now = self.ctx.now_ms()
        reads: dict[str, push_counts.ReadUpTo] = {}
        out = []
        for row in rows:
            room_id = str(row["room_id"])
            if room_id not in reads:
                marks = receipts.read_marks(conn, room_id, who.user_id)
                reads[room_id] = push_counts.read_up_to(marks)
            event = json.loads(row["json"])
            unsigned = dict(event.get("unsigned") or {})
            unsigned["age"] = max(0, now - int(event.get("origin_server_ts", 0)))
            event["unsigned"] = unsigned
            position = (int(row["seq"]), int(row["idx"]))
            out.append(
                {
                    "actions": json.loads(row["actions"]),
                    "event": event,
                    "read": reads[room_id].has_read(position, str(row["thread_id"])),
                    "room_id": room_id,
                    "ts": int(row["ts"]),
                }
            )
        body: dict[str, Any] = {"notifications": out}
        if len(rows) == limit:
            last = rows[-1]
            body["next_token"] = f"{last['ts']}.{last['seq']}.{last['idx']}.{last['stream']}"
        return body

    # --- /sync: counts ----------------------------------------------------------

    def room_extras(self, window: SyncWindow, room: JoinedRoom) -> RoomExtras | None:
        """``unread_notifications`` (and per thread, if asked) from the stored push actions."""
        key = (window.user_id, room.room_id, window.threaded)
        upto = window.upto(room.stream)
        cached = self._counts.get(key)
        if cached is not None and cached[0] == upto:
            return RoomExtras(unread=cached[1])
        counts = self.room_counts(window.user_id, room.room_id, window.threaded)
        fields = counts.sync_fields(window.threaded)
        if len(self._counts) > 100_000:
            self._counts.clear()
        self._counts[key] = (upto, fields)
        return RoomExtras(unread=fields)

    def touched(self, window: SyncWindow) -> AbstractSet[str] | None:
        """No room of its own: counts are stored with the events and reset by
        receipts, so a room whose counts changed is already touched by those."""
        return frozenset()

    def unread_total(self, user_id: str) -> int:
        """The badge a push gateway shows: unread notifications across the user's rooms."""
        rooms = queries.joined_rooms(self.ctx.conn, user_id)
        return push_counts.badge(self.room_counts(user_id, room_id) for room_id in rooms)

    def room_counts(
        self, user_id: str, room_id: str, threaded: bool = False
    ) -> push_counts.RoomCounts:
        """Counts of the user's notifications in the room not yet read (nor from before
        their last join: an earlier stay's unread notifications are not carried over)."""
        conn = self.ctx.conn
        read = push_counts.read_up_to(receipts.read_marks(conn, room_id, user_id))
        starts = [p for p in (read.unthreaded, queries.last_join(conn, room_id, user_id)) if p]
        after = max(starts) if starts else None
        return tables.unread_counts(conn, user_id, room_id, read, after, threaded)

    # --- /sync: m.push_rules in account_data ------------------------------------

    def top_extras(self, window: SyncWindow) -> dict[str, Any]:
        """The ruleset on an initial sync, and again whenever it changed since ``since``."""
        user_id = window.user_id
        doc, seq = tables.rules_document(self.ctx.conn, user_id)
        users = self.ctx.names.users_stream
        after = window.after(users)
        if after is not None and not after < seq <= window.upto(users):
            return {}
        event = {"type": "m.push_rules", "content": {"global": pushrules.ruleset(user_id, doc)}}
        return {"account_data": [event]}


def _parse_token(token: str) -> tuple[int, str, int, int]:
    parts = token.split(".", 3)
    try:
        if len(parts) == 4:
            return int(parts[0]), parts[3], int(parts[1]), int(parts[2])
    except ValueError:
        pass
    raise MatrixError(400, "M_INVALID_PARAM", "from is not a token this server gave")


def _missing(error: str) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", error)


def _pusher(body: dict[str, Any], app_id: str, pushkey: str) -> dict[str, Any]:
    kind = body["kind"]
    if kind not in PUSHER_KINDS:
        raise MatrixError(400, "M_INVALID_PARAM", "kind must be http, email or null")
    missing = [
        k
        for k in ("app_display_name", "device_display_name", "lang", "data")
        if not isinstance(body.get(k), dict if k == "data" else str)
    ]
    if missing:
        raise _missing("missing or invalid: " + ", ".join(missing))
    data = body["data"]
    if kind == "http" and not isinstance(data.get("url"), str):
        raise _missing("data.url is required for http pushers")
    pusher = {
        "app_id": app_id,
        "pushkey": pushkey,
        "kind": kind,
        "app_display_name": body["app_display_name"],
        "device_display_name": body["device_display_name"],
        "lang": body["lang"],
        "data": data,
    }
    if isinstance(body.get("profile_tag"), str):
        pusher["profile_tag"] = body["profile_tag"]
    return pusher
