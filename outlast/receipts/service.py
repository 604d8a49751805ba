"""Receipts, read markers, unread notification counts and the per-message unread number.

Write side: a receipt or marker is a durable fact appended (unfenced) to the
room's receipt subject, in the room's partition stream; the projector keeps
the furthest receipt per (room, user, type, thread) (``receipts/tables.py``).

Read side, as a /sync source (``sync/window.py``) and an event decorator:

- /sync carries ``m.receipt`` ephemeral events for receipts that changed after
  the token's position in the room's partition (all current ones on an initial
  sync; ``m.read.private`` only to its owner), the user's ``m.fully_read``
  marker as room account data (``unread_notifications`` come from the push
  rules: outlast/push/service.py);
- an event decorator sets ``unsigned["io.outlast.unread_count"]`` on messages
  in /sync, /messages and /event: the joined members (sender excluded) whose
  read position is before the message.

Live updates of the unread number: the count is computed when an event is
served, so it is exact at that moment, but the server does not re-send old
events when someone reads. Instead a public receipt wakes the long-polls of
all joined members, and the sender's /sync receives the ``m.receipt`` event
from which the client recomputes the number for every earlier message (a
receipt on a later event implies read). Private receipts lower the number too,
but produce nothing for others; the lower number shows the next time the
event is fetched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Set as AbstractSet
from typing import Any

from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core import unread
from outlast.core.errors import MatrixError, bad_json, forbidden, not_found
from outlast.log.facts import ReceiptsMarked
from outlast.receipts import tables as store
from outlast.sync.window import JoinedRoom, NothingOnTop, RoomExtras, SyncWindow
from outlast.view import queries

MAX_THREAD_ID = 255


def invalid(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", error)


class Receipts(NothingOnTop):
    """The service behind the receipt and read-marker endpoints, and its /sync extension."""

    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx

    # --- writing ---------------------------------------------------------------

    async def receipt(
        self, who: Requester, room_id: str, receipt_type: str, event_id: str, body: dict[str, Any]
    ) -> None:
        """POST /rooms/{roomId}/receipt/{receiptType}/{eventId}"""
        if receipt_type not in unread.MARKER_TYPES:
            raise invalid(f"unknown receipt type {receipt_type[:64]!r}")
        thread_id = body.get("thread_id")
        if thread_id is not None:
            if receipt_type == "m.fully_read":
                raise invalid("m.fully_read markers are not threaded")
            if not isinstance(thread_id, str) or not thread_id or len(thread_id) > MAX_THREAD_ID:
                raise invalid("thread_id must be a non-empty string")
        mark: dict[str, Any] = {"type": receipt_type, "event_id": event_id}
        if thread_id:
            mark["thread_id"] = thread_id
        await self._commit(who.user_id, room_id, [mark])

    async def read_markers(self, who: Requester, room_id: str, body: dict[str, Any]) -> None:
        """POST /rooms/{roomId}/read_markers: any of the three markers, in one fact."""
        marks = []
        for rtype in ("m.fully_read", "m.read", "m.read.private"):
            event_id = body.get(rtype)
            if event_id is None:
                continue
            if not isinstance(event_id, str):
                raise bad_json(f"{rtype} must be an event id")
            marks.append({"type": rtype, "event_id": event_id})
        if marks:
            await self._commit(who.user_id, room_id, marks)

    async def _commit(self, user_id: str, room_id: str, marks: list[dict[str, Any]]) -> None:
        subjects = self.ctx.names.room_subjects(room_id)
        if queries.membership(self.ctx.conn, room_id, user_id) != "join":
            raise forbidden("you are not joined to this room")
        for mark in marks:
            await self._require_event(room_id, mark["event_id"], subjects.stream)
        fact = ReceiptsMarked(room_id, user_id, self.ctx.now_ms(), tuple(marks))
        ack = await self.ctx.log.append(subjects.receipt, fact)
        await self.ctx.applied(ack)

    async def _require_event(self, room_id: str, event_id: str, stream: str) -> None:
        if not event_id.startswith("$") or len(event_id) > 255:
            raise not_found("event not found")
        if queries.event_position(self.ctx.conn, room_id, event_id) is not None:
            return
        # Perhaps sent at another site and not yet applied here.
        if (
            await self.ctx.catch_up(stream)
            and queries.event_position(self.ctx.conn, room_id, event_id) is not None
        ):
            return
        raise not_found("event not found in this room")

    # --- /sync -----------------------------------------------------------------

    def room_extras(self, window: SyncWindow, room: JoinedRoom) -> RoomExtras | None:
        user_id, room_id = window.user_id, room.room_id
        after = window.after(room.stream) or 0
        upto = window.upto(room.stream)
        conn = self.ctx.conn
        if window.since is not None and after >= upto:
            return None  # the room's partition has not moved: no receipts or markers
        extras = RoomExtras()
        shown = [
            r
            for r in store.receipts_between(conn, room_id, after, upto)
            if unread.visible_to(r, user_id)
        ]
        if shown:
            extras.ephemeral.append({"type": "m.receipt", "content": unread.receipt_content(shown)})
        marker = store.fully_read(conn, room_id, user_id)
        if marker is not None and after < marker[1] <= upto:
            extras.account_data.append({"type": "m.fully_read", "content": {"event_id": marker[0]}})
        return extras

    def touched(self, window: SyncWindow) -> AbstractSet[str] | None:
        """Rooms whose receipts or the user's markers moved: only these get ephemeral
        or marker data (their counts ride along with whatever else they carry)."""
        users = self.ctx.names.users_stream
        windows = [
            (after, window.upto(stream))
            for stream in window.streams
            if stream != users
            and (after := window.after(stream)) is not None
            and after < window.upto(stream)
        ]
        return store.rooms_with_marks(self.ctx.conn, window.user_id, windows)

    # --- the per-message unread number -------------------------------------------

    def decorate(self, user_id: str, events: list[dict[str, Any]]) -> None:
        """Set ``unsigned["io.outlast.unread_count"]`` on the messages among ``events``."""
        targets = [
            e
            for e in events
            if e.get("type") in unread.COUNTED_TYPES and isinstance(e.get("event_id"), str)
        ]
        if not targets:
            return
        conn = self.ctx.conn
        places = queries.event_places(conn, [e["event_id"] for e in targets])
        by_room: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in targets:
            if event["event_id"] in places:
                by_room[places[event["event_id"]][0]].append(event)
        for room_id, room_events in by_room.items():
            joined_at = queries.join_positions(conn, room_id)
            read = unread.read_positions(store.read_receipt_positions(conn, room_id))
            for event in room_events:
                position = places[event["event_id"]][1]
                count = unread.unread_count(
                    position, str(event.get("sender")), joined_at.keys(), read, joined_at
                )
                unsigned = event.get("unsigned")
                if not isinstance(unsigned, dict):
                    unsigned = event["unsigned"] = {}
                unsigned[unread.UNREAD_COUNT_KEY] = count
