"""Least privilege: a worker's JetStream credential runs Outlast but cannot destroy it.

The first tests start one real nats-server with the cluster's accounts (admin
``app`` and least-privileged ``worker``) and drive every kind of request a
worker makes through Outlast's own log client; the last one starts a real
three-site cluster and uses the credential written into a site's config.
"""

from __future__ import annotations

import asyncio
import io
import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nio import (
    RoomCreateResponse,
    RoomSendResponse,
    SyncResponse,
    UploadResponse,
)

from outlast.cluster.plan import worker_denied
from outlast.log.client import LogClient, LogMessage, StreamMissing
from outlast.log.engine import NatsNode, NodeSpec, free_port
from outlast.log.lease import KeyBucket, Lease, claim
from outlast.log.names import Names
from outlast.log.objects import ObjectBucket
from tests.cluster.harness import (
    Cluster,
    close_all,
    http,
    nio_register,
    ok,
    wait_for,
)

NAMES = Names(partitions=2)
ROOMS = NAMES.rooms_stream(0)


async def refused(url: str, subject: str, body: bytes = b"") -> str:
    """Send one JetStream API request with ``url``'s credential; the server's complaint."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(url, error_cb=on_error, connect_timeout=5, max_reconnect_attempts=1)
    try:
        with pytest.raises(nats.errors.TimeoutError):  # no answer: the request never arrived
            await nc.request(subject, body, timeout=1.0)
        for _ in range(50):
            if errors:
                break
            await asyncio.sleep(0.05)
    finally:
        await nc.close()
    assert errors, f"no permissions violation reported for {subject}"
    return errors[0]


def is_violation(error: str, subject: str) -> bool:
    return bool(re.search("permissions violation for publish to", error, re.I)) and (
        subject.lower() in error.lower()
    )


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[NodeSpec]:
    spec = NodeSpec(
        name="lp-1",
        store_dir=tmp_path / "js",
        client_port=free_port(),
        app_password="admin-secret",
        sys_password="sys-secret",
        worker_password="worker-secret",
        worker_denied=worker_denied(NAMES),
    )
    server = NatsNode(spec, tmp_path / "nats.conf")
    server.start()
    try:
        await server.wait_ready()
        yield spec
    finally:
        server.stop()


def admin_url(spec: NodeSpec) -> str:
    return f"nats://app:{spec.app_password}@127.0.0.1:{spec.client_port}"


def worker_url(spec: NodeSpec) -> str:
    return f"nats://worker:{spec.worker_password}@127.0.0.1:{spec.client_port}"


async def client(url: str, *, manage: bool) -> LogClient:
    log = LogClient([url], name="lp-test", manage_streams=manage)
    await log.connect()
    return log


async def make_everything(spec: NodeSpec) -> None:
    admin = await client(admin_url(spec), manage=True)
    try:
        await admin.ensure_streams(
            [*NAMES.streams(), *NAMES.control_streams()], replicas=1, duplicate_window=120.0
        )
        await ObjectBucket(admin, NAMES.media_bucket).ensure(1)
    finally:
        await admin.close()


async def test_a_worker_finds_a_missing_stream_and_says_who_must_make_it(
    node: NodeSpec,
) -> None:
    worker = await client(worker_url(node), manage=False)
    try:
        with pytest.raises(StreamMissing, match="admin credential"):
            await worker.ensure_streams(NAMES.streams(), replicas=1, duplicate_window=120.0)
        with pytest.raises(StreamMissing, match="may not create streams"):
            await ObjectBucket(worker, NAMES.media_bucket).ensure(1)
    finally:
        await worker.close()
    # and the request it would have needed is refused
    error = await refused(worker_url(node), f"$JS.API.STREAM.CREATE.{ROOMS}", b"{}")
    assert is_violation(error, f"$JS.API.STREAM.CREATE.{ROOMS}"), error


async def test_a_worker_does_its_work_but_cannot_delete_purge_or_change_streams(
    node: NodeSpec,
) -> None:
    await make_everything(node)
    worker = await client(worker_url(node), manage=False)
    try:
        # Starting: every stream and bucket is there.
        await worker.ensure_streams(
            [*NAMES.streams(), *NAMES.control_streams()], replicas=1, duplicate_window=120.0
        )
        media = ObjectBucket(worker, NAMES.media_bucket)
        await media.ensure(1)
        # Writing and reading facts.
        subject = f"{NAMES.prefix}.rooms.0.r1.timeline"
        ack = await worker.js.publish(subject, b'{"op": "x"}', headers={"Nats-Msg-Id": "m1"})
        assert (await worker.stream_state(ROOMS)).last_seq == ack.seq
        assert await worker.leader_position(ROOMS) == ack.seq
        assert await worker.last_subject_seq(ROOMS, subject) == ack.seq
        stored = await worker.next_message(ROOMS, 1, f"{NAMES.prefix}.rooms.0.>")
        assert stored is not None and stored.seq == ack.seq
        # An ordered consumer (the view) and the durable push queue.
        seen: list[LogMessage] = []

        async def on_message(message: LogMessage) -> None:
            seen.append(message)

        sub = await worker.follow(ROOMS, f"{NAMES.prefix}.rooms.0.>", 1, on_message)
        queue = await worker.work_queue(
            ROOMS, NAMES.push_consumer, NAMES.push_subjects(0), ack_wait=5.0, max_pending=16
        )
        second = await worker.js.publish(subject, b'{"op": "y"}')
        items = await queue.fetch(1, 5.0)
        assert [item.message.seq for item in items] == [second.seq]
        await items[0].ack()
        await queue.reachable()
        await queue.close()
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.05)
        assert [m.seq for m in seen] == [ack.seq, second.seq]
        await sub.unsubscribe()
        # Media: store, read back, and delete (a subject purge of the bucket).
        obj = await media.put("blob", io.BytesIO(b"media bytes"), {}, expected_seq=0)
        found = await media.info("blob")
        assert found is not None
        assert b"".join([chunk async for chunk in media.read(found)]) == b"media bytes"
        await media.delete(obj)
        assert await media.info("blob") is None
    finally:
        await worker.close()

    # Every destructive request is refused; the stream is untouched.
    for subject, body in [
        (f"$JS.API.STREAM.DELETE.{ROOMS}", b""),
        (f"$JS.API.STREAM.PURGE.{ROOMS}", b"{}"),
        (f"$JS.API.STREAM.PURGE.{NAMES.users_stream}", b"{}"),
        (f"$JS.API.STREAM.UPDATE.{ROOMS}", b'{"name": "%s"}' % ROOMS.encode()),
        (f"$JS.API.STREAM.MSG.DELETE.{ROOMS}", b'{"seq": 1}'),
        (f"$JS.API.STREAM.DELETE.OBJ_{NAMES.media_bucket}", b""),
        (f"$JS.API.CONSUMER.DELETE.{ROOMS}.{NAMES.push_consumer}", b""),
    ]:
        error = await refused(worker_url(node), subject, body)
        assert is_violation(error, subject), error
    admin = await client(admin_url(node), manage=True)
    try:
        assert (await admin.stream_state(ROOMS)).messages == 2
        assert (await admin.js.consumer_info(ROOMS, NAMES.push_consumer)).num_ack_pending == 0
        # The admin credential keeps every right (what restore and rebuild need).
        await admin.js.purge_stream(ROOMS)
        assert (await admin.stream_state(ROOMS)).messages == 0
        assert await admin.js.delete_stream(ROOMS)
    finally:
        await admin.close()


def site_worker_url(cluster: Cluster, site: str) -> str:
    """The log URL written into a worker's config by the supervisor."""
    data_dir = Path(cluster.site(site)["data_dir"])
    configs = sorted(data_dir.glob("worker-*-0.toml"))
    assert configs, f"no worker config under {data_dir}"
    config: dict[str, Any] = tomllib.loads(configs[-1].read_text())
    assert config["log"]["manage_streams"] is False
    url = str(config["log"]["nats_urls"][0])
    assert url.startswith("nats://worker:")
    return url


@pytest.mark.slow
async def test_a_cluster_workers_credential_is_refused_a_stream_delete(
    cluster: Cluster,
) -> None:
    names = Names(partitions=int(cluster.description["partitions"]))
    url = site_worker_url(cluster, "b")
    for subject in (
        f"$JS.API.STREAM.DELETE.{names.rooms_stream(0)}",
        f"$JS.API.STREAM.PURGE.{names.users_stream}",
    ):
        error = await refused(url, subject, b"{}" if "PURGE" in subject else b"")
        assert is_violation(error, subject), error

    # The whole normal flow still works with workers on that credential.
    door = cluster.front_door
    alice = await nio_register(door, "alice")
    try:
        room = ok(await alice.room_create(name="least"), RoomCreateResponse).room_id
        sent = ok(
            await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "hi"}),
            RoomSendResponse,
        )
        sync = ok(await alice.sync(timeout=0, full_state=True), SyncResponse)
        assert sent.event_id in [e.event_id for e in sync.rooms.join[room].timeline.events]
        upload, _ = await alice.upload(io.BytesIO(b"x" * 3000), "application/octet-stream")
        mxc = ok(upload, UploadResponse).content_uri
        server, media_id = mxc.removeprefix("mxc://").split("/")
        for site in cluster.names:

            async def fetched(site: str = site) -> bool:
                status, _, _ = await http(
                    "GET",
                    f"{cluster.site_url(site)}/_matrix/client/v1/media/download/"
                    f"{server}/{media_id}",
                    token=alice.access_token,
                )
                return status == 200

            await wait_for(fetched, timeout=30)
    finally:
        await close_all(alice)

    # The streams are intact, and every worker made its push consumer.
    admin_url = cluster.site("a")["nats_url"]
    nc = await nats.connect(admin_url, connect_timeout=5)
    try:
        js = nc.jetstream(timeout=5)
        for partition in range(names.partitions):
            info = await js.consumer_info(names.rooms_stream(partition), names.push_consumer)
            assert info.name == names.push_consumer
        assert (await js.stream_info(names.users_stream)).state.messages > 0
    finally:
        await nc.close()


async def test_a_worker_runs_the_backup_schedule_in_the_bucket_the_admin_made(
    node: NodeSpec,
) -> None:
    backups = NAMES.backup_bucket
    worker = await client(worker_url(node), manage=False)
    try:
        with pytest.raises(StreamMissing):  # not made yet, and the worker may not make it
            await KeyBucket(worker, backups).ensure(1)
    finally:
        await worker.close()
    admin = await client(admin_url(node), manage=True)
    try:
        await KeyBucket(admin, backups).ensure(1)
    finally:
        await admin.close()
    worker = await client(worker_url(node), manage=False)
    try:
        bucket = KeyBucket(worker, backups)
        await bucket.ensure(1)  # found
        mine = Lease(bucket, "lease", "worker-1", ttl=30)
        other = Lease(bucket, "lease", "worker-2", ttl=30)
        assert await mine.hold() and not await other.hold()
        assert await mine.hold()  # renewed by compare-and-set
        assert await mine.holder_now() == "worker-1"
        assert await claim(bucket, "period.7", "worker-1", ttl=30)
        assert not await claim(bucket, "period.7", "worker-2", ttl=30)
    finally:
        await worker.close()
    for subject in (f"$JS.API.STREAM.DELETE.KV_{backups}", f"$JS.API.STREAM.PURGE.KV_{backups}"):
        error = await refused(worker_url(node), subject, b"{}")
        assert is_violation(error, subject), error
