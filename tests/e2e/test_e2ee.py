"""End-to-end encryption plumbing: matrix-nio clients that really encrypt, and the raw API.

The server only stores and relays public keys and opaque payloads; the first
test checks that two matrix-nio clients (with vodozemac) exchange a message in
an encrypted room and that its plaintext never reaches the server's disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    KeysUploadResponse,
    MegolmEvent,
    RegisterResponse,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
)

from outlast.log.engine import NatsNode, NodeSpec, free_port
from tests.e2e.helpers import (
    api,
    call,
    close_all,
    eventually,
    expect,
    sync,
    text,
    watch_device_lists,
)
from tests.e2e.helpers import raw_user as user
from tests.servers import OutlastProcess, start_outlast

V3 = "/_matrix/client/v3"
SECRET = "the eagle lands at midnight 7f3a"


def encrypted_client(url: str, name: str, store: Path) -> AsyncClient:
    store.mkdir(parents=True, exist_ok=True)
    config = AsyncClientConfig(
        max_limit_exceeded=0, max_timeouts=0, request_timeout=30, encryption_enabled=True
    )
    return AsyncClient(url, name, store_path=str(store), config=config)


async def test_two_nio_clients_exchange_an_encrypted_message(
    server: OutlastProcess, tmp_path: Path
) -> None:
    alice = encrypted_client(server.url, "alice", tmp_path / "alice-store")
    bob = encrypted_client(server.url, "bob", tmp_path / "bob-store")
    try:
        for client, name in ((alice, "alice"), (bob, "bob")):
            expect(await client.register(name, f"pw-{name}"), RegisterResponse)
            assert client.olm is not None and client.should_upload_keys
            expect(await client.keys_upload(), KeysUploadResponse)
        encryption = {
            "type": "m.room.encryption",
            "state_key": "",
            "content": {"algorithm": "m.megolm.v1.aes-sha2"},
        }
        room = expect(
            await alice.room_create(invite=[bob.user_id], initial_state=[encryption]),
            RoomCreateResponse,
        )
        await sync(bob)
        expect(await bob.join(room.room_id), JoinResponse)
        await sync(bob)

        async def alice_sees_bob() -> bool:
            await sync(alice, timeout=1000)
            joined = alice.rooms.get(room.room_id)
            return joined is not None and joined.encrypted and bob.user_id in joined.users

        await eventually(alice_sees_bob)
        if alice.should_query_keys:
            await alice.keys_query()
        devices = list(alice.device_store.active_user_devices(bob.user_id))
        assert [d.id for d in devices] == [bob.device_id]
        alice.verify_device(devices[0])
        expect(
            await alice.room_send(room.room_id, "m.room.message", text(SECRET)), RoomSendResponse
        )

        seen: list[Any] = []

        async def bob_decrypts() -> bool:
            response = await sync(bob, timeout=2000)
            joined = response.rooms.join.get(room.room_id)
            if joined is not None:
                seen.extend(joined.timeline.events)
            return any(isinstance(e, RoomMessageText) and e.body == SECRET for e in seen)

        await eventually(bob_decrypts)
        assert not any(isinstance(e, MegolmEvent) for e in seen)

        # Alice's other devices would get the key too; the server stored only ciphertext.
        status, body = await api(
            "GET",
            f"{server.url}{V3}/rooms/{room.room_id}/messages",
            token=bob.access_token,
            params={"dir": "b", "limit": "5"},
        )
        assert status == 200
        assert body["chunk"][0]["type"] == "m.room.encrypted"
        assert SECRET not in str(body)
        for path in server.data_dir.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path
    finally:
        await close_all(alice, bob)


# ---- the raw API -----------------------------------------------------------------


async def second_device(server: OutlastProcess, name: str) -> dict[str, str]:
    status, body = await api(
        "POST",
        server.url + V3 + "/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": name},
            "password": f"pw-{name}",
        },
    )
    assert status == 200, body
    return {
        "user_id": body["user_id"],
        "token": body["access_token"],
        "device_id": body["device_id"],
    }


def device_keys(who: dict[str, str], curve: str = "curve") -> dict[str, Any]:
    device = who["device_id"]
    return {
        "user_id": who["user_id"],
        "device_id": device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"curve25519:{device}": curve, f"ed25519:{device}": "ed"},
        "signatures": {who["user_id"]: {f"ed25519:{device}": "sig"}},
    }


def otks(count: int, start: int = 0) -> dict[str, Any]:
    return {
        f"signed_curve25519:K{i:03d}": {"key": f"otk-{i}", "signatures": {}}
        for i in range(start, start + count)
    }


async def test_upload_query_and_validation(server: OutlastProcess) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    status, body = await call(
        server,
        "POST",
        "/keys/upload",
        alice,
        {
            "device_keys": device_keys(alice),
            "one_time_keys": otks(3),
            "fallback_keys": {"signed_curve25519:F1": {"key": "fb", "fallback": True}},
        },
    )
    assert (status, body) == (200, {"one_time_key_counts": {"signed_curve25519": 3}})
    # The same upload again changes nothing; a key id reused with another value is refused.
    status, body = await call(server, "POST", "/keys/upload", alice, {"one_time_keys": otks(3)})
    assert body == {"one_time_key_counts": {"signed_curve25519": 3}}
    reused = {"signed_curve25519:K000": {"key": "different", "signatures": {}}}
    status, body = await call(server, "POST", "/keys/upload", alice, {"one_time_keys": reused})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    # Identity keys must be the requester's own.
    status, body = await call(
        server, "POST", "/keys/upload", bob, {"device_keys": device_keys(alice)}
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    for bad in (
        {"one_time_keys": "x"},
        {"one_time_keys": {"nocolon": "k"}},
        {"device_keys": {"user_id": bob["user_id"]}},
    ):
        status, body = await call(server, "POST", "/keys/upload", bob, bad)
        assert status == 400 and body["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM"), bad

    status, body = await call(
        server,
        "POST",
        "/keys/query",
        bob,
        {"device_keys": {alice["user_id"]: [], bob["user_id"]: []}},
    )
    assert status == 200
    keys = body["device_keys"][alice["user_id"]][alice["device_id"]]
    assert keys["keys"] == device_keys(alice)["keys"]
    assert body["device_keys"][bob["user_id"]] == {}
    assert body["master_keys"] == {} and body["failures"] == {}
    status, body = await call(server, "POST", "/keys/query", bob, {"device_keys": {"x": []}})
    assert status == 400

    status, body = await call(server, "GET", "/sync", alice)
    assert body["device_one_time_keys_count"] == {"signed_curve25519": 3}
    assert body["device_unused_fallback_key_types"] == ["signed_curve25519"]


async def test_concurrent_claims_hand_out_each_one_time_key_once(server: OutlastProcess) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    status, _ = await call(
        server,
        "POST",
        "/keys/upload",
        alice,
        {
            "device_keys": device_keys(alice),
            "one_time_keys": otks(5),
            "fallback_keys": {"signed_curve25519:FB": {"key": "fallback", "fallback": True}},
        },
    )
    assert status == 200
    request = {"one_time_keys": {alice["user_id"]: {alice["device_id"]: "signed_curve25519"}}}
    answers = await asyncio.gather(
        *(call(server, "POST", "/keys/claim", bob, request) for _ in range(10))
    )
    claimed: list[str] = []
    for status, body in answers:
        assert status == 200, body
        got = body["one_time_keys"][alice["user_id"]][alice["device_id"]]
        claimed += list(got)
    one_time = [k for k in claimed if k != "signed_curve25519:FB"]
    assert sorted(one_time) == sorted(otks(5)) and claimed.count("signed_curve25519:FB") == 5

    status, body = await call(server, "GET", "/sync", alice)
    assert body["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert body["device_unused_fallback_key_types"] == []
    # Without a fallback key an exhausted device is simply missing from the answer.
    carol = await user(server, "carol")
    await call(server, "POST", "/keys/upload", carol, {"one_time_keys": otks(1)})
    request = {
        "one_time_keys": {
            carol["user_id"]: {carol["device_id"]: "signed_curve25519"},
            "@nobody:localhost": {"X": "signed_curve25519"},
        }
    }
    first = await call(server, "POST", "/keys/claim", bob, request)
    second = await call(server, "POST", "/keys/claim", bob, request)
    assert list(first[1]["one_time_keys"][carol["user_id"]][carol["device_id"]]) == [
        "signed_curve25519:K000"
    ]
    assert second == (200, {"failures": {}, "one_time_keys": {}})


async def test_send_to_device_reaches_the_right_device_once(server: OutlastProcess) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    phone = await second_device(server, "bob")
    _, initial = await call(server, "GET", "/sync", bob)
    since = initial["next_batch"]
    _, phone_initial = await call(server, "GET", "/sync", phone)

    # Bob's long-poll wakes when the message arrives.
    poll = asyncio.create_task(
        call(server, "GET", "/sync", bob, params={"since": since, "timeout": "20000"})
    )
    await asyncio.sleep(0.3)
    payload = {"messages": {bob["user_id"]: {bob["device_id"]: {"ciphertext": "opaque"}}}}
    for _ in range(2):  # a retried txnId is delivered once
        status, body = await call(
            server, "PUT", "/sendToDevice/m.room.encrypted/txn1", alice, payload
        )
        assert (status, body) == (200, {})
    status, body = await asyncio.wait_for(poll, 15)
    assert body["to_device"]["events"] == [
        {
            "sender": alice["user_id"],
            "type": "m.room.encrypted",
            "content": {"ciphertext": "opaque"},
        }
    ]
    _, later = await call(
        server, "GET", "/sync", bob, params={"since": body["next_batch"], "timeout": "0"}
    )
    assert later["to_device"]["events"] == []
    _, other = await call(
        server, "GET", "/sync", phone, params={"since": phone_initial["next_batch"], "timeout": "0"}
    )
    assert other["to_device"]["events"] == []

    # "*" reaches every device of the user; a new txnId is a new message.
    star = {"messages": {bob["user_id"]: {"*": {"n": 2}}}}
    status, _ = await call(server, "PUT", "/sendToDevice/m.test/txn2", alice, star)
    assert status == 200
    for who, start in ((bob, body["next_batch"]), (phone, phone_initial["next_batch"])):
        _, got = await call(server, "GET", "/sync", who, params={"since": start, "timeout": "0"})
        assert [e["content"] for e in got["to_device"]["events"]] == [{"n": 2}]

    # Once a later since proves receipt, an initial sync no longer repeats them.
    _, got = await call(server, "GET", "/sync", bob, params={"since": later["next_batch"]})
    _, again = await call(server, "GET", "/sync", bob, params={"since": got["next_batch"]})

    async def pruned() -> bool:
        _, fresh = await call(server, "GET", "/sync", bob)
        return bool(fresh["to_device"]["events"] == [])

    await eventually(pruned, timeout=10)
    status, body = await call(
        server, "PUT", "/sendToDevice/m.test/txn3", alice, {"messages": {"not-a-user": {"*": {}}}}
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    assert again["to_device"]["events"] == []


async def test_key_changes_and_device_lists(server: OutlastProcess) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    stranger = await user(server, "stranger")
    room_id, since, poll = await watch_device_lists(server, alice, bob)
    for who in (bob, stranger):
        status, _ = await call(
            server, "POST", "/keys/upload", who, {"device_keys": device_keys(who)}
        )
        assert status == 200
    status, body = await asyncio.wait_for(poll, 15)
    assert body["device_lists"]["changed"] == [bob["user_id"]]

    status, changes = await call(
        server, "GET", "/keys/changes", alice, params={"from": since, "to": body["next_batch"]}
    )
    assert (status, changes) == (200, {"changed": [bob["user_id"]], "left": []})
    status, changes = await call(
        server,
        "GET",
        "/keys/changes",
        alice,
        params={"from": body["next_batch"], "to": body["next_batch"]},
    )
    assert changes == {"changed": [], "left": []}
    status, changes = await call(server, "GET", "/keys/changes", alice, params={"from": "x"})
    assert status == 400

    # Bob leaving the only shared room puts him in "left".
    status, _ = await call(server, "POST", f"/rooms/{room_id}/leave", bob, {})
    assert status == 200
    _, body = await call(
        server, "GET", "/sync", alice, params={"since": body["next_batch"], "timeout": "5000"}
    )
    assert body["device_lists"]["left"] == [bob["user_id"]]


# ---- two processes on one log: claims and deletions hold across views --------------


@pytest.fixture
def two_views(tmp_path: Path) -> Iterator[tuple[OutlastProcess, OutlastProcess]]:
    """Two `outlast serve` processes (own SQLite views) on one standalone nats-server."""
    node = NatsNode(
        NodeSpec(name="shared", store_dir=tmp_path / "nats" / "js", client_port=free_port()),
        tmp_path / "nats" / "nats.conf",
    )
    node.start()
    procs: list[OutlastProcess] = []
    try:
        asyncio.run(node.wait_ready())
        extra = f'nats_urls = ["{node.url}"]'
        procs.append(start_outlast(tmp_path / "a", log_extra=extra))
        procs.append(start_outlast(tmp_path / "b", log_extra=extra))
        yield procs[0], procs[1]
    finally:
        for proc in procs:
            proc.stop()
        node.stop()


@pytest.mark.slow
async def test_claims_and_deletions_across_two_views(
    two_views: tuple[OutlastProcess, OutlastProcess],
) -> None:
    a, b = two_views
    alice, bob = await user(a, "alice"), await user(a, "bob")
    status, _ = await call(
        a,
        "POST",
        "/keys/upload",
        alice,
        {"device_keys": device_keys(alice), "one_time_keys": otks(6)},
    )
    assert status == 200

    async def b_knows_keys() -> bool:
        _, body = await call(b, "GET", "/sync", alice)
        return bool(body and body.get("device_one_time_keys_count", {}).get("signed_curve25519"))

    await eventually(b_knows_keys)
    request = {"one_time_keys": {alice["user_id"]: {alice["device_id"]: "signed_curve25519"}}}
    answers = await asyncio.gather(
        *(call(site, "POST", "/keys/claim", bob, request) for site in (a, b) * 6)
    )
    claimed = [
        k
        for status, body in answers
        if status == 200
        for k in body["one_time_keys"].get(alice["user_id"], {}).get(alice["device_id"], {})
    ]
    assert all(status == 200 for status, _ in answers)
    assert sorted(claimed) == sorted(otks(6))  # 12 claims, 6 keys: each handed out once

    # A to-device message sent at A wakes a long-poll parked at B.
    _, first = await call(b, "GET", "/sync", alice)
    poll = asyncio.create_task(
        call(b, "GET", "/sync", alice, params={"since": first["next_batch"], "timeout": "20000"})
    )
    await asyncio.sleep(0.3)
    payload = {"messages": {alice["user_id"]: {alice["device_id"]: {"hello": "from a"}}}}
    status, _ = await call(a, "PUT", "/sendToDevice/m.test/t1", bob, payload)
    assert status == 200
    _, body = await asyncio.wait_for(poll, 15)
    assert [e["content"] for e in body["to_device"]["events"]] == [{"hello": "from a"}]

    # Deleting a device at A makes its token fail at B too.
    phone = await second_device(b, "alice")
    status, challenge = await call(a, "DELETE", f"/devices/{phone['device_id']}", alice, {})
    if status == 404:  # A had not applied B's login yet
        await asyncio.sleep(0.5)
        status, challenge = await call(a, "DELETE", f"/devices/{phone['device_id']}", alice, {})
    assert status == 401
    auth = {
        "type": "m.login.password",
        "session": challenge["session"],
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "pw-alice",
    }
    status, _ = await call(a, "DELETE", f"/devices/{phone['device_id']}", alice, {"auth": auth})
    assert status == 200

    async def refused_at_b() -> bool:
        status, body = await call(b, "GET", "/account/whoami", phone)
        return status == 401 and body["errcode"] == "M_UNKNOWN_TOKEN"

    await eventually(refused_at_b, timeout=10)
