"""Outlast's only door to NATS and JetStream: append facts, fence them, read tails,
follow streams, publish ephemeral notices, and look at the streams themselves.

Nothing outside ``outlast/log`` touches nats-py. Errors from the engine are
translated into outcomes callers can act on: committed (an :class:`Ack`),
:class:`FenceFailed` (another writer changed the fenced subject first: re-read
and retry), :class:`StreamMissing` (no such stream yet), and
:class:`LogUnavailable` (no quorum, leader election, or no connection: nothing
was acknowledged). The HTTP layer answers LogUnavailable with 503
``M_UNAVAILABLE``, once, for every endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext

from outlast.clock import host_time, observe_log_time
from outlast.core import jsonenc
from outlast.log.facts import Fact
from outlast.log.leader import NotProvable, leader_last_seq
from outlast.log.names import StreamSpec
from outlast.log.tls import LogTlsRefused, is_tls_failure

log = logging.getLogger(__name__)

WRONG_LAST_SEQUENCE = 10071
FENCE_BUSY = 10164
STREAM_NAME_IN_USE = 10058
NO_MESSAGE_FOUND = 10037
MSG_ID_IN_PROCESS = 10158

# A view's consumer is an ordered consumer: one replica, on one node, which the
# client re-creates elsewhere once it has missed two heartbeats. When that node
# stops (a site drained for maintenance, or lost), the view of every site whose
# consumer lived there stalls until then, and with it every write waiting to be
# read back there. At 1 s that was 2-4 s; at 0.25 s it is 0.5-1 s, for about
# four tiny heartbeat messages a second per consumer.
FOLLOW_HEARTBEAT = 0.25

# A publish that reaches a stream's leader just as it hands over (a planned
# step-down: `cluster drain`, a rolling restart) can go unanswered; netns drills
# (bench/RESULTS.md, "Maintenance in network namespaces") showed clients then
# waiting the whole 5 s publish timeout. A publish with a msg id is safe to send
# again — the stream answers a repeat within its duplicate window with the
# original's sequence — so it is re-sent after each of these waits, all within
# the one publish timeout. Without a msg id (fenced writes) it is sent once.
RESEND_AFTER = (0.5, 0.75, 1.0)
# A repeat that finds its first send still being committed ("msg id in process")
# asks again after these pauses, the last one repeating: the commit usually lands
# within milliseconds, but during an election it can take seconds, and polling
# every 50 ms then would only add load to a leader that is busy.
IN_PROCESS_PAUSES = (0.05, 0.1, 0.2, 0.4)

# The same for a question to a stream's leader (the read barrier's, the health
# check's): one sent as the leader hands over gets no answer, and every request
# at the site waiting on that stream waited the question's whole timeout (1 s).
# Another question goes out after each of these waits while the first may still
# answer; the first answer wins.
ASK_AGAIN_AFTER = (0.25, 0.25)


@dataclass(frozen=True)
class Ack:
    stream: str
    seq: int
    duplicate: bool


class FenceFailed(Exception):
    """The fenced subject moved on since the caller read it; nothing was written."""


class FenceBusy(FenceFailed):
    """Another fenced write on the same subject is in flight (clustered streams
    serialize them); the fence itself may still hold, so retry shortly."""


class LogUnavailable(Exception):
    """The log could not commit (no quorum, election, disconnected); nothing was acknowledged."""


class StreamMissing(LookupError):
    """The stream (or bucket) does not exist (yet)."""


# nats-py's ways of saying that nobody answered in time.
NO_ANSWER = (
    TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.js.errors.ServiceUnavailableError,
)


@dataclass(frozen=True)
class Replica:
    """One follower of a clustered stream, as its leader sees it."""

    name: str
    current: bool
    offline: bool
    lag: int
    active_ns: int  # since the leader last heard from it (0: never, or not reported)

    @property
    def active_seconds(self) -> float:
        return round(self.active_ns / 1e9, 3)


@dataclass(frozen=True)
class StreamState:
    """What a stream's leader (or, without one, the local replica) reports."""

    name: str
    messages: int
    last_seq: int
    bytes: int
    clustered: bool
    leader: str  # "" while a clustered stream elects one
    replicas: tuple[Replica, ...]


@dataclass(frozen=True)
class StoredMessage:
    """One message read back from a stream."""

    seq: int
    subject: str
    data: bytes


class Subscription(Protocol):
    async def unsubscribe(self) -> None: ...


# Receives each ephemeral notice, decoded from JSON (anything else is dropped).
NoticeHandler = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class LogMessage:
    stream: str
    seq: int
    subject: str
    data: dict[str, Any]


class WorkItem:
    """A message handed out by a shared work queue: exactly one holder at a time.

    The holder must ``ack`` it when done, or keep it with ``in_progress`` more
    often than the queue's ack wait; otherwise JetStream hands it to another
    holder (at this site or another) once the wait runs out.
    """

    def __init__(self, message: LogMessage, raw: Msg) -> None:
        self.message = message
        self._raw = raw

    @property
    def deliveries(self) -> int:
        """How many times the queue has handed this message out (1 the first time)."""
        return int(self._raw.metadata.num_delivered or 1)

    async def ack(self) -> None:
        """Done: acknowledged on the consumer's quorum before this returns."""
        try:
            await self._raw.ack_sync(timeout=5.0)
        except NO_ANSWER as exc:
            raise LogUnavailable("ack unconfirmed") from exc

    async def in_progress(self) -> None:
        """Still working on it: restart the queue's ack wait."""
        try:
            await self._raw.in_progress()
        except NO_ANSWER as exc:
            raise LogUnavailable("progress not sent") from exc


class WorkQueue:
    """A durable pull consumer shared by every worker of every site."""

    def __init__(self, js: JetStreamContext, stream: str, durable: str, sub: Any) -> None:
        self.stream, self.durable = stream, durable
        self._js = js
        self._sub = sub
        self._reached_at = -float("inf")
        self._asking: asyncio.Lock | None = None
        # The consumer's leader as last heard, and how many leaders were heard: a new
        # leader starts from the replicated pending state, in which a held message's
        # last progress may be older than the ack wait, and hands it out again at once.
        self.leader: str | None = None
        self.term = 0

    async def reachable(self, max_age: float = 0.0) -> None:
        """Proof that the consumer's quorum still hears us: its leader answered a
        question at most ``max_age`` seconds ago (one question shared by all callers,
        however many items they hold)."""
        if self._asking is None:
            self._asking = asyncio.Lock()
        async with self._asking:
            if asyncio.get_running_loop().time() - self._reached_at <= max_age:
                return
            try:
                info = await self._js.consumer_info(self.stream, self.durable, timeout=2.0)
            except (*NO_ANSWER, nats.js.errors.Error) as exc:
                raise LogUnavailable(f"consumer {self.durable} unreachable") from exc
            leader = info.cluster.leader if info.cluster is not None else None
            if leader != self.leader or self.term == 0:
                self.leader, self.term = leader, self.term + 1
            self._reached_at = asyncio.get_running_loop().time()

    async def fetch(self, batch: int, timeout: float) -> list[WorkItem]:
        """Up to ``batch`` messages; none after ``timeout`` seconds of nothing."""
        try:
            raws = await self._sub.fetch(batch=batch, timeout=timeout)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        except (*NO_ANSWER, nats.errors.Error) as exc:
            raise LogUnavailable(f"no work from {self.stream}") from exc
        items = []
        for raw in raws:
            try:
                data = json.loads(raw.data)
            except ValueError:
                data = {"op": "invalid"}
            seq = int(raw.metadata.sequence.stream)
            items.append(WorkItem(LogMessage(self.stream, seq, raw.subject, data), raw))
        return items

    async def close(self) -> None:
        try:
            await self._sub.unsubscribe()
        except Exception:  # closing is best effort
            log.debug("closing a work queue failed", exc_info=True)


Handler = Callable[[LogMessage], Awaitable[None]]
# Told the outcome of every append (metrics, write rate): (subject, outcome), the
# outcome one of "ok", "fence" (FenceFailed), "unavailable" (LogUnavailable), "error",
# "cancelled" (the caller went away; the write's fate is unknown).
PublishObserver = Callable[[str, str], None]


async def _close(nc: Client) -> None:
    try:
        await asyncio.wait_for(nc.close(), timeout=5)
    except Exception:  # closing is best effort
        log.debug("closing nats connection failed", exc_info=True)


class Following:
    """One followed stream (:meth:`LogClient.follow`): its ordered consumer and connection."""

    def __init__(self, nc: Client, sub: Any, registry: set[Following]) -> None:
        self._nc = nc
        self._sub = sub
        self._registry = registry

    async def unsubscribe(self) -> None:
        """Stop following; the connection closes with it."""
        self._registry.discard(self)
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()
        await _close(self._nc)


class LogClient:
    """A connection to the JetStream cluster (or embedded node)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        name: str,
        publish_timeout: float = 5.0,
        manage_streams: bool = True,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.urls = list(urls)
        self.tls = tls
        self.name = name
        self.publish_timeout = publish_timeout
        # False: the credential is a worker's, refused stream management; streams and
        # buckets must already exist (the admin step of `cluster up` makes them).
        self.manage_streams = manage_streams
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self.observers: list[PublishObserver] = []
        self._following: set[Following] = set()

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise LogUnavailable("not connected to the log")
        return self._js

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise LogUnavailable("not connected to the log")
        return self._nc

    @property
    def server_name(self) -> str:
        """The name of the nats-server node this client is connected to ("" if none)."""
        if not self.connected:
            return ""
        # nats-py keeps the server's INFO only in a private attribute; it is read
        # here, in the one module that knows nats-py, and nowhere else.
        info = getattr(self._nc, "_server_info", None) or {}
        return str(info.get("server_name") or "")

    async def connect(self) -> None:
        """Connect (retrying while the log is unreachable); LogTlsRefused at once when the
        TLS handshake fails, since a certificate that is not trusted now never will be."""
        self._nc = await self._open(self.name)
        self._js = self._nc.jetstream(timeout=self.publish_timeout)

    async def _open(self, name: str) -> Client:
        """A new connection to the log, named ``name`` in the server's monitoring."""
        refused: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        opened = False

        async def on_error(exc: Exception) -> None:
            log.warning("nats: %s", exc)
            if not opened and is_tls_failure(exc) and not refused.done():
                refused.set_result(exc)

        options: dict[str, Any] = {"tls": self.tls} if self.tls is not None else {}
        connecting = asyncio.ensure_future(
            nats.connect(
                servers=self.urls,
                name=name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,
                connect_timeout=2,
                ping_interval=5,
                max_outstanding_pings=2,
                error_cb=on_error,
                **options,
            )
        )
        waiting: set[asyncio.Future[Any]] = {connecting, refused}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled (a caller's deadline): no connection left behind
            connecting.cancel()
            raise
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connecting
            raise LogTlsRefused(
                f"TLS with the log at {', '.join(self._safe_urls())} failed: {refused.result()}"
                " (is [log] tls_ca the CA that signed the nats-server certificates?)"
            )
        refused.cancel()
        opened = True
        return connecting.result()

    def _safe_urls(self) -> list[str]:
        """The URLs without their passwords, for messages."""
        return [url.split("@", 1)[-1] for url in self.urls]

    async def close(self) -> None:
        await asyncio.gather(
            *(following.unsubscribe() for following in list(self._following)),
            return_exceptions=True,
        )
        if self._nc is not None:
            await _close(self._nc)
            self._nc = None
            self._js = None

    async def ensure_streams(
        self, streams: Sequence[StreamSpec], *, replicas: int, duplicate_window: float
    ) -> None:
        """Create the streams, or update them to the configured replicas and window.

        Without ``manage_streams`` only check that each exists (StreamMissing if not).
        """
        for spec in streams:
            if not self.manage_streams:
                await self.require_stream(spec.name)
                continue
            config = api.StreamConfig(
                name=spec.name,
                subjects=list(spec.subjects),
                retention=api.RetentionPolicy.LIMITS,
                storage=api.StorageType.FILE,
                num_replicas=replicas,
                duplicate_window=duplicate_window,
                allow_direct=True,
                discard=api.DiscardPolicy.OLD,
                max_msgs_per_subject=spec.max_msgs_per_subject,
            )
            try:
                await self.js.add_stream(config)
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code != STREAM_NAME_IN_USE:
                    raise
                await self.js.update_stream(config)

    async def require_stream(self, stream: str, timeout: float = 60.0) -> None:
        """StreamMissing, saying who must create it, unless ``stream`` exists.

        Waits out elections: a cluster that has just started (or restored) answers
        stream info only once the stream has a leader, and a worker that gave up on
        the first unanswered question would fail its site's start.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                await self.js.stream_info(stream)
                return
            except nats.js.errors.NotFoundError as exc:
                raise StreamMissing(
                    f"stream {stream} does not exist, and this worker's log credential may "
                    "not create streams: create them with the admin credential (`outlast "
                    "cluster up` does; see docs/security.md)"
                ) from exc
            except NO_ANSWER as exc:
                if loop.time() >= deadline:
                    raise LogUnavailable(
                        f"stream {stream} did not answer for {timeout:.0f}s"
                    ) from exc
                log.info("stream %s not answering yet (%s); waiting", stream, type(exc).__name__)
                await asyncio.sleep(0.5)

    async def append(
        self,
        subject: str,
        fact: Fact,
        *,
        msg_id: str | None = None,
        expected_seq: int | None = None,
    ) -> Ack:
        """:meth:`_append`, with its outcome told to the observers."""
        outcome = "error"
        try:
            ack = await self._append(subject, fact, msg_id=msg_id, expected_seq=expected_seq)
            outcome = "ok"
            return ack
        except FenceFailed:
            outcome = "fence"
            raise
        except LogUnavailable:
            outcome = "unavailable"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            for observer in self.observers:
                observer(subject, outcome)

    async def _append(
        self,
        subject: str,
        fact: Fact,
        *,
        msg_id: str | None = None,
        expected_seq: int | None = None,
    ) -> Ack:
        """Publish one fact and wait until the log has committed it.

        With ``expected_seq`` the write only commits if the last message on
        ``subject`` has exactly that sequence
        (0: no message yet). With ``msg_id`` a repeat within the stream's
        duplicate window returns the original sequence instead of storing again.
        """
        headers: dict[str, str] = {}
        if msg_id is not None:
            headers["Nats-Msg-Id"] = msg_id
        if expected_seq is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(expected_seq)
        payload = jsonenc.dumps(fact.encode())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        waits = list(RESEND_AFTER) if msg_id is not None else []
        pauses = list(IN_PROCESS_PAUSES)
        try:
            while True:
                left = deadline - loop.time()
                wait = min(waits.pop(0), left) if waits else left
                if not self.connected:
                    # Sent now it would wait in nats-py's buffer and go out on the
                    # next connection, perhaps long after this request answered 503:
                    # a refused write that commits later. Fail at once instead.
                    raise nats.errors.ConnectionReconnectingError
                try:
                    ack = await self.js.publish(
                        subject, payload, timeout=max(wait, 0.001), headers=headers or None
                    )
                    break
                except TimeoutError:
                    if deadline - loop.time() <= 0.01:
                        raise
                    log.debug("publish to %s unanswered after %.2fs: sent again", subject, wait)
                except nats.js.errors.APIError as exc:
                    # A repeat while the first send is still being committed.
                    if exc.err_code != MSG_ID_IN_PROCESS or deadline - loop.time() < 0.1:
                        raise
                    pause = pauses.pop(0) if len(pauses) > 1 else pauses[0]
                    await asyncio.sleep(min(pause, max(deadline - loop.time() - 0.05, 0.0)))
        except nats.js.errors.APIError as exc:
            if exc.err_code == FENCE_BUSY:
                raise FenceBusy(exc.description or "fenced write in flight") from exc
            if exc.err_code == WRONG_LAST_SEQUENCE:
                raise FenceFailed(exc.description or "wrong last sequence") from exc
            if exc.code == 503 or exc.err_code in (10008, 10023, MSG_ID_IN_PROCESS):
                raise LogUnavailable(exc.description or "log unavailable") from exc
            raise
        except (
            TimeoutError,
            nats.errors.NoRespondersError,
            nats.js.errors.NoStreamResponseError,
            nats.errors.TimeoutError,
            nats.errors.ConnectionClosedError,
            nats.errors.ConnectionReconnectingError,
            nats.errors.OutboundBufferLimitError,
        ) as exc:
            # A timeout is an unknown outcome, not a failure: the write may still
            # commit later. Callers answer 503; the client's retry with the same
            # txnId then finds the original through the msg-id / event-id dedup.
            raise LogUnavailable(f"log did not acknowledge: {type(exc).__name__}") from exc
        return Ack(stream=ack.stream, seq=ack.seq, duplicate=bool(ack.duplicate))

    async def last_seq(self, stream: str) -> int:
        """The stream's last committed sequence, as its leader knows it."""
        try:
            info = await self.js.stream_info(stream)
        except (
            nats.errors.NoRespondersError,
            nats.errors.TimeoutError,
            nats.js.errors.ServiceUnavailableError,
        ) as exc:
            raise LogUnavailable("stream info unavailable") from exc
        return int(info.state.last_seq)

    async def stream_state(self, stream: str) -> StreamState:
        """The stream's size, tail, leader and replicas (StreamMissing, LogUnavailable)."""
        try:
            info = await self.js.stream_info(stream)
        except nats.js.errors.NotFoundError as exc:
            raise StreamMissing(stream) from exc
        except NO_ANSWER as exc:
            raise LogUnavailable(f"no answer about {stream}: {type(exc).__name__}") from exc
        cluster = info.cluster
        replicas = tuple(
            Replica(
                name=peer.name or "",
                current=bool(peer.current),
                offline=bool(peer.offline),
                lag=int(peer.lag or 0),
                active_ns=int(peer.active or 0),
            )
            for peer in ((cluster.replicas or []) if cluster is not None else [])
        )
        return StreamState(
            name=stream,
            messages=int(info.state.messages or 0),
            last_seq=int(info.state.last_seq or 0),
            bytes=int(info.state.bytes or 0),
            clustered=cluster is not None,
            leader=(cluster.leader or "") if cluster is not None else "",
            replicas=replicas,
        )

    async def next_message(
        self, stream: str, seq: int, subject_filter: str
    ) -> StoredMessage | None:
        """The first message at or after ``seq`` on the filter, from the nearest replica
        (a direct get: it answers while the stream elects a leader); None past the end."""
        try:
            msg = await self.js.get_msg(stream, seq, subject=subject_filter, direct=True, next=True)
        except nats.js.errors.NotFoundError:
            return None
        except NO_ANSWER as exc:
            raise LogUnavailable(f"no answer from {stream}: {type(exc).__name__}") from exc
        return StoredMessage(int(msg.seq or seq), str(msg.subject or ""), bytes(msg.data or b""))

    async def publish_notice(self, subject: str, notice: Any) -> None:
        """Publish an ephemeral notice (JSON): plain NATS, never stored, best effort."""
        await self.nc.publish(subject, json.dumps(notice).encode("utf-8"))

    async def subscribe_notices(self, subject_filter: str, handler: NoticeHandler) -> Subscription:
        """Receive every ephemeral notice on the filter, decoded from JSON."""

        async def on_msg(msg: Msg) -> None:
            try:
                notice = json.loads(msg.data)
            except ValueError:
                return
            await handler(notice)

        sub: Subscription = await self.nc.subscribe(subject_filter, cb=on_msg)
        return sub

    async def leader_position(self, stream: str, timeout: float = 1.0) -> int:
        """The stream's last committed sequence, from a leader shown to be current.

        Asked now, of the stream's leader (see outlast/log/leader.py for which
        answers count); :class:`LogUnavailable` when no answer proves it.
        Only the first reply reaches us (the JetStream API is a service import
        into our account, which passes one response per request), so when a
        follower answers first — it may, see leader.py — the question fails
        and the caller asks again.
        """
        try:
            before, reply = await self._ask_leader(
                f"{api.DEFAULT_PREFIX}.STREAM.INFO.{stream}", timeout
            )
            info = json.loads(reply.data)
            observe_log_time(before, host_time(), info)
            return leader_last_seq(info)
        except NotProvable as exc:
            raise LogUnavailable(str(exc)) from exc
        except (
            TimeoutError,
            ValueError,
            nats.errors.NoRespondersError,
            nats.errors.TimeoutError,
            nats.errors.ConnectionClosedError,
            nats.errors.ConnectionReconnectingError,
            nats.errors.OutboundBufferLimitError,
        ) as exc:
            raise LogUnavailable(f"stream leader did not answer: {type(exc).__name__}") from exc

    async def _ask_leader(self, subject: str, timeout: float) -> tuple[float, Msg]:
        """One request to a stream's leader, asked again after each ``ASK_AGAIN_AFTER``
        wait while earlier ones may still answer; the first reply (with the host time
        its question was sent) wins. Bounded by ``timeout`` in all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        again = list(ASK_AGAIN_AFTER)
        asked: dict[asyncio.Task[Msg], float] = {}

        def ask() -> None:
            left = max(deadline - loop.time(), 0.001)
            asked[asyncio.ensure_future(self.nc.request(subject, b"", timeout=left))] = host_time()

        ask()
        try:
            while True:
                left = deadline - loop.time()
                wait = min(again[0], left) if again else left
                done, _ = await asyncio.wait(
                    list(asked), timeout=max(wait, 0.0), return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    sent = asked.pop(task)
                    if task.exception() is None:
                        return sent, task.result()
                    if not isinstance(task.exception(), TimeoutError) or not asked:
                        raise task.exception()  # type: ignore[misc]
                if done:
                    continue
                if deadline - loop.time() <= 0.001:
                    raise TimeoutError(f"no answer on {subject} in {timeout}s")
                if again:
                    again.pop(0)
                    ask()
        finally:
            for task in asked:
                task.cancel()
            if asked:
                await asyncio.gather(*asked, return_exceptions=True)

    async def last_subject_seq(self, stream: str, subject: str) -> int:
        """Sequence of the last message on a literal subject, 0 if there is none."""
        try:
            msg = await self.js.get_last_msg(stream, subject)
        except nats.js.errors.NotFoundError:
            return 0
        except (
            nats.errors.NoRespondersError,
            nats.errors.TimeoutError,
            nats.js.errors.ServiceUnavailableError,
        ) as exc:
            raise LogUnavailable("last message lookup unavailable") from exc
        return int(msg.seq or 0)

    async def work_queue(
        self,
        stream: str,
        durable: str,
        subjects: Sequence[str],
        *,
        ack_wait: float,
        max_pending: int,
    ) -> WorkQueue:
        """Join (creating it if need be) the durable pull consumer ``durable`` on
        ``stream``: each message goes to one holder at a time, and its ack floor is
        kept by JetStream on the stream's replicas, so it outlives any site.

        A consumer created now starts at new messages: work is what arrives after
        the feature is first switched on, not the whole history.
        """
        config = api.ConsumerConfig(
            durable_name=durable,
            deliver_policy=api.DeliverPolicy.NEW,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=-1,
            max_ack_pending=max_pending,
            filter_subjects=list(subjects),
        )
        try:
            try:
                # Create, or update an existing one to this configuration (ack wait,
                # subjects); identical repeats from other workers are no-ops.
                await self.js.add_consumer(stream, config)
            except nats.js.errors.BadRequestError as exc:
                log.warning("consumer %s on %s kept as it is: %s", durable, stream, exc)
            sub = await self.js.pull_subscribe_bind(durable=durable, stream=stream)
        except nats.js.errors.NotFoundError as exc:
            raise StreamMissing(stream) from exc
        except (*NO_ANSWER, nats.errors.Error) as exc:
            raise LogUnavailable(f"no consumer on {stream}") from exc
        return WorkQueue(self.js, stream, durable, sub)

    async def follow(
        self, stream: str, subject_filter: str, start_seq: int, handler: Handler
    ) -> Following:
        """Deliver every message of a stream from ``start_seq`` on, in order.

        An ordered consumer is flow-controlled, needs no server-side state to
        clean up, and re-creates itself after a gap or a leader change. Each one
        gets a connection of its own: JetStream lets a flow-controlled consumer
        have up to 32 MiB on its way, and on the shared connection a replay's
        data queued ahead of everything else. In a 100 k rebuild, answers to
        JetStream requests (stream info, the consumers' own re-creation) waited
        seconds and timed out, and idle streams' heartbeats arrived too late,
        so the client re-created their consumers hundreds of times
        (bench/RESULTS.md, "A replay that starved its own connection").
        """

        async def on_msg(msg: Msg) -> None:
            meta = msg.metadata
            try:
                data = json.loads(msg.data)
            except ValueError:
                log.error("undecodable message %s:%s skipped", stream, meta.sequence.stream)
                data = {"op": "invalid"}
            await handler(LogMessage(stream, int(meta.sequence.stream), msg.subject, data))

        try:
            nc = await asyncio.wait_for(
                self._open(f"{self.name} follow {stream}"), timeout=self.publish_timeout
            )
        except TimeoutError as exc:
            raise LogUnavailable(f"no connection to follow {stream}") from exc
        try:
            sub = await nc.jetstream(timeout=self.publish_timeout).subscribe(
                subject_filter,
                stream=stream,
                cb=on_msg,
                ordered_consumer=True,
                idle_heartbeat=FOLLOW_HEARTBEAT,
                flow_control=True,
                config=api.ConsumerConfig(
                    deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=max(1, start_seq),
                ),
            )
        except BaseException:
            await _close(nc)
            raise
        following = Following(nc, sub, self._following)
        self._following.add(following)
        return following
