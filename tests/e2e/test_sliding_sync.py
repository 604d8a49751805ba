"""Simplified sliding sync (MSC4186) end to end, over real HTTP against a real server."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from tests.e2e.helpers import api, call, raw_user
from tests.e2e.test_e2ee import device_keys, otks
from tests.servers import OutlastProcess

SLIDING = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
_txn = itertools.count()


async def slide(
    server: OutlastProcess,
    who: dict[str, str],
    body: dict[str, Any],
    pos: str | None = None,
    timeout_ms: int | None = None,
) -> tuple[int, Any]:
    params = {}
    if pos is not None:
        params["pos"] = pos
    if timeout_ms is not None:
        params["timeout"] = str(timeout_ms)
    return await api("POST", server.url + SLIDING, body, token=who["token"], params=params)


async def ok_slide(
    server: OutlastProcess,
    who: dict[str, str],
    body: dict[str, Any],
    pos: str | None = None,
    timeout_ms: int | None = None,
) -> dict[str, Any]:
    status, resp = await slide(server, who, body, pos, timeout_ms)
    assert status == 200, resp
    assert isinstance(resp, dict)
    return resp


async def create_room(server: OutlastProcess, who: dict[str, str], **body: Any) -> str:
    status, resp = await call(server, "POST", "/createRoom", who, body)
    assert status == 200, resp
    return str(resp["room_id"])


async def send(server: OutlastProcess, who: dict[str, str], room: str, text: str) -> str:
    path = f"/rooms/{room}/send/m.room.message/t{next(_txn)}"
    status, resp = await call(server, "PUT", path, who, {"msgtype": "m.text", "body": text})
    assert status == 200, resp
    return str(resp["event_id"])


def list_body(limit: int = 1, end: int = 9, **extra: Any) -> dict[str, Any]:
    return {
        "lists": {
            "all": {
                "ranges": [[0, end]],
                "timeline_limit": limit,
                "required_state": [["m.room.name", ""], ["m.room.member", "$LAZY"]],
                **extra,
            }
        }
    }


def bodies(room: dict[str, Any]) -> list[str]:
    return [e["content"]["body"] for e in room.get("timeline", []) if e["type"] == "m.room.message"]


async def test_room_list_is_sorted_by_activity_and_windowed(server: OutlastProcess) -> None:
    alice = await raw_user(server, "alice")
    rooms = [await create_room(server, alice, name=f"room {i}") for i in range(3)]
    for room in (rooms[1], rooms[0], rooms[2]):  # rooms[2] ends up most recent
        await send(server, alice, room, f"hello {room}")
        await asyncio.sleep(0.01)  # distinct origin_server_ts
    resp = await ok_slide(server, alice, list_body(end=1))
    window = resp["lists"]["all"]
    assert window["count"] == 3
    assert window["ops"][0]["room_ids"] == [rooms[2], rooms[0]]
    assert set(resp["rooms"]) == {rooms[2], rooms[0]}
    entry = resp["rooms"][rooms[2]]
    assert entry["initial"] is True
    assert entry["name"] == "room 2"
    assert bodies(entry) == [f"hello {rooms[2]}"]
    assert entry["limited"] is True
    assert isinstance(entry["bump_stamp"], int)
    assert entry["joined_count"] == 1
    state_types = {(e["type"], e["state_key"]) for e in entry["required_state"]}
    # m.room.name, plus lazy members: only the timeline's sender.
    assert state_types == {("m.room.name", ""), ("m.room.member", alice["user_id"])}

    # The same connection widened to the whole list: only the new room comes, initial.
    again = await ok_slide(server, alice, list_body(end=9), pos=resp["pos"])
    assert again["lists"]["all"]["ops"][0]["room_ids"] == [rooms[2], rooms[0], rooms[1]]
    assert set(again["rooms"]) == {rooms[1]}
    assert again["rooms"][rooms[1]]["initial"] is True


async def test_subscription_widens_the_timeline(server: OutlastProcess) -> None:
    alice = await raw_user(server, "alice")
    room = await create_room(server, alice, name="chat")
    sent = [await send(server, alice, room, f"m{i}") for i in range(5)]
    first = await ok_slide(server, alice, list_body(limit=1))
    assert [e["event_id"] for e in first["rooms"][room]["timeline"]] == sent[-1:]
    body = list_body(limit=1)
    body["room_subscriptions"] = {room: {"timeline_limit": 4, "required_state": [["*", "*"]]}}
    opened = await ok_slide(server, alice, body, pos=first["pos"])
    entry = opened["rooms"][room]
    assert "initial" not in entry
    assert entry["expanded_timeline"] is True
    assert [e["event_id"] for e in entry["timeline"]] == sent[-4:]
    assert entry["prev_batch"]
    # Everything wanted now that was not before: the whole state, create event included.
    assert ("m.room.create", "") in {(e["type"], e["state_key"]) for e in entry["required_state"]}
    # prev_batch pages back with /messages from where the timeline starts.
    status, page = await call(
        server,
        "GET",
        f"/rooms/{room}/messages",
        alice,
        params={"dir": "b", "from": entry["prev_batch"], "limit": "1"},
    )
    assert status == 200, page
    assert [e["event_id"] for e in page["chunk"]] == [sent[0]]
    # So does the pos itself, from the latest event back (the MSC lets /messages take it).
    status, page = await call(
        server,
        "GET",
        f"/rooms/{room}/messages",
        alice,
        params={"dir": "b", "from": opened["pos"], "limit": "2"},
    )
    assert status == 200, page
    assert [e["event_id"] for e in page["chunk"]] == [sent[4], sent[3]]
    # And /relations, paging back from the pos, finds the reaction sent before it.
    path = f"/rooms/{room}/send/m.reaction/t{next(_txn)}"
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": sent[0], "key": "x"}}
    status, sent_reaction = await call(server, "PUT", path, alice, reaction)
    assert status == 200, sent_reaction
    later = await ok_slide(server, alice, body, pos=opened["pos"])
    status, related = await api(
        "GET",
        f"{server.url}/_matrix/client/v1/rooms/{room}/relations/{sent[0]}",
        token=alice["token"],
        params={"from": later["pos"]},
    )
    assert status == 200, related
    assert [e["event_id"] for e in related["chunk"]] == [sent_reaction["event_id"]]


async def test_long_poll_wakes_on_a_message_and_carries_only_the_news(
    server: OutlastProcess,
) -> None:
    alice, bob = await raw_user(server, "alice"), await raw_user(server, "bob")
    room = await create_room(server, alice, preset="public_chat", name="news")
    status, _ = await call(server, "POST", f"/join/{room}", bob)
    assert status == 200
    first = await ok_slide(server, alice, list_body())
    # Nothing new: the poll waits its (short) timeout and hands back a usable pos.
    started = time.monotonic()
    idle = await ok_slide(server, alice, list_body(), pos=first["pos"], timeout_ms=300)
    assert time.monotonic() - started >= 0.25
    assert idle["rooms"] == {}
    assert idle["lists"]["all"]["count"] == 1
    poll = asyncio.create_task(
        ok_slide(server, alice, list_body(), pos=idle["pos"], timeout_ms=20_000)
    )
    await asyncio.sleep(0.3)
    assert not poll.done()
    event_id = await send(server, bob, room, "wake up")
    resp = await asyncio.wait_for(poll, 15)
    entry = resp["rooms"][room]
    assert "initial" not in entry
    assert [e["event_id"] for e in entry["timeline"]] == [event_id]
    assert entry["num_live"] == 1
    assert entry["notification_count"] == 1
    # Bob's member event comes along lazily (alice's connection had not seen it as a sender).
    senders = {e["state_key"] for e in entry.get("required_state", [])}
    assert bob["user_id"] in senders
    # A retry with the same pos answers the same rooms: the pos names stored state.
    retry = await ok_slide(server, alice, list_body(), pos=idle["pos"])
    assert [e["event_id"] for e in retry["rooms"][room]["timeline"]] == [event_id]


async def test_invites_come_with_stripped_state_and_filter_by_is_invite(
    server: OutlastProcess,
) -> None:
    alice, bob = await raw_user(server, "alice"), await raw_user(server, "bob")
    joined = await create_room(server, bob, name="bob's own")
    invited = await create_room(server, alice, name="come in", invite=[bob["user_id"]])
    body: dict[str, Any] = {
        "lists": {
            "invites": {"ranges": [[0, 9]], "timeline_limit": 1, "filters": {"is_invite": True}},
            "rooms": {"ranges": [[0, 9]], "timeline_limit": 1, "filters": {"is_invite": False}},
        }
    }
    space = await create_room(
        server, alice, creation_content={"type": "m.space"}, invite=[bob["user_id"]]
    )
    body["lists"]["invites"]["filters"]["not_room_types"] = ["m.space"]
    resp = await ok_slide(server, bob, body)
    # The invite to a space is left out by the invite's own stripped create event.
    assert resp["lists"]["invites"]["ops"][0]["room_ids"] == [invited]
    assert space not in resp["rooms"]
    assert resp["lists"]["rooms"]["ops"][0]["room_ids"] == [joined]
    entry = resp["rooms"][invited]
    assert entry["membership"] == "invite"
    assert "timeline" not in entry
    stripped = {(e["type"], e["state_key"]) for e in entry["invite_state"]}
    assert ("m.room.name", "") in stripped
    assert ("m.room.member", bob["user_id"]) in stripped


async def test_no_subscription_to_a_room_the_user_is_not_in(server: OutlastProcess) -> None:
    alice, eve = await raw_user(server, "alice"), await raw_user(server, "eve")
    secret = await create_room(server, alice, name="secret")
    await send(server, alice, secret, "private")
    resp = await ok_slide(server, eve, {"room_subscriptions": {secret: {"timeline_limit": 10}}})
    assert resp["rooms"] == {}


async def test_bad_requests_are_matrix_errors(server: OutlastProcess) -> None:
    alice = await raw_user(server, "alice")
    status, resp = await slide(server, alice, list_body(), pos="nonsense")
    assert (status, resp["errcode"]) == (400, "M_UNKNOWN_POS")
    status, resp = await slide(server, alice, list_body(), pos="c12345-s1_1_1.0")
    assert (status, resp["errcode"]) == (400, "M_UNKNOWN_POS")
    status, resp = await slide(server, alice, {"lists": {"x": {"ranges": [[5, 1]]}}})
    assert (status, resp["errcode"]) == (400, "M_BAD_JSON")
    status, resp = await slide(server, alice, {"lists": []})
    assert (status, resp["errcode"]) == (400, "M_BAD_JSON")
    status, resp = await api("POST", server.url + SLIDING, {})
    assert (status, resp["errcode"]) == (401, "M_MISSING_TOKEN")
    # Someone else's pos names state this user never had.
    bob = await raw_user(server, "bob")
    await create_room(server, bob, name="b")
    bobs = await ok_slide(server, bob, list_body())
    status, resp = await slide(server, alice, list_body(), pos=bobs["pos"])
    assert (status, resp["errcode"]) == (400, "M_UNKNOWN_POS")


async def test_extensions_to_device_e2ee_account_data_receipts_typing(
    server: OutlastProcess,
) -> None:
    alice, bob = await raw_user(server, "alice"), await raw_user(server, "bob")
    room = await create_room(server, alice, preset="public_chat", name="ext")
    assert (await call(server, "POST", f"/join/{room}", bob))[0] == 200
    extensions = {
        name: {"enabled": True}
        for name in ("to_device", "e2ee", "account_data", "receipts", "typing")
    }
    body = {**list_body(), "extensions": extensions}
    first = await ok_slide(server, bob, body)
    ext = first["extensions"]
    assert ext["to_device"]["events"] == []
    assert "signed_curve25519" in ext["e2ee"]["device_one_time_keys_count"]
    since = ext["to_device"]["next_batch"]

    message = {"messages": {bob["user_id"]: {bob["device_id"]: {"secret": "s1"}}}}
    path = f"/sendToDevice/m.test/t{next(_txn)}"
    assert (await call(server, "PUT", path, alice, message))[0] == 200
    path = f"/user/{bob['user_id']}/account_data/m.test.global"
    assert (await call(server, "PUT", path, bob, {"x": 1}))[0] == 200
    event_id = await send(server, alice, room, "read me")
    path = f"/rooms/{room}/receipt/m.read/{event_id}"
    assert (await call(server, "POST", path, alice, {}))[0] == 200
    path = f"/rooms/{room}/typing/{alice['user_id']}"
    assert (await call(server, "PUT", path, alice, {"typing": True, "timeout": 20000}))[0] == 200

    body["extensions"]["to_device"]["since"] = since
    seen: dict[str, Any] = {}
    pos = first["pos"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(seen) < 5:
        resp = await ok_slide(server, bob, body, pos=pos, timeout_ms=2000)
        pos = resp["pos"]
        ext = resp["extensions"]
        if ext["to_device"]["events"]:
            seen["to_device"] = ext["to_device"]["events"]
        body["extensions"]["to_device"]["since"] = ext["to_device"]["next_batch"]
        if ext["account_data"]["global"]:
            seen["account_data"] = ext["account_data"]["global"]
        if ext["receipts"]["rooms"]:
            seen["receipts"] = ext["receipts"]["rooms"]
        if ext["typing"]["rooms"]:
            seen["typing"] = ext["typing"]["rooms"]
        if room in resp["rooms"]:
            seen["timeline"] = bodies(resp["rooms"][room])
    assert seen["to_device"][0]["content"] == {"secret": "s1"}
    assert seen["to_device"][0]["sender"] == alice["user_id"]
    assert any(e["type"] == "m.test.global" for e in seen["account_data"])
    receipt = seen["receipts"][room]
    assert receipt["type"] == "m.receipt"
    assert alice["user_id"] in receipt["content"][event_id]["m.read"]
    assert seen["typing"][room]["content"]["user_ids"] == [alice["user_id"]]
    assert seen["timeline"] == ["read me"]
    # The acknowledged to-device message is not delivered again.
    resp = await ok_slide(server, bob, body, pos=pos)
    assert resp["extensions"]["to_device"]["events"] == []


async def test_filters_on_tags_dms_encryption_and_name(server: OutlastProcess) -> None:
    alice, bob = await raw_user(server, "alice"), await raw_user(server, "bob")
    favourite = await create_room(server, alice, name="the favourite")
    dm = await create_room(server, alice, is_direct=True, invite=[bob["user_id"]])
    secret = await create_room(
        server,
        alice,
        name="secret plans",
        initial_state=[
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "x"}}
        ],
    )
    space = await create_room(server, alice, name="a space", creation_content={"type": "m.space"})
    child = {"via": ["localhost"]}
    path = f"/rooms/{space}/state/m.space.child/{favourite}"
    assert (await call(server, "PUT", path, alice, child))[0] == 200
    path = f"/rooms/{space}/state/m.space.child/{secret}"
    assert (await call(server, "PUT", path, alice, {}))[0] == 200  # no via: not a child
    path = f"/user/{alice['user_id']}/rooms/{favourite}/tags/m.favourite"
    assert (await call(server, "PUT", path, alice, {"order": 0.5}))[0] == 200
    path = f"/user/{alice['user_id']}/account_data/m.direct"
    assert (await call(server, "PUT", path, alice, {bob["user_id"]: [dm]}))[0] == 200

    def listed(filters: dict[str, Any]) -> dict[str, Any]:
        return {"ranges": [[0, 9]], "timeline_limit": 0, "filters": filters}

    body = {
        "lists": {
            "favourites": listed({"tags": ["m.favourite"]}),
            "dms": listed({"is_dm": True}),
            "others": listed({"is_dm": False, "not_tags": ["m.favourite"]}),
            "encrypted": listed({"is_encrypted": True}),
            "named": listed({"room_name_like": "PLANS"}),
            "spaces": listed({"room_types": ["m.space"]}),
            "not_spaces": listed({"not_room_types": ["m.space"], "is_dm": False}),
            "in_space": listed({"spaces": [space]}),
            "in_unknown_space": listed({"spaces": ["!nowhere:localhost"]}),
        }
    }
    resp = await ok_slide(server, alice, body)
    found = {key: value["ops"][0]["room_ids"] for key, value in resp["lists"].items()}
    assert found == {
        "favourites": [favourite],
        "dms": [dm],
        "others": [space, secret],
        "encrypted": [secret],
        "named": [secret],
        "spaces": [space],
        "not_spaces": [secret, favourite],
        "in_space": [favourite],
        "in_unknown_space": [],
    }
    assert resp["rooms"][dm]["is_dm"] is True


async def test_a_room_left_shows_the_leave_and_nothing_written_after_it(
    server: OutlastProcess,
) -> None:
    alice, bob = await raw_user(server, "alice"), await raw_user(server, "bob")
    room = await create_room(server, alice, preset="public_chat", name="leaving")
    assert (await call(server, "POST", f"/join/{room}", bob))[0] == 200
    before = await send(server, alice, room, "before")
    first = await ok_slide(server, bob, list_body(limit=5))
    assert before in [e["event_id"] for e in first["rooms"][room]["timeline"]]
    assert (await call(server, "POST", f"/rooms/{room}/leave", bob, {}))[0] == 200
    await send(server, alice, room, "after the leave")
    left = await ok_slide(server, bob, list_body(limit=5), pos=first["pos"], timeout_ms=5000)
    entry = left["rooms"][room]
    assert entry["membership"] == "leave"
    timeline = entry["timeline"]
    assert timeline[-1]["type"] == "m.room.member"
    assert timeline[-1]["content"]["membership"] == "leave"
    assert "after the leave" not in bodies(entry)
    # Later writes in the room never reach Bob, even when he asks for it by name.
    await send(server, alice, room, "still talking")
    body = list_body(limit=5)
    body["room_subscriptions"] = {room: {"timeline_limit": 10}}
    later = await ok_slide(server, bob, body, pos=left["pos"], timeout_ms=500)
    assert "still talking" not in bodies(later["rooms"].get(room, {}))
    fresh = await ok_slide(server, bob, body)  # a new connection: a left room is not listed
    assert room not in fresh["rooms"]
    assert fresh["lists"]["all"]["count"] == 0


async def test_a_named_connection_is_taken_as_complete(server: OutlastProcess) -> None:
    alice = await raw_user(server, "alice")
    room = await create_room(server, alice, name="complete")
    await send(server, alice, room, "one")
    full = {**list_body(limit=3), "conn_id": "room-list"}
    first = await ok_slide(server, alice, full)
    assert bodies(first["rooms"][room]) == ["one"]
    await send(server, alice, room, "two")
    # Ranges alone, as matrix-js-sdk sends after its first request: with a conn_id
    # nothing is remembered, so the list asks for no timeline and no state.
    bare = {"conn_id": "room-list", "lists": {"all": {"ranges": [[0, 9]]}}}
    resp = await ok_slide(server, alice, bare, pos=first["pos"], timeout_ms=5000)
    entry = resp["rooms"][room]
    assert "timeline" not in entry and "required_state" not in entry
    assert entry["limited"] is True  # news the list's timeline_limit of 0 does not show
    # Without a conn_id the same request keeps the first one's timeline_limit.
    first = await ok_slide(server, alice, list_body(limit=3))
    await send(server, alice, room, "three")
    del bare["conn_id"]
    resp = await ok_slide(server, alice, bare, pos=first["pos"], timeout_ms=5000)
    assert bodies(resp["rooms"][room]) == ["three"]


async def test_an_encryption_connection_wakes_on_device_list_changes(
    server: OutlastProcess,
) -> None:
    """Element X's second connection: no lists, only the e2ee and to_device extensions."""
    alice, bob = await raw_user(server, "alice"), await raw_user(server, "bob")
    room = await create_room(server, alice, preset="public_chat")
    assert (await call(server, "POST", f"/join/{room}", bob))[0] == 200
    body = {
        "conn_id": "encryption",
        "extensions": {"e2ee": {"enabled": True}, "to_device": {"enabled": True}},
    }
    first = await ok_slide(server, bob, body)
    assert first["lists"] == {} and first["rooms"] == {}
    upload = {"device_keys": device_keys(bob), "one_time_keys": otks(3)}
    assert (await call(server, "POST", "/keys/upload", bob, upload))[0] == 200
    counted = await ok_slide(server, bob, body, pos=first["pos"])
    assert counted["extensions"]["e2ee"]["device_one_time_keys_count"]["signed_curve25519"] == 3

    poll = asyncio.create_task(ok_slide(server, bob, body, pos=counted["pos"], timeout_ms=20_000))
    await asyncio.sleep(0.3)
    assert not poll.done()
    upload = {"device_keys": device_keys(alice)}
    assert (await call(server, "POST", "/keys/upload", alice, upload))[0] == 200
    woken = await asyncio.wait_for(poll, 15)
    assert alice["user_id"] in woken["extensions"]["e2ee"]["device_lists"]["changed"]


async def test_me_in_required_state_is_the_requesting_user(server: OutlastProcess) -> None:
    alice, bob = await raw_user(server, "alice"), await raw_user(server, "bob")
    room = await create_room(server, alice, preset="public_chat")
    assert (await call(server, "POST", f"/join/{room}", bob))[0] == 200
    body = {
        "lists": {
            "all": {
                "ranges": [[0, 0]],
                "timeline_limit": 0,
                "required_state": [["m.room.member", "$ME"]],
            }
        }
    }
    resp = await ok_slide(server, bob, body)
    members = [e["state_key"] for e in resp["rooms"][room]["required_state"]]
    assert members == [bob["user_id"]]


async def test_an_ignored_users_invite_and_messages_are_not_shown(server: OutlastProcess) -> None:
    alice, bob, eve = [await raw_user(server, n) for n in ("alice", "bob", "eve")]
    room = await create_room(server, alice, preset="public_chat", name="shared")
    for who in (bob, eve):
        assert (await call(server, "POST", f"/join/{room}", who))[0] == 200
    path = f"/user/{bob['user_id']}/account_data/m.ignored_user_list"
    assert (await call(server, "PUT", path, bob, {"ignored_users": {eve["user_id"]: {}}}))[0] == 200
    await create_room(server, eve, name="from eve", invite=[bob["user_id"]])
    await send(server, eve, room, "from the ignored")
    await send(server, alice, room, "from alice")
    resp = await ok_slide(server, bob, list_body(limit=10))
    assert list(resp["rooms"]) == [room]  # not eve's invite
    assert bodies(resp["rooms"][room]) == ["from alice"]
