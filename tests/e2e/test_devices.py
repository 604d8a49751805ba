"""Devices end to end: list, rename, delete with user-interactive auth, token revocation."""

from __future__ import annotations

from typing import Any

from nio import (
    DeleteDevicesAuthResponse,
    DeleteDevicesResponse,
    DevicesResponse,
    LoginResponse,
    UpdateDeviceResponse,
)

from tests.e2e.helpers import api, close_all, expect, new_client, register, sync
from tests.servers import OutlastProcess

V3 = "/_matrix/client/v3"


async def login(server: OutlastProcess, name: str, device_name: str) -> tuple[str, str]:
    """A second session (token, device id) for an existing user."""
    status, body = await api(
        "POST",
        server.url + V3 + "/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": name},
            "password": f"pw-{name}",
            "initial_device_display_name": device_name,
        },
    )
    assert status == 200, body
    return body["access_token"], body["device_id"]


def password_auth(name: str, session: str, password: str | None = None) -> dict[str, Any]:
    return {
        "type": "m.login.password",
        "session": session,
        "identifier": {"type": "m.id.user", "user": name},
        "password": password or f"pw-{name}",
    }


async def test_list_get_and_rename(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice")
    laptop = new_client(server.url, "alice")
    try:
        expect(await laptop.login("pw-alice", device_name="Laptop"), LoginResponse)
        listed = expect(await alice.devices(), DevicesResponse)
        by_id = {d.id: d for d in listed.devices}
        assert set(by_id) == {alice.device_id, laptop.device_id}
        assert by_id[laptop.device_id].display_name == "Laptop"

        expect(
            await alice.update_device(laptop.device_id, {"display_name": "Work laptop"}),
            UpdateDeviceResponse,
        )
        status, body = await api(
            "GET", f"{server.url}{V3}/devices/{laptop.device_id}", token=laptop.access_token
        )
        assert status == 200
        assert (body["device_id"], body["display_name"]) == (laptop.device_id, "Work laptop")

        # Unknown devices are 404 for GET and PUT; bad names are rejected with 400.
        for method in ("GET", "PUT"):
            status, body = await api(
                method, f"{server.url}{V3}/devices/NOPE", {}, token=alice.access_token
            )
            assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
        status, body = await api(
            "PUT",
            f"{server.url}{V3}/devices/{laptop.device_id}",
            {"display_name": 7},
            token=alice.access_token,
        )
        assert (status, body["errcode"]) == (400, "M_BAD_JSON")
        # Another user's device is invisible to this user.
        bob = await register(server.url, "bob")
        status, _ = await api(
            "GET", f"{server.url}{V3}/devices/{laptop.device_id}", token=bob.access_token
        )
        assert status == 404
        await bob.close()
    finally:
        await close_all(alice, laptop)


async def test_delete_device_needs_password_and_revokes_its_token(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice")
    token, device_id = await login(server, "alice", "Phone")
    url = f"{server.url}{V3}/devices/{device_id}"
    keys = {
        "user_id": alice.user_id,
        "device_id": device_id,
        "algorithms": ["m.olm.v1"],
        "keys": {f"ed25519:{device_id}": "k"},
        "signatures": {},
    }
    try:
        status, _ = await api(
            "POST", f"{server.url}{V3}/keys/upload", {"device_keys": keys}, token=token
        )
        assert status == 200
        query: dict[str, Any] = {"device_keys": {alice.user_id: []}}
        status, body = await api(
            "POST", f"{server.url}{V3}/keys/query", query, token=alice.access_token
        )
        assert list(body["device_keys"][alice.user_id]) == [device_id]
        assert body["device_keys"][alice.user_id][device_id]["unsigned"] == {
            "device_display_name": "Phone"
        }

        status, body = await api("DELETE", url, token=alice.access_token)
        assert status == 401 and body["errcode"] == "M_UNAUTHORIZED"
        assert {"stages": ["m.login.password"]} in body["flows"] and body["session"]
        session = body["session"]

        status, body = await api(
            "DELETE",
            url,
            {"auth": password_auth("alice", session, "nope")},
            token=alice.access_token,
        )
        assert status == 401 and body["flows"]  # a failed stage may be retried

        status, body = await api(
            "DELETE", url, {"auth": password_auth("alice", session)}, token=alice.access_token
        )
        assert (status, body) == (200, {})

        status, body = await api("GET", f"{server.url}{V3}/account/whoami", token=token)
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
        listed = expect(await alice.devices(), DevicesResponse)
        assert [d.id for d in listed.devices] == [alice.device_id]
        status, body = await api(
            "POST", f"{server.url}{V3}/keys/query", query, token=alice.access_token
        )
        assert body["device_keys"][alice.user_id] == {}  # its keys went with it
        # Deleting it again is a 404 rather than an error of the server.
        status, body = await api(
            "DELETE", url, {"auth": password_auth("alice", session)}, token=alice.access_token
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    finally:
        await alice.close()


async def test_delete_devices_with_nio_uia(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice")
    sessions = [await login(server, "alice", f"Device {i}") for i in range(3)]
    doomed = [device for _, device in sessions[:2]]
    try:
        first = expect(await alice.delete_devices(doomed), DeleteDevicesAuthResponse)
        assert first.session and {"stages": ["m.login.password"]} in first.flows
        auth = password_auth("alice", first.session)
        expect(await alice.delete_devices(doomed, auth=auth), DeleteDevicesResponse)

        listed = expect(await alice.devices(), DevicesResponse)
        assert {d.id for d in listed.devices} == {alice.device_id, sessions[2][1]}
        for token, _ in sessions[:2]:
            status, body = await api("GET", f"{server.url}{V3}/account/whoami", token=token)
            assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
        status, _ = await api("GET", f"{server.url}{V3}/account/whoami", token=sessions[2][0])
        assert status == 200

        status, body = await api(
            "POST",
            f"{server.url}{V3}/delete_devices",
            {"devices": "not-a-list"},
            token=alice.access_token,
        )
        assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    finally:
        await alice.close()


async def test_deleted_device_reaches_room_members_device_lists(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    _, device_id = await login(server, "alice", "Tablet")
    try:
        room = await alice.room_create(invite=[bob.user_id])
        await bob.join(room.room_id)
        await sync(bob)
        before = bob.next_batch

        status, body = await api(
            "POST",
            f"{server.url}{V3}/delete_devices",
            {"devices": [device_id]},
            token=alice.access_token,
        )
        assert status == 401
        status, _ = await api(
            "POST",
            f"{server.url}{V3}/delete_devices",
            {
                "devices": [device_id],
                "auth": password_auth("alice", body["session"]),
            },
            token=alice.access_token,
        )
        assert status == 200

        status, body = await api(
            "GET",
            f"{server.url}{V3}/sync",
            token=bob.access_token,
            params={"since": before, "timeout": "5000"},
        )
        assert status == 200 and alice.user_id in body["device_lists"]["changed"]
        status, body = await api(
            "GET",
            f"{server.url}{V3}/keys/changes",
            token=bob.access_token,
            params={"from": before, "to": body["next_batch"]},
        )
        assert status == 200 and alice.user_id in body["changed"]

        # A plain logout removes a device too (accounts tells the e2ee tables: view/apply.py).
        gone_token, _ = await login(server, "alice", "Gone")
        await sync(bob)
        mark = bob.next_batch
        status, _ = await api("POST", f"{server.url}{V3}/logout", token=gone_token)
        assert status == 200
        status, body = await api(
            "GET",
            f"{server.url}{V3}/sync",
            token=bob.access_token,
            params={"since": mark, "timeout": "0"},
        )
        assert status == 200 and alice.user_id in body["device_lists"]["changed"]
    finally:
        await close_all(alice, bob)
