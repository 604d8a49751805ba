"""Server-side key backup (/room_keys/*) over real HTTP, on an in-process site."""

from __future__ import annotations

from typing import Any

import aiohttp

from outlast.core.key_backup import MEGOLM_BACKUP_V1
from outlast.site import Site

V3 = "/_matrix/client/v3"
ROOM = "!room:localhost"
OTHER_ROOM = "!other:localhost"


class Client:
    def __init__(self, site: Site, token: str = "") -> None:
        self.base = f"http://127.0.0.1:{site.port}{V3}"
        self.token = token

    async def call(self, method: str, path: str, body: Any = None, **query: str) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.request(
                method, self.base + path, json=body, headers=headers, params=query
            ) as resp,
        ):
            return resp.status, await resp.json(content_type=None)


async def register(site: Site, name: str) -> Client:
    status, body = await Client(site).call(
        "POST",
        "/register",
        {"username": name, "password": f"pw-{name}", "auth": {"type": "m.login.dummy"}},
    )
    assert status == 200, body
    return Client(site, str(body["access_token"]))


def key(index: int = 0, forwarded: int = 0, verified: bool = False, tag: str = "a") -> Any:
    return {
        "first_message_index": index,
        "forwarded_count": forwarded,
        "is_verified": verified,
        "session_data": {"ciphertext": tag, "ephemeral": "e", "mac": "m"},
    }


AUTH = {"public_key": "pk", "signatures": {}}


async def test_versions_are_created_read_updated_and_deleted(site: Site) -> None:
    alice, bob = await register(site, "alice"), await register(site, "bob")
    assert await alice.call("GET", "/room_keys/version") == (
        404,
        {"errcode": "M_NOT_FOUND", "error": "No current backup version"},
    )
    status, body = await alice.call(
        "POST", "/room_keys/version", {"algorithm": MEGOLM_BACKUP_V1, "auth_data": AUTH}
    )
    assert status == 200, body
    version = body["version"]
    expected = {
        "algorithm": MEGOLM_BACKUP_V1,
        "auth_data": AUTH,
        "count": 0,
        "etag": "0",
        "version": version,
    }
    assert await alice.call("GET", "/room_keys/version") == (200, expected)
    assert await alice.call("GET", f"/room_keys/version/{version}") == (200, expected)
    # Another user sees none of it.
    assert (await bob.call("GET", "/room_keys/version"))[0] == 404
    assert (await bob.call("GET", f"/room_keys/version/{version}"))[0] == 404

    new_auth = {"public_key": "pk2"}
    status, _ = await alice.call(
        "PUT",
        f"/room_keys/version/{version}",
        {"algorithm": MEGOLM_BACKUP_V1, "auth_data": new_auth, "version": version},
    )
    assert status == 200
    assert (await alice.call("GET", "/room_keys/version"))[1]["auth_data"] == new_auth
    status, body = await alice.call(
        "PUT", f"/room_keys/version/{version}", {"algorithm": "other", "auth_data": {}}
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await alice.call("POST", "/room_keys/version", {"algorithm": MEGOLM_BACKUP_V1})
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")

    # A newer version becomes the current one.
    status, body = await alice.call(
        "POST", "/room_keys/version", {"algorithm": MEGOLM_BACKUP_V1, "auth_data": AUTH}
    )
    newer = body["version"]
    assert int(newer) > int(version)
    assert (await alice.call("GET", "/room_keys/version"))[1]["version"] == newer

    assert (await alice.call("DELETE", f"/room_keys/version/{newer}"))[0] == 200
    assert (await alice.call("DELETE", f"/room_keys/version/{newer}"))[0] == 200  # twice: fine
    assert (await alice.call("GET", f"/room_keys/version/{newer}"))[0] == 404
    assert (await alice.call("GET", "/room_keys/version"))[1]["version"] == version
    status, body = await alice.call("DELETE", "/room_keys/version/999999")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    assert (await bob.call("DELETE", f"/room_keys/version/{version}"))[0] == 404


async def test_keys_follow_the_replacement_rule_with_etag_and_count(site: Site) -> None:
    alice = await register(site, "alice")
    _, body = await alice.call(
        "POST", "/room_keys/version", {"algorithm": MEGOLM_BACKUP_V1, "auth_data": AUTH}
    )
    version = body["version"]

    # All three upload shapes.
    status, first = await alice.call(
        "PUT",
        "/room_keys/keys",
        {"rooms": {ROOM: {"sessions": {"s1": key(5, tag="s1")}}}},
        version=version,
    )
    assert status == 200, first
    assert first["count"] == 1
    status, body = await alice.call(
        "PUT", f"/room_keys/keys/{ROOM}", {"sessions": {"s2": key(0, tag="s2")}}, version=version
    )
    assert (status, body["count"]) == (200, 2)
    status, body = await alice.call(
        "PUT", f"/room_keys/keys/{OTHER_ROOM}/s3", key(0, tag="s3"), version=version
    )
    assert (status, body["count"]) == (200, 3)
    etag = body["etag"]
    assert etag != first["etag"]

    # A worse key (higher index, unverified) changes nothing, not even the etag.
    status, body = await alice.call(
        "PUT", f"/room_keys/keys/{ROOM}/s1", key(9, tag="worse"), version=version
    )
    assert (status, body) == (200, {"etag": etag, "count": 3})
    assert (await alice.call("GET", f"/room_keys/keys/{ROOM}/s1", version=version)) == (
        200,
        key(5, tag="s1"),
    )
    # A verified key beats an unverified one even with a higher index.
    status, body = await alice.call(
        "PUT", f"/room_keys/keys/{ROOM}/s1", key(7, verified=True, tag="v"), version=version
    )
    assert body["count"] == 3 and body["etag"] != etag
    # Then a lower forwarded_count wins on an equal index.
    await alice.call("PUT", f"/room_keys/keys/{ROOM}/s1", key(7, 2, True, "f2"), version=version)
    assert (await alice.call("GET", f"/room_keys/keys/{ROOM}/s1", version=version))[1] == key(
        7, verified=True, tag="v"
    )

    assert await alice.call("GET", "/room_keys/keys", version=version) == (
        200,
        {
            "rooms": {
                ROOM: {"sessions": {"s1": key(7, verified=True, tag="v"), "s2": key(0, tag="s2")}},
                OTHER_ROOM: {"sessions": {"s3": key(0, tag="s3")}},
            }
        },
    )
    assert await alice.call("GET", f"/room_keys/keys/{OTHER_ROOM}", version=version) == (
        200,
        {"sessions": {"s3": key(0, tag="s3")}},
    )
    assert await alice.call("GET", "/room_keys/keys/!none:localhost", version=version) == (
        200,
        {"sessions": {}},
    )
    status, body = await alice.call("GET", f"/room_keys/keys/{ROOM}/nope", version=version)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await alice.call("GET", "/room_keys/keys")
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")

    # Deleting keys: one session, then a room.
    status, body = await alice.call("DELETE", f"/room_keys/keys/{ROOM}/s2", version=version)
    assert (status, body["count"]) == (200, 2)
    status, body = await alice.call("DELETE", f"/room_keys/keys/{ROOM}", version=version)
    assert (status, body["count"]) == (200, 1)
    info = (await alice.call("GET", "/room_keys/version"))[1]
    assert (info["count"], info["etag"]) == (1, body["etag"])


async def test_only_the_current_version_takes_keys(site: Site) -> None:
    alice = await register(site, "alice")
    body = {"algorithm": MEGOLM_BACKUP_V1, "auth_data": AUTH}
    old = (await alice.call("POST", "/room_keys/version", body))[1]["version"]
    await alice.call("PUT", f"/room_keys/keys/{ROOM}/s1", key(), version=old)
    new = (await alice.call("POST", "/room_keys/version", body))[1]["version"]

    status, answer = await alice.call("PUT", f"/room_keys/keys/{ROOM}/s2", key(), version=old)
    assert (status, answer) == (
        403,
        {
            "errcode": "M_WRONG_ROOM_KEYS_VERSION",
            "error": "Wrong backup version.",
            "current_version": new,
        },
    )
    status, answer = await alice.call("PUT", f"/room_keys/keys/{ROOM}/s2", key(), version="12345")
    assert (status, answer["errcode"]) == (404, "M_NOT_FOUND")
    # Keys of the old version stay readable until it is deleted; then they are gone.
    assert (await alice.call("GET", f"/room_keys/keys/{ROOM}/s1", version=old))[0] == 200
    assert (await alice.call("GET", "/room_keys/keys", version=new)) == (200, {"rooms": {}})
    await alice.call("DELETE", f"/room_keys/version/{old}")
    assert (await alice.call("GET", f"/room_keys/keys/{ROOM}/s1", version=old))[0] == 404
    status, answer = await alice.call("PUT", "/room_keys/keys", {"rooms": []}, version=new)
    assert (status, answer["errcode"]) == (400, "M_BAD_JSON")
