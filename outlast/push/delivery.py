"""Delivery of notifications to push gateways, once per notification across all sites.

Every worker of every site pulls from one durable JetStream consumer per room
partition (``Names.push_consumer`` over the partition's state and timeline
subjects). JetStream hands each message to one holder at a time and keeps the
consumer's ack floor on the stream's replicas, so:

- the holder waits until its own view has applied the message (the projector
  has then stored its ``push_actions`` rows), posts one notification per
  (row, ``http`` pusher) to the pusher's gateway, retrying with exponential
  backoff while a gateway fails, and acknowledges the message once every post
  is settled (answered 2xx, or given up after ``give_up_after_seconds``);
- while it retries it reports progress every quarter of the ack wait, after
  checking it still reaches the consumer's leader; a holder that could not
  report for half the ack wait stops sending and leaves the message unacked,
  because JetStream will soon hand it to someone else;
- a holder that dies (its site burns) acknowledges nothing; after the ack wait
  another worker, at any site, gets the message and delivers it.

What may still repeat is documented in docs/push.md: posts made by a holder
that died before its ack, and a gateway that received a post but timed out
answering. The repeats carry the same ``event_id``, which the Push Gateway API
tells gateways to deduplicate on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass
from typing import Any

import aiohttp

from outlast.context import SiteContext
from outlast.core.push_eval import Outcome
from outlast.core.push_gateway import (
    Backoff,
    Pusher,
    RoomNames,
    badge_notification,
    delivered,
    event_notification,
    rejected_pushkeys,
)
from outlast.core.unread import READ_TYPES
from outlast.log.client import LogUnavailable, StreamMissing, WorkItem, WorkQueue
from outlast.log.facts import (
    DecodeError,
    PusherDeleted,
    ReceiptsMarked,
    RoomEvents,
    UnknownFact,
    decode,
)
from outlast.ops.throttle import Throttled
from outlast.push import tables
from outlast.push.service import Push

log = logging.getLogger(__name__)

FETCH_BATCH = 16
FETCH_TIMEOUT = 1.0
RESTART_DELAY = 1.0
# How long stopping waits for the loops and deliveries it cancelled.
STOP_SECONDS = 5.0
MAX_RESPONSE_BYTES = 65536
# How old the consumer leader's answer may be when a post is made on its strength.
FRESH_SECONDS = 0.1


@dataclass(frozen=True)
class Fetched:
    """When a batch was fetched, and under which of the consumer's leaders."""

    at: float
    term: int


@dataclass(frozen=True)
class Job:
    """One notification for one pusher of one user."""

    user_id: str
    pusher: Pusher
    body: dict[str, Any]
    event_id: str  # "" for a badge-only push


class Hold:
    """Keeps a work item ours while it is worked on, and says when it may no longer be."""

    def __init__(
        self, item: WorkItem, queue: WorkQueue, ctx: SiteContext, ack_wait: float, fetched: Fetched
    ):
        self.item, self.queue, self.ctx, self.ack_wait = item, queue, ctx, ack_wait
        self.last_contact = fetched.at  # the fetch itself reached the consumer's leader
        self.term = fetched.term
        self.lost = False
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep())

    async def stop(self) -> None:
        # Bounded, and flagged: a cancellation inside a nats request may come back
        # as a log error, which _keep would otherwise take for an outage and retry.
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=STOP_SECONDS)

    @property
    def ours(self) -> bool:
        """Whether we may still send: we reached the consumer within half the ack wait,
        and its leader is the one that handed us the message (see ``WorkQueue.term``)."""
        if self.ctx.clock.monotonic() - self.last_contact >= self.ack_wait / 2:
            self.lost = True
        if self.queue.term != self.term:
            self.lost = True
        return not self.lost

    async def confirm(self) -> bool:
        """Whether the consumer's leader answered us a moment ago: asked just before a post.

        A post made while the leader is gone (a fire, an election) cannot be acked
        until a new leader is elected, and the new leader hands the message out
        again at once; a post is therefore only made right after the leader was
        heard, which leaves in doubt only posts during which the leader died.
        """
        if not self.ours:
            return False
        try:
            await self.queue.reachable(max_age=FRESH_SECONDS)
        except LogUnavailable:
            return False
        self.last_contact = max(self.last_contact, self.ctx.clock.monotonic() - FRESH_SECONDS)
        return self.ours

    async def _keep(self) -> None:
        # Every quarter of the ack wait; the leader's answer may be shared and up to a
        # sixteenth old, and is counted as that old. A healthy holder then always has
        # 3/16 of the ack wait to spare before ``ours`` gives up at half of it.
        shared_age = self.ack_wait / 16
        while not self._stopped:
            await self.ctx.clock.sleep(self.ack_wait / 4)
            try:
                await self.item.in_progress()
                await self.queue.reachable(max_age=shared_age)
            except LogUnavailable:
                continue
            self.last_contact = max(self.last_contact, self.ctx.clock.monotonic() - shared_age)


class Delivery:
    """The background delivery of one worker (started and stopped by the site)."""

    def __init__(self, ctx: SiteContext, push: Push) -> None:
        self.ctx = ctx
        self.push = push
        config = ctx.config.push
        self.config = config
        self.backoff = Backoff(
            initial=config.retry_initial_seconds,
            cap=config.retry_max_seconds,
            give_up_after=config.give_up_after_seconds,
        )
        self._slots = asyncio.Semaphore(max(1, config.max_in_flight))
        self._loops: list[asyncio.Task[None]] = []
        self._work: set[asyncio.Task[None]] = set()
        # Per message when a work queue's leader moves: one line a minute, with a count.
        self._unconfirmed = Throttled(log, monotonic=ctx.clock.monotonic)
        self._stopping = False
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0  # posts answered 2xx (for tests and metrics)

    async def start(self) -> None:
        if not self.config.enabled:
            return
        timeout = aiohttp.ClientTimeout(total=self.config.request_timeout_seconds)
        # The site's name in every request, for the gateway operator's logs (and tests).
        headers = {"User-Agent": f"Outlast ({self.ctx.config.server.site})"}
        self._session = aiohttp.ClientSession(timeout=timeout, headers=headers)
        for partition in range(self.ctx.names.partitions):
            self._loops.append(asyncio.create_task(self._serve(partition)))

    async def stop(self) -> None:
        """Cancel the loops and deliveries, waiting a bounded time for them to end.

        Not an unbounded ``await task``: nats-py turns a cancellation that lands
        inside a request on a closing connection into a connection error, which the
        loop treats as an outage and retries; the flag ends such a loop at its
        next turn instead.
        """
        self._stopping = True
        tasks = [*self._loops, *self._work]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_SECONDS)
        self._loops.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- taking work --------------------------------------------------------------

    async def _serve(self, partition: int) -> None:
        names = self.ctx.names
        stream = names.rooms_stream(partition)
        queue: WorkQueue | None = None
        try:
            while not self._stopping:
                try:
                    if queue is None:
                        queue = await self.ctx.log.work_queue(
                            stream,
                            names.push_consumer,
                            names.push_subjects(partition),
                            ack_wait=self.config.ack_wait_seconds,
                            max_pending=max(1, self.config.max_in_flight) * 16,
                        )
                        await queue.reachable()  # learn the leader before taking work
                    term = queue.term
                    items = await queue.fetch(FETCH_BATCH, FETCH_TIMEOUT)
                    fetched = Fetched(self.ctx.clock.monotonic(), term)
                except asyncio.CancelledError:
                    raise
                except (LogUnavailable, StreamMissing) as exc:  # no quorum, an election
                    log.info("push delivery on %s waits: %s", stream, exc)
                    if queue is not None:
                        await queue.close()
                        queue = None
                    await self.ctx.clock.sleep(RESTART_DELAY)
                    continue
                for item in items:
                    await self._slots.acquire()
                    # Waiting for a slot eats into the ack wait: the hold counts from the fetch.
                    task = asyncio.create_task(self._handle(item, queue, fetched))
                    self._work.add(task)
                    task.add_done_callback(self._work.discard)
        finally:
            if queue is not None:
                await queue.close()

    async def _handle(self, item: WorkItem, queue: WorkQueue, fetched: Fetched) -> None:
        hold = Hold(item, queue, self.ctx, self.config.ack_wait_seconds, fetched)
        hold.start()
        try:
            msg = item.message
            if msg.data.get("op") in (RoomEvents.OP, ReceiptsMarked.OP):
                applied = await self.ctx.positions.wait_for(
                    msg.stream, msg.seq, self.config.ack_wait_seconds / 3
                )
                if not applied:
                    return  # our view lags: leave it to be handed out again
                jobs = self._jobs(msg.stream, msg.seq, msg.data)
                settled = await asyncio.gather(*(self._send(job, hold) for job in jobs))
                if not all(settled):
                    return  # another holder will get it (and repeat what we posted)
            elif not hold.ours:
                return
            # Every post settled: ack even if the hold lapsed meanwhile, because an ack
            # that lands spares the gateway a repeat, and one that does not costs nothing.
            await self._ack(item)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("push delivery of %s:%d failed", item.message.stream, item.message.seq)
        finally:
            await hold.stop()
            self._slots.release()

    async def _ack(self, item: WorkItem) -> None:
        try:
            await item.ack()
        except LogUnavailable:
            # The leader went away after the posts: the message will be handed out
            # again and its posts repeated (the in-doubt case of docs/push.md).
            msg = item.message
            self._unconfirmed.warning(
                "push of %s:%d sent but its ack unconfirmed", msg.stream, msg.seq
            )

    # --- what to send -----------------------------------------------------------------

    def _jobs(self, stream: str, seq: int, data: dict[str, Any]) -> list[Job]:
        if data.get("op") == ReceiptsMarked.OP:
            return self._badge_jobs(data)
        conn = self.ctx.conn
        jobs: list[Job] = []
        badges: dict[str, int] = {}
        for row in tables.actions_at(conn, stream, seq):
            user_id = str(row["user_id"])
            stored = tables.pushers_with_time(conn, user_id)
            pushers = [p for p in (Pusher.from_stored(d, ts) for d, ts in stored) if p is not None]
            if not pushers:
                continue
            if user_id not in badges:
                badges[user_id] = self.push.unread_total(user_id)
            event = json.loads(row["json"])
            names = self._names(str(row["room_id"]), str(event.get("sender")))
            tweaks = Outcome(tuple(json.loads(row["actions"]))).tweaks
            for pusher in pushers:
                body = event_notification(event, pusher, user_id, tweaks, badges[user_id], names)
                jobs.append(Job(user_id, pusher, body, str(row["event_id"])))
        return jobs

    def _badge_jobs(self, data: dict[str, Any]) -> list[Job]:
        """A user's read receipt: the new badge to each of their pushers (counts only).

        Sent for every ``m.read`` / ``m.read.private`` receipt, whether or not it
        lowered the count: count updates are idempotent at the gateway, and
        badge-only pushes are never in doubt.
        """
        try:
            fact = decode(data)
        except (DecodeError, UnknownFact):
            return []
        if not isinstance(fact, ReceiptsMarked) or not any(
            isinstance(m, dict) and m.get("type") in READ_TYPES for m in fact.marks
        ):
            return []
        stored = tables.pushers_with_time(self.ctx.conn, fact.user_id)
        pushers = [p for p in (Pusher.from_stored(d, ts) for d, ts in stored) if p is not None]
        if not pushers:
            return []
        unread = self.push.unread_total(fact.user_id)
        return [
            Job(fact.user_id, pusher, badge_notification(pusher, unread), "") for pusher in pushers
        ]

    def _names(self, room_id: str, sender: str) -> RoomNames:
        state = self.ctx.room_state(room_id)
        member = (state.get(("m.room.member", sender)) or {}).get("content") or {}
        name = (state.get(("m.room.name", "")) or {}).get("content") or {}
        alias = (state.get(("m.room.canonical_alias", "")) or {}).get("content") or {}
        return RoomNames(
            _text(member.get("displayname")), _text(name.get("name")), _text(alias.get("alias"))
        )

    # --- sending ------------------------------------------------------------------------

    async def _send(self, job: Job, hold: Hold) -> bool:
        """Post until the gateway takes it or it is given up (True: settled), or until
        the item is no longer ours (False)."""
        failures = 0
        first_failure: float | None = None
        while hold.ours:
            if not await hold.confirm():
                # The leader is not answering: wait (ours lapses if it stays away).
                await self.ctx.clock.sleep(self.backoff.delay(1, random.random()))
                continue
            status, answer = await self._post(job.pusher.url, job.body)
            if delivered(status):
                self.sent += 1
                if rejected_pushkeys(answer, [job.pusher.pushkey]):
                    await self._remove(job)
                return True
            failures += 1
            now = self.ctx.clock.monotonic()
            first_failure = now if first_failure is None else first_failure
            if self.backoff.gives_up(first_failure, now):
                log.warning(
                    "push of %s to %s given up after %d tries",
                    job.event_id,
                    job.pusher.url,
                    failures,
                )
                return True
            await self.ctx.clock.sleep(self.backoff.delay(failures, random.random()))
        return False

    async def _post(self, url: str, body: dict[str, Any]) -> tuple[int | None, Any]:
        assert self._session is not None
        try:
            async with self._session.post(url, json=body) as resp:
                raw = await resp.content.read(MAX_RESPONSE_BYTES)
                try:
                    answer = json.loads(raw) if raw else None
                except ValueError:
                    answer = None
                return resp.status, answer
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.info("push gateway %s did not answer: %s", url, type(exc).__name__)
            return None, None

    async def _remove(self, job: Job) -> None:
        """The gateway rejected the pushkey: remove the pusher, at every site (on the log)."""
        fact = PusherDeleted(job.user_id, job.pusher.app_id, job.pusher.pushkey)
        try:
            await self.ctx.log.append(self.ctx.names.user_subject(job.user_id, "pushers"), fact)
        except LogUnavailable:
            log.warning("rejected pushkey of %s not removed yet (log unavailable)", job.user_id)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
