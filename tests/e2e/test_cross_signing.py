"""Cross-signing end to end: device_signing/upload with its auth rules, signatures/upload,
/keys/query, and device-list changes. Raw HTTP: matrix-nio has no cross-signing API.

The keys and signatures are random strings of the right shape: the server checks
who may sign what, not the ed25519 arithmetic.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.helpers import api, call, raw_user, watch_device_lists
from tests.servers import OutlastProcess, start_outlast

V3 = "/_matrix/client/v3"
_names = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, view_backend: str) -> Iterator[OutlastProcess]:
    """One server for the module; every test registers its own users."""
    proc = start_outlast(tmp_path_factory.mktemp("xsign") / "site")
    try:
        yield proc
    finally:
        proc.stop()


async def user(server: OutlastProcess, name: str) -> dict[str, str]:
    """A new user, its name made unique: the tests share one server."""
    return await raw_user(server, f"{name}{next(_names)}")


def public_key() -> str:
    return base64.b64encode(os.urandom(32)).rstrip(b"=").decode()


def signature() -> str:
    return base64.b64encode(os.urandom(64)).rstrip(b"=").decode()


def cs_key(
    who: dict[str, str], usage: str, signed_by: str | None = None, pub: str | None = None
) -> dict[str, Any]:
    """A CrossSigningKey; ``signed_by`` is the master key id that signs it."""
    pub = pub or public_key()
    key: dict[str, Any] = {
        "user_id": who["user_id"],
        "usage": [usage],
        "keys": {f"ed25519:{pub}": pub},
    }
    if signed_by:
        key["signatures"] = {who["user_id"]: {signed_by: signature()}}
    return key


def key_id(key: dict[str, Any]) -> str:
    return str(next(iter(key["keys"])))


def full_set(who: dict[str, str]) -> dict[str, Any]:
    master = cs_key(who, "master")
    return {
        "master_key": master,
        "self_signing_key": cs_key(who, "self_signing", key_id(master)),
        "user_signing_key": cs_key(who, "user_signing", key_id(master)),
    }


def device_keys(who: dict[str, str]) -> dict[str, Any]:
    device = who["device_id"]
    return {
        "user_id": who["user_id"],
        "device_id": device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"curve25519:{device}": public_key(), f"ed25519:{device}": public_key()},
        "signatures": {who["user_id"]: {f"ed25519:{device}": signature()}},
    }


def password(who: dict[str, str], session: str, pw: str | None = None) -> dict[str, Any]:
    return {
        "type": "m.login.password",
        "session": session,
        "identifier": {"type": "m.id.user", "user": who["name"]},
        "password": pw or f"pw-{who['name']}",
    }


async def query(server: OutlastProcess, who: dict[str, str], *users: str) -> dict[str, Any]:
    status, body = await call(
        server, "POST", "/keys/query", who, {"device_keys": {u: [] for u in users}}
    )
    assert status == 200, body
    return dict(body)


async def test_first_upload_needs_no_auth_and_replacing_needs_a_password(
    server: OutlastProcess,
) -> None:
    alice = await user(server, "alice")
    keys = full_set(alice)
    status, body = await call(server, "POST", "/keys/device_signing/upload", alice, keys)
    assert (status, body) == (200, {})
    # A retry of the same upload (say its answer was lost) needs no auth either.
    status, body = await call(server, "POST", "/keys/device_signing/upload", alice, keys)
    assert (status, body) == (200, {})
    mine = await query(server, alice, alice["user_id"])
    assert mine["master_keys"][alice["user_id"]]["keys"] == keys["master_key"]["keys"]

    # A new master key: the UIA challenge, a wrong password, then the right one.
    replacement = full_set(alice)
    status, body = await call(server, "POST", "/keys/device_signing/upload", alice, replacement)
    assert status == 401, body
    assert body["flows"] == [{"stages": ["m.login.password"]}]
    session = body["session"]
    assert isinstance(session, str) and session
    wrong = {**replacement, "auth": password(alice, session, "not-the-password")}
    status, body = await call(server, "POST", "/keys/device_signing/upload", alice, wrong)
    assert (status, body["errcode"]) == (401, "M_FORBIDDEN")
    assert body["flows"] == [{"stages": ["m.login.password"]}]
    mine = await query(server, alice, alice["user_id"])
    assert mine["master_keys"][alice["user_id"]]["keys"] == keys["master_key"]["keys"]

    right = {**replacement, "auth": password(alice, session)}
    status, body = await call(server, "POST", "/keys/device_signing/upload", alice, right)
    assert (status, body) == (200, {})
    mine = await query(server, alice, alice["user_id"])
    assert mine["master_keys"][alice["user_id"]]["keys"] == replacement["master_key"]["keys"]
    assert mine["self_signing_keys"][alice["user_id"]] == replacement["self_signing_key"]
    assert mine["user_signing_keys"][alice["user_id"]] == replacement["user_signing_key"]

    # Replacing only the self-signing key also needs auth once a master key exists.
    ssk = cs_key(alice, "self_signing", key_id(replacement["master_key"]))
    status, body = await call(
        server, "POST", "/keys/device_signing/upload", alice, {"self_signing_key": ssk}
    )
    assert status == 401 and body["flows"] == [{"stages": ["m.login.password"]}]
    status, body = await call(
        server,
        "POST",
        "/keys/device_signing/upload",
        alice,
        {"self_signing_key": ssk, "auth": password(alice, body["session"])},
    )
    assert (status, body) == (200, {})
    mine = await query(server, alice, alice["user_id"])
    assert mine["self_signing_keys"][alice["user_id"]] == ssk


async def test_concurrent_first_uploads_cannot_both_skip_auth(server: OutlastProcess) -> None:
    """Both read "no master key yet"; the fence lets one commit, the other must authenticate."""
    alice = await user(server, "alice")
    sets = [full_set(alice) for _ in range(4)]
    answers = await asyncio.gather(
        *(call(server, "POST", "/keys/device_signing/upload", alice, keys) for keys in sets)
    )
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200, 401, 401, 401], answers
    winner = next(keys for keys, (status, _) in zip(sets, answers, strict=True) if status == 200)
    mine = await query(server, alice, alice["user_id"])
    assert mine["master_keys"][alice["user_id"]] == winner["master_key"]
    assert mine["self_signing_keys"][alice["user_id"]] == winner["self_signing_key"]


async def test_malformed_and_unsigned_keys_are_refused(server: OutlastProcess) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    master = cs_key(alice, "master")

    async def upload(body: dict[str, Any], who: dict[str, str] = alice) -> tuple[int, Any]:
        return await call(server, "POST", "/keys/device_signing/upload", who, body)

    # A self-signing key that the master key did not sign.
    unsigned = cs_key(alice, "self_signing")
    status, body = await upload({"master_key": master, "self_signing_key": unsigned})
    assert (status, body["errcode"]) == (400, "M_INVALID_SIGNATURE")
    signed_by_other = cs_key(alice, "self_signing", f"ed25519:{public_key()}")
    status, body = await upload({"master_key": master, "self_signing_key": signed_by_other})
    assert (status, body["errcode"]) == (400, "M_INVALID_SIGNATURE")
    # No master key anywhere to sign it.
    status, body = await upload({"self_signing_key": cs_key(alice, "self_signing", "ed25519:x")})
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    # Someone else's key.
    status, body = await upload({"master_key": master}, bob)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    # Wrong usage, no key, two keys, an id that is not ed25519:<public key>.
    pub = public_key()
    for bad in (
        {**master, "usage": ["self_signing"]},
        {**master, "keys": {}},
        {**master, "keys": {f"ed25519:{pub}": pub, "ed25519:other": "other"}},
        {**master, "keys": {f"curve25519:{pub}": pub}},
        {**master, "keys": {f"ed25519:{pub}": "something-else"}},
    ):
        status, body = await upload({"master_key": bad})
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), bad
    for bad_json in (
        {"master_key": "x"},
        {"master_key": {**master, "usage": "master"}},
        {"master_key": {**master, "user_id": 5}},
        {"master_key": {**master, "signatures": {alice["user_id"]: "x"}}},
    ):
        status, body = await upload(bad_json)
        assert (status, body["errcode"]) == (400, "M_BAD_JSON"), bad_json
    # A key whose public part is one of the user's device ids.
    status, body = await upload({"master_key": cs_key(alice, "master", pub=alice["device_id"])})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    # Nothing was stored by any of that.
    seen = await query(server, bob, alice["user_id"])
    assert seen["master_keys"] == {} and seen["self_signing_keys"] == {}


async def test_query_shows_user_signing_keys_only_to_their_owner(server: OutlastProcess) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    keys = full_set(alice)
    status, _ = await call(server, "POST", "/keys/device_signing/upload", alice, keys)
    assert status == 200

    seen = await query(server, bob, alice["user_id"], bob["user_id"])
    assert seen["master_keys"] == {alice["user_id"]: keys["master_key"]}
    assert seen["self_signing_keys"] == {alice["user_id"]: keys["self_signing_key"]}
    assert seen["user_signing_keys"] == {}
    own = await query(server, alice, alice["user_id"])
    assert own["master_keys"] == {alice["user_id"]: keys["master_key"]}
    assert own["self_signing_keys"] == {alice["user_id"]: keys["self_signing_key"]}
    assert own["user_signing_keys"] == {alice["user_id"]: keys["user_signing_key"]}
    # Asking only about others never shows anybody's user-signing key.
    assert (await query(server, alice, bob["user_id"]))["user_signing_keys"] == {}


async def test_signatures_upload_reaches_the_query(server: OutlastProcess) -> None:
    alice, bob, carol = [await user(server, n) for n in ("alice", "bob", "carol")]
    for who in (alice, bob):
        status, _ = await call(
            server, "POST", "/keys/upload", who, {"device_keys": device_keys(who)}
        )
        assert status == 200
    alice_keys, bob_keys = full_set(alice), full_set(bob)
    for who, keys in ((alice, alice_keys), (bob, bob_keys)):
        status, _ = await call(server, "POST", "/keys/device_signing/upload", who, keys)
        assert status == 200

    # Alice signs her device with her self-signing key and her master key with her device,
    # as a client does after setting cross-signing up; the object comes back from a query.
    own = await query(server, alice, alice["user_id"])
    device = own["device_keys"][alice["user_id"]][alice["device_id"]]
    ssk_id = key_id(alice_keys["self_signing_key"])
    device_sig, master_sig = signature(), signature()
    signed_device = {
        **device,
        "signatures": {alice["user_id"]: {ssk_id: device_sig}},
    }
    master = alice_keys["master_key"]
    master_pub = key_id(master).partition(":")[2]
    signed_master = {
        **master,
        "signatures": {alice["user_id"]: {f"ed25519:{alice['device_id']}": master_sig}},
    }
    status, body = await call(
        server,
        "POST",
        "/keys/signatures/upload",
        alice,
        {alice["user_id"]: {alice["device_id"]: signed_device, master_pub: signed_master}},
    )
    assert (status, body) == (200, {"failures": {}})

    # Bob signs Alice's master key with his user-signing key.
    bob_sig = signature()
    bob_usk_id = key_id(bob_keys["user_signing_key"])
    status, body = await call(
        server,
        "POST",
        "/keys/signatures/upload",
        bob,
        {
            alice["user_id"]: {
                master_pub: {**master, "signatures": {bob["user_id"]: {bob_usk_id: bob_sig}}}
            }
        },
    )
    assert (status, body) == (200, {"failures": {}})

    for viewer in (carol, bob, alice):
        seen = await query(server, viewer, alice["user_id"])
        got = seen["device_keys"][alice["user_id"]][alice["device_id"]]["signatures"]
        # The device's own signature is kept; the self-signing key's is added.
        assert got[alice["user_id"]][ssk_id] == device_sig
        assert got[alice["user_id"]][f"ed25519:{alice['device_id']}"] == (
            device_keys_sig(device, alice)
        )
        master_sigs = seen["master_keys"][alice["user_id"]]["signatures"]
        assert master_sigs[alice["user_id"]][f"ed25519:{alice['device_id']}"] == master_sig
        # Bob's user-signing signature is for Bob's eyes only.
        assert (bob["user_id"] in master_sigs) == (viewer is bob), viewer
        if viewer is bob:
            assert master_sigs[bob["user_id"]] == {bob_usk_id: bob_sig}

    # What cannot be signed is reported per object; what can still goes through.
    status, body = await call(
        server,
        "POST",
        "/keys/signatures/upload",
        alice,
        {
            alice["user_id"]: {
                "NOSUCHDEVICE": {"signatures": {}},
                # Signed by a key that is not her self-signing key.
                alice["device_id"]: {
                    **device,
                    "signatures": {alice["user_id"]: {f"ed25519:{public_key()}": signature()}},
                },
            },
            bob["user_id"]: {
                # Bob's device: not Alice's to sign.
                bob["device_id"]: {"signatures": {alice["user_id"]: {ssk_id: signature()}}},
                # Bob's master key, changed from what Bob published.
                key_id(bob_keys["master_key"]).partition(":")[2]: {
                    **bob_keys["master_key"],
                    "usage": ["master", "other"],
                    "signatures": {
                        alice["user_id"]: {key_id(alice_keys["user_signing_key"]): signature()}
                    },
                },
            },
            carol["user_id"]: {"anything": "not an object"},
            "not-a-user": {"x": {}},
            "@remote:elsewhere.example": {"x": {}},
        },
    )
    assert status == 200, body
    failures = body["failures"]
    assert set(failures[alice["user_id"]]) == {"NOSUCHDEVICE", alice["device_id"]}
    assert failures[alice["user_id"]]["NOSUCHDEVICE"]["errcode"] == "M_NOT_FOUND"
    assert failures[alice["user_id"]][alice["device_id"]]["errcode"] == "M_INVALID_SIGNATURE"
    assert set(failures[bob["user_id"]]) == {
        bob["device_id"],
        key_id(bob_keys["master_key"]).partition(":")[2],
    }
    assert failures[carol["user_id"]]["anything"]["errcode"] == "M_BAD_JSON"
    assert set(failures) == {
        alice["user_id"],
        bob["user_id"],
        carol["user_id"],
        "not-a-user",
        "@remote:elsewhere.example",
    }
    for by_key in failures.values():
        for error in by_key.values():
            assert set(error) == {"errcode", "error"}

    # Replacing the self-signing key drops what the old one signed.
    new_ssk = cs_key(alice, "self_signing", key_id(master))
    status, body = await call(
        server, "POST", "/keys/device_signing/upload", alice, {"self_signing_key": new_ssk}
    )
    assert status == 401
    status, _ = await call(
        server,
        "POST",
        "/keys/device_signing/upload",
        alice,
        {"self_signing_key": new_ssk, "auth": password(alice, body["session"])},
    )
    assert status == 200
    seen = await query(server, bob, alice["user_id"])
    got = seen["device_keys"][alice["user_id"]][alice["device_id"]]["signatures"]
    assert ssk_id not in got[alice["user_id"]]


def device_keys_sig(device: dict[str, Any], who: dict[str, str]) -> str:
    return str(device["signatures"][who["user_id"]][f"ed25519:{who['device_id']}"])


async def test_cross_signing_changes_reach_device_lists(server: OutlastProcess) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    stranger = await user(server, "stranger")
    _, since, poll = await watch_device_lists(server, alice, bob)
    for who in (bob, stranger):
        status, _ = await call(server, "POST", "/keys/device_signing/upload", who, full_set(who))
        assert status == 200
    status, body = await asyncio.wait_for(poll, 15)
    assert status == 200
    changed = body["device_lists"]["changed"]
    if changed == []:  # woken early by something else: ask again from there
        _, body = await call(
            server, "GET", "/sync", alice, params={"since": since, "timeout": "5000"}
        )
        changed = body["device_lists"]["changed"]
    assert changed == [bob["user_id"]]
    status, changes = await call(
        server, "GET", "/keys/changes", alice, params={"from": since, "to": body["next_batch"]}
    )
    assert (status, changes) == (200, {"changed": [bob["user_id"]], "left": []})

    # A signature on Bob's device by his self-signing key is a change too.
    since = body["next_batch"]
    status, _ = await call(server, "POST", "/keys/upload", bob, {"device_keys": device_keys(bob)})
    assert status == 200
    _, body = await call(server, "GET", "/sync", alice, params={"since": since})
    since = body["next_batch"]
    own = await query(server, bob, bob["user_id"])
    device = own["device_keys"][bob["user_id"]][bob["device_id"]]
    ssk_id = key_id(own["self_signing_keys"][bob["user_id"]])
    status, result = await call(
        server,
        "POST",
        "/keys/signatures/upload",
        bob,
        {
            bob["user_id"]: {
                bob["device_id"]: {**device, "signatures": {bob["user_id"]: {ssk_id: signature()}}}
            }
        },
    )
    assert (status, result) == (200, {"failures": {}})
    _, body = await call(server, "GET", "/sync", alice, params={"since": since, "timeout": "5000"})
    assert body["device_lists"]["changed"] == [bob["user_id"]]


JUNK: list[Any] = [
    b"not json",
    b"[1, 2]",
    b'"a string"',
    b"\xff\xfe",
    {"master_key": None},
    {"master_key": []},
    {"master_key": {"keys": None}},
    {"master_key": {"user_id": None, "usage": None, "keys": None}},
    {"master_key": {"user_id": "@x:localhost", "usage": [1], "keys": {"a": 1}}},
    {"self_signing_key": {"signatures": []}},
    {"user_signing_key": 1.5},
    {"auth": "x"},
    {"auth": {"type": "m.login.password", "identifier": "x", "password": 5}},
    {"auth": {"type": "m.login.password", "identifier": {"type": 5}, "session": []}},
]

JUNK_SIGNATURES: list[Any] = [
    b"not json",
    b"[]",
    {"@a:localhost": []},
    {"@a:localhost": None},
    {"@a:localhost": {"x": None}},
    {"@a:localhost": {"x": {"signatures": []}}},
    {"@a:localhost": {"x": {"signatures": {"@a:localhost": []}}}},
    {"": {"": {}}},
    {"x" * 5000: {"y" * 5000: {"signatures": {"z": {"w": 1}}}}},
]


async def test_junk_bodies_never_cause_a_server_error(server: OutlastProcess) -> None:
    alice = await user(server, "alice")
    # With keys in place, the junk also meets the "replace" paths.
    keys = full_set(alice)
    status, _ = await call(server, "POST", "/keys/device_signing/upload", alice, keys)
    assert status == 200
    mangled = [
        {**keys, "master_key": {**keys["master_key"], "usage": ["master"], "keys": {"x": "y"}}},
        {"self_signing_key": {**keys["self_signing_key"], "signatures": {alice["user_id"]: 1}}},
        {"self_signing_key": {**keys["self_signing_key"], "signatures": None}},
        {"user_signing_key": {**keys["user_signing_key"], "signatures": {}}, "auth": {}},
    ]
    # A new master key needs auth: junk in "auth" meets the password check.
    new_master = {"master_key": cs_key(alice, "master")}
    auth: object
    for auth in (
        "x",
        [],
        {},
        {"type": 5},
        {"type": "m.login.password", "identifier": "x", "password": 5},
        {"type": "m.login.password", "identifier": {"type": 5}, "session": []},
        {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": 7}},
        {"type": "m.login.password", "user": "@nobody:elsewhere", "password": "x"},
        {"type": "m.login.password", "user": alice["name"], "password": None},
    ):
        mangled.append({**new_master, "auth": auth})
    for body in [*JUNK, *mangled]:
        status, answer = await call(server, "POST", "/keys/device_signing/upload", alice, body)
        assert status in (200, 400, 401, 403), (body, status, answer)
        assert isinstance(answer, dict), answer
        assert status == 200 or isinstance(answer.get("errcode"), str), answer
    for body in JUNK_SIGNATURES:
        status, answer = await call(server, "POST", "/keys/signatures/upload", alice, body)
        assert status in (200, 400), (body, status, answer)
        assert isinstance(answer, dict), answer
        if status == 400:
            assert isinstance(answer.get("errcode"), str), answer
        else:
            assert answer["failures"], (body, answer)
    # Without an access token: 401 M_MISSING_TOKEN, not a crash.
    for path in ("/keys/device_signing/upload", "/keys/signatures/upload"):
        status, answer = await api("POST", server.url + V3 + path, {})
        assert (status, answer["errcode"]) == (401, "M_MISSING_TOKEN")
    # The keys are still the ones uploaded first.
    own = await query(server, alice, alice["user_id"])
    assert own["master_keys"][alice["user_id"]] == keys["master_key"]
