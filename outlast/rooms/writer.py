"""The room write path: build events, check them against current state, commit.

State changes are appended with ``Nats-Expected-Last-Subject-Sequence`` on
the room's *state* subject, set to the state sequence this site's view had
when it ran the auth checks, so two concurrent state changes cannot both pass
against the same old state. On a failed fence the writer catches its view up
to the log's tail and re-checks.

Messages are not fenced. They are checked here against this view's state
(the fast refusal) and appended to the timeline subject; the projector checks
each one again against the state at its place in the log and drops it if the
rules changed in between (outlast.view.apply). The writer waits for its own
view to apply the message, so the client learns that verdict: 200 only for an
event every view stores, 403 for one none does. Why not fence messages too:
a clustered stream admits one fenced publish per subject at a time (10164),
so every send into a room would queue behind the previous one's replication.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from outlast.context import READ_YOUR_WRITES_TIMEOUT, SiteContext
from outlast.core import auth, ids, unsigned
from outlast.core.errors import MatrixError, forbidden, not_found, unavailable
from outlast.core.events import make_event
from outlast.log.client import FenceBusy, FenceFailed
from outlast.log.facts import RoomEvents
from outlast.log.names import RoomSubjects
from outlast.view import queries
from outlast.view.queries import StateMap

# A write keeps re-checking and re-fencing for this long before answering 503.
# Losing a fence means someone else committed: progress is being made.
WRITE_BUDGET_SECONDS = 5.0

# Given the state the checks run against, return the events to commit (already checked).
Builder = Callable[[StateMap], list[dict[str, Any]]]


class RoomWriter:
    """Commits room events with the fences described in the module docstring."""

    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx
        # room id -> [lock, users]: one state change per room at a time in this process.
        self._state_locks: dict[str, list[Any]] = {}

    def subjects(self, room_id: str) -> RoomSubjects:
        return self.ctx.names.room_subjects(room_id)

    async def send(self, room_id: str, build: Builder, *, msg_id: str, txn: dict[str, str]) -> None:
        """Commit a message (no state change); idempotent on ``msg_id``, the event id."""
        if queries.has_event(self.ctx.conn, msg_id):
            return  # committed by an earlier attempt (ours or the client's retry)
        subjects = self.subjects(room_id)
        state = self.ctx.room_state(room_id)
        if not state:
            await self.ctx.catch_up(subjects.stream)  # created at another site just now?
            state = self.ctx.room_state(room_id)
            if not state:
                raise not_found("unknown room")
        events = await self._build_current(room_id, build, state)
        ack = await self.ctx.log.append(
            subjects.timeline, RoomEvents(tuple(events), txn), msg_id=msg_id
        )
        if not await self.ctx.positions.wait_for(ack.stream, ack.seq, READ_YOUR_WRITES_TIMEOUT):
            # Durable, but this view has not judged it yet: the outcome is unknown
            # to us, as after a publish timeout. A retry with the txnId resolves it.
            raise unavailable("the write is not confirmed yet; retry it", retry_after_s=1)
        if not queries.has_event(self.ctx.conn, msg_id):
            # The projector refused it: the room's rules changed before it committed.
            build(self.ctx.room_state(room_id))  # raises the specific reason, if it still holds
            raise forbidden("the room changed before this event was committed")

    async def commit(self, room_id: str, build: Builder) -> list[dict[str, Any]]:
        """Commit a state change, fenced on the room's state subject."""
        # Concurrent state changes from one process would all be checked against
        # the same state and all but one fail their fence, round after round,
        # until some run out of attempts. Queue them locally instead; the fence
        # still arbitrates between processes and sites.
        entry = self._state_locks.setdefault(room_id, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                return await self._commit(room_id, build)
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                self._state_locks.pop(room_id, None)

    async def _commit(self, room_id: str, build: Builder) -> list[dict[str, Any]]:
        subjects = self.subjects(room_id)
        clock = self.ctx.clock
        deadline = clock.monotonic() + WRITE_BUDGET_SECONDS
        attempt = 0
        while clock.monotonic() < deadline:
            row = queries.room(self.ctx.conn, room_id)
            if row is None:
                attempt += 1
                if attempt == 1 and await self.ctx.catch_up(subjects.stream):
                    continue
                raise not_found("unknown room")
            state = self.ctx.room_state(room_id)
            events = build(state) if attempt else await self._build_current(room_id, build, state)
            if not events:
                return events  # the builder found nothing to change
            events = with_replaced_state(state, events)
            try:
                ack = await self.ctx.log.append(
                    subjects.state,
                    RoomEvents(tuple(events)),
                    expected_seq=int(row["state_seq"]),
                )
            except FenceBusy:
                # Clustered streams admit one fenced write per subject at a time.
                await self.ctx.clock.sleep(random.uniform(0.001, 0.004))
                continue
            except FenceFailed:
                attempt += 1
                await self._catch_up_state(subjects, attempt)
                continue
            await self.ctx.applied(ack)
            return events
        raise unavailable("the room is changing too fast; try again", retry_after_s=1)

    async def _build_current(
        self, room_id: str, build: Builder, state: StateMap
    ) -> list[dict[str, Any]]:
        """``build`` against ``state``; a refusal is only final against a current view.

        The log re-judges what this view lets through (fence or projector), so
        a stale view cannot make a forbidden write succeed. But it could refuse
        one that is allowed, e.g. a send just after a join made at another
        site: before refusing, catch up with the room's stream and decide again.
        """
        try:
            return build(state)
        except MatrixError as exc:
            if exc.status != 403:
                raise
        await self.ctx.make_current(self.subjects(room_id).stream)
        return build(self.ctx.room_state(room_id))

    async def _catch_up_state(self, subjects: RoomSubjects, attempt: int) -> None:
        last = await self.ctx.log.last_subject_seq(subjects.stream, subjects.state)
        if not await self.ctx.positions.wait_for(subjects.stream, last, 2.0):
            await self.ctx.clock.sleep(0.05)
        # Jitter so that writers racing from several processes do not collide in lockstep.
        await self.ctx.clock.sleep(random.uniform(0, 0.002 * min(attempt, 10)))

    def build_event(
        self,
        room_id: str,
        sender: str,
        event_type: str,
        content: dict[str, Any],
        state_key: str | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """A new event, stamped with this site's clock."""
        return make_event(
            event_id=event_id or ids.new_event_id(),
            room_id=room_id,
            sender=sender,
            event_type=event_type,
            content=content,
            origin_server_ts=self.ctx.now_ms(),
            state_key=state_key,
        )

    async def create(self, room_id: str, events: list[dict[str, Any]]) -> None:
        """Commit a new room's first events at once: the subject must not exist yet."""
        subjects = self.subjects(room_id)
        try:
            ack = await self.ctx.log.append(
                subjects.state, RoomEvents(tuple(events)), expected_seq=0
            )
        except FenceFailed:
            raise MatrixError(400, "M_ROOM_IN_USE", "room id collision; try again") from None
        await self.ctx.applied(ack)


def with_replaced_state(state: StateMap, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each state event with ``unsigned.replaces_state`` and ``prev_content`` of the event
    it replaces. Stamped here, on the write fenced against exactly this state, so every
    site stores and serves the same: without them clients show a rename as a new join."""
    replaced: dict[tuple[str, str], dict[str, Any]] = {}
    out = []
    for event in events:
        if "state_key" not in event:
            out.append(event)
            continue
        key = (str(event["type"]), str(event["state_key"]))
        previous = replaced.get(key) or state.get(key)
        out.append(unsigned.with_replaced_state(event, previous, may_see=True))
        replaced[key] = event
    return out


def checked(state: StateMap, event: dict[str, Any]) -> StateMap:
    """Check one event against ``state`` and return the state after it."""
    auth.check_event(event, state)
    if "state_key" in event:
        state = dict(state)
        state[(event["type"], event["state_key"])] = event
    return state


def require_joined(state: StateMap, user_id: str) -> None:
    if auth.membership(state, user_id) != "join":
        raise forbidden("you are not joined to this room")
