"""Accounts end to end: registration, login, logout, password change, deactivation."""

from __future__ import annotations

from pathlib import Path

from nio import (
    JoinedMembersResponse,
    JoinResponse,
    LoginInfoResponse,
    LoginResponse,
    LogoutResponse,
    RegisterResponse,
    RoomVisibility,
    WhoamiResponse,
)

from tests.e2e.helpers import api, close_all, expect, expect_error, new_client, register
from tests.servers import OutlastProcess, start_outlast

V3 = "/_matrix/client/v3"


async def whoami_status(server: OutlastProcess, token: str) -> tuple[int, str | None]:
    status, body = await api("GET", server.url + V3 + "/account/whoami", token=token)
    return status, body.get("errcode")


async def test_register_with_dummy_auth_and_availability(server: OutlastProcess) -> None:
    base = server.url + V3
    # Without auth the server starts user-interactive auth offering m.login.dummy.
    status, body = await api("POST", base + "/register", {"username": "uia", "password": "pw"})
    assert status == 401
    assert {"stages": ["m.login.dummy"]} in body["flows"] and body["session"]

    status, body = await api("GET", base + "/register/available", params={"username": "alice"})
    assert (status, body) == (200, {"available": True})

    alice = new_client(server.url, "alice")
    try:
        reg = expect(await alice.register("alice", "wonderland"), RegisterResponse)
        assert reg.user_id == "@alice:localhost" and reg.access_token and reg.device_id
        who = expect(await alice.whoami(), WhoamiResponse)
        assert (who.user_id, who.device_id) == ("@alice:localhost", reg.device_id)

        status, body = await api("GET", base + "/register/available", params={"username": "alice"})
        assert (status, body["errcode"]) == (400, "M_USER_IN_USE")
    finally:
        await alice.close()


async def test_duplicate_and_invalid_usernames(server: OutlastProcess) -> None:
    first = await register(server.url, "dupe")
    second = new_client(server.url, "dupe")
    bad = new_client(server.url, "bad")
    try:
        expect_error(await second.register("dupe", "other"), 400, "M_USER_IN_USE")
        for name in ("has space", "bad:colon", "sm\u00f6rg\u00e5s", "a" * 300):
            expect_error(await bad.register(name, "pw"), 400, "M_INVALID_USERNAME")
        status, body = await api(
            "GET", server.url + V3 + "/register/available", params={"username": "no#way"}
        )
        assert (status, body["errcode"]) == (400, "M_INVALID_USERNAME")
    finally:
        await close_all(first, second, bad)


async def test_login_flows_and_password_login(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice", "wonderland")
    again = new_client(server.url, "alice")
    legacy_user = new_client(server.url, "@alice:localhost")
    try:
        flows = expect(await again.login_info(), LoginInfoResponse)
        assert "m.login.password" in flows.flows
        status, body = await api("GET", server.url + "/_matrix/client/r0/login")
        assert status == 200 and {"type": "m.login.password"} in body["flows"]

        login = expect(await again.login("wonderland", device_name="laptop"), LoginResponse)
        assert login.user_id == "@alice:localhost" and login.device_id != alice.device_id
        who = expect(await again.whoami(), WhoamiResponse)
        assert who.device_id == login.device_id
        # A full user id logs in too, and the first device keeps working.
        expect(await legacy_user.login("wonderland"), LoginResponse)
        expect(await alice.whoami(), WhoamiResponse)

        # Legacy r0 POST /login with the old `user` field.
        status, body = await api(
            "POST",
            server.url + "/_matrix/client/r0/login",
            {"type": "m.login.password", "user": "alice", "password": "wonderland"},
        )
        assert status == 200 and body["user_id"] == "@alice:localhost"
    finally:
        await close_all(alice, again, legacy_user)


async def test_wrong_password_and_unknown_user(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice", "wonderland")
    wrong = new_client(server.url, "alice")
    ghost = new_client(server.url, "ghost")
    try:
        expect_error(await wrong.login("not-it"), 403, "M_FORBIDDEN")
        expect_error(await ghost.login("whatever"), 403, "M_FORBIDDEN")
        assert wrong.access_token == ""
    finally:
        await close_all(alice, wrong, ghost)


async def test_logout_revokes_token_immediately(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice", "wonderland")
    other = new_client(server.url, "alice")
    try:
        expect(await other.login("wonderland"), LoginResponse)
        token = alice.access_token
        expect(await alice.logout(), LogoutResponse)
        status, body = await api("GET", server.url + V3 + "/account/whoami", token=token)
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
        # Only that device was logged out.
        expect(await other.whoami(), WhoamiResponse)
    finally:
        await close_all(alice, other)


async def test_logout_all(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice", "wonderland")
    second = new_client(server.url, "alice")
    try:
        expect(await second.login("wonderland"), LoginResponse)
        tokens = [alice.access_token, second.access_token]
        expect(await alice.logout(all_devices=True), LogoutResponse)
        for token in tokens:
            status, body = await api("GET", server.url + V3 + "/account/whoami", token=token)
            assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
        # Logging in again still works.
        fresh = new_client(server.url, "alice")
        try:
            expect(await fresh.login("wonderland"), LoginResponse)
        finally:
            await fresh.close()
    finally:
        await close_all(alice, second)


async def test_password_change_with_uia(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice", "old-secret")
    other = new_client(server.url, "alice")
    try:
        expect(await other.login("old-secret"), LoginResponse)
        url = server.url + V3 + "/account/password"
        status, body = await api(
            "POST", url, {"new_password": "new-secret"}, token=alice.access_token
        )
        assert status == 401 and {"stages": ["m.login.password"]} in body["flows"]
        session = body["session"]

        wrong = {
            "type": "m.login.password",
            "session": session,
            "password": "nope",
            "identifier": {"type": "m.id.user", "user": "alice"},
        }
        status, body = await api(
            "POST", url, {"new_password": "x", "auth": wrong}, token=alice.access_token
        )
        # A failed stage is a retryable 401 carrying the flows again (spec: UIA).
        assert (status, body["errcode"]) == (401, "M_FORBIDDEN")
        assert {"stages": ["m.login.password"]} in body["flows"] and body["session"]

        auth = {**wrong, "password": "old-secret"}
        status, body = await api(
            "POST", url, {"new_password": "new-secret", "auth": auth}, token=alice.access_token
        )
        assert status == 200, body
        # The requesting device stays logged in; the others are logged out (default).
        expect(await alice.whoami(), WhoamiResponse)
        assert await whoami_status(server, other.access_token) == (401, "M_UNKNOWN_TOKEN")

        old = new_client(server.url, "alice")
        new = new_client(server.url, "alice")
        try:
            expect_error(await old.login("old-secret"), 403, "M_FORBIDDEN")
            expect(await new.login("new-secret"), LoginResponse)
        finally:
            await close_all(old, new)
    finally:
        await close_all(alice, other)


async def test_deactivate(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice", "wonderland")
    bob = await register(server.url, "bob")
    try:
        room = (await alice.room_create(visibility=RoomVisibility.public, name="bye")).room_id
        expect(await bob.join(room), JoinResponse)
        url = server.url + V3 + "/account/deactivate"
        status, body = await api("POST", url, {}, token=alice.access_token)
        assert status == 401 and body["flows"] == [{"stages": ["m.login.password"]}]
        auth = {
            "type": "m.login.password",
            "session": body["session"],
            "password": "wonderland",
            "identifier": {"type": "m.id.user", "user": "@alice:localhost"},
        }
        status, body = await api("POST", url, {"auth": auth}, token=alice.access_token)
        assert status == 200, body

        assert await whoami_status(server, alice.access_token) == (401, "M_UNKNOWN_TOKEN")
        relogin = new_client(server.url, "alice")
        again = new_client(server.url, "alice")
        try:
            expect_error(await relogin.login("wonderland"), 403, "M_FORBIDDEN")
            # The name stays taken.
            expect_error(await again.register("alice", "x"), 400, "M_USER_IN_USE")
        finally:
            await close_all(relogin, again)
        # The account left its rooms on the way out.
        members = expect(await bob.joined_members(room), JoinedMembersResponse)
        assert [m.user_id for m in members.members] == ["@bob:localhost"]
    finally:
        await close_all(alice, bob)


async def test_registration_disabled(tmp_path: Path) -> None:
    proc = start_outlast(tmp_path / "closed", log_extra="\n[registration]\nenabled = false\n")
    client = new_client(proc.url, "nobody")
    try:
        expect_error(await client.register("nobody", "pw"), 403, "M_FORBIDDEN")
        status, body = await api("POST", proc.url + V3 + "/register", {"username": "x"})
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        # Login endpoints still answer.
        status, body = await api("GET", proc.url + V3 + "/login")
        assert status == 200
    finally:
        await client.close()
        proc.stop()
