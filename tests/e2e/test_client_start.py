"""What Element, nio and js-sdk call at start answers correctly: push rules, pushers,
TURN, third-party protocols, notifications, event context, and M_UNRECOGNIZED otherwise."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nio import (
    DeletePushRuleResponse,
    EnablePushRuleResponse,
    PushEventMatch,
    PushNotify,
    PushRuleKind,
    PushRulesEvent,
    PushSetTweak,
    RoomContextResponse,
    RoomCreateResponse,
    RoomSendResponse,
    SetPushRuleActionsResponse,
    SetPushRuleResponse,
)

from tests.e2e.helpers import api, close_all, eventually, expect, register, sync, text
from tests.servers import TEST_CONFIG, OutlastProcess, free_port, launch

V3 = "/_matrix/client/v3"


async def test_start_up_calls_answer(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice")
    token = alice.access_token
    try:
        for path in ("/_matrix/client/versions", f"{V3}/login", "/_matrix/client/r0/login"):
            status, _ = await api("GET", server.url + path)
            assert status == 200, path
        answers: dict[str, object] = {
            f"{V3}/pushrules/": None,
            "/_matrix/client/r0/pushrules/": None,
            f"{V3}/pushrules/global/": None,
            f"{V3}/pushers": {"pushers": []},
            f"{V3}/voip/turnServer": {},
            f"{V3}/thirdparty/protocols": {},
            f"{V3}/notifications": {"notifications": []},
            f"{V3}/account/3pid": {"threepids": []},
            f"{V3}/capabilities": None,
            f"{V3}/account/whoami": None,
            "/_matrix/client/v1/media/config": {"m.upload.size": 50 * 1024 * 1024},
            "/_matrix/media/v3/config": {"m.upload.size": 50 * 1024 * 1024},
        }
        for path, expected in answers.items():
            status, body = await api("GET", server.url + path, token=token)
            assert status == 200, (path, body)
            if expected is not None:
                assert body == expected, path
        status, body = await api("GET", f"{server.url}{V3}/room_keys/version", token=token)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")  # no backup: what clients expect
        for path in (
            "/_matrix/client/v1/auth_metadata",
            "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
            f"{V3}/no/such/endpoint",
        ):
            status, body = await api("GET", server.url + path, token=token)
            assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED"), path
        for path in (f"{V3}/pushrules/", f"{V3}/pushers", f"{V3}/voip/turnServer"):
            status, body = await api("GET", server.url + path)
            assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN"), path
    finally:
        await close_all(alice)


async def test_push_rules_default_shape_and_edits(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice")
    base = f"{server.url}{V3}/pushrules"
    token = alice.access_token
    try:
        status, body = await api("GET", f"{base}/", token=token)
        rules = body["global"]
        assert [r["rule_id"] for r in rules["override"]][:2] == [
            ".m.rule.master",
            ".m.rule.suppress_notices",
        ]
        assert rules["content"][0]["pattern"] == "alice"
        invite = next(r for r in rules["override"] if r["rule_id"] == ".m.rule.invite_for_me")
        assert invite["conditions"][2]["pattern"] == "@alice:localhost"
        first = await sync(alice)
        pushed = [e for e in first.account_data_events if isinstance(e, PushRulesEvent)]
        assert pushed, "initial sync carries m.push_rules"

        # nio's own calls: add, disable, change actions, delete.
        expect(
            await alice.set_pushrule(
                "global",
                PushRuleKind.override,
                "cake",
                conditions=[PushEventMatch("content.body", "cake")],
                actions=[PushNotify(), PushSetTweak("sound", "bell")],
            ),
            SetPushRuleResponse,
        )
        status, rule = await api("GET", f"{base}/global/override/cake", token=token)
        assert status == 200
        assert rule == {
            "rule_id": "cake",
            "default": False,
            "enabled": True,
            "conditions": [{"kind": "event_match", "key": "content.body", "pattern": "cake"}],
            "actions": ["notify", {"set_tweak": "sound", "value": "bell"}],
        }
        status, body = await api("GET", f"{base}/", token=token)
        assert [r["rule_id"] for r in body["global"]["override"]][:2] == [".m.rule.master", "cake"]
        # The change reaches the next /sync as m.push_rules.
        changed = await sync(alice, since=first.next_batch, timeout=5000)
        events = [e for e in changed.account_data_events if isinstance(e, PushRulesEvent)]
        assert events and any(r.id == "cake" for r in events[0].global_rules.override)

        expect(
            await alice.enable_pushrule("global", PushRuleKind.override, "cake", False),
            EnablePushRuleResponse,
        )
        status, body = await api("GET", f"{base}/global/override/cake/enabled", token=token)
        assert (status, body) == (200, {"enabled": False})
        expect(
            await alice.set_pushrule_actions(
                "global", PushRuleKind.underride, ".m.rule.message", []
            ),
            SetPushRuleActionsResponse,
        )
        status, body = await api(
            "GET", f"{base}/global/underride/.m.rule.message/actions", token=token
        )
        assert (status, body) == (200, {"actions": []})
        status, _ = await api(
            "PUT", f"{base}/global/override/.m.rule.master/enabled", {"enabled": True}, token=token
        )
        assert status == 200
        status, body = await api("GET", f"{base}/global/override/.m.rule.master", token=token)
        assert body["enabled"] is True and body["default"] is True
        expect(
            await alice.delete_pushrule("global", PushRuleKind.override, "cake"),
            DeletePushRuleResponse,
        )

        errors: list[tuple[str, str, object, int, str]] = [
            ("GET", f"{base}/global/override/cake", None, 404, "M_NOT_FOUND"),
            ("DELETE", f"{base}/global/override/cake", None, 404, "M_NOT_FOUND"),
            ("PUT", f"{base}/global/override/.mine", {"actions": []}, 400, "M_INVALID_PARAM"),
            ("PUT", f"{base}/global/bogus/x", {"actions": []}, 400, "M_INVALID_PARAM"),
            ("PUT", f"{base}/device/override/x", {"actions": []}, 400, "M_INVALID_PARAM"),
            ("PUT", f"{base}/global/content/x", {"actions": []}, 400, "M_MISSING_PARAM"),
            ("PUT", f"{base}/global/room/x", {"actions": "loud"}, 400, "M_BAD_JSON"),
            ("PUT", f"{base}/global/room/x", b"{", 400, "M_NOT_JSON"),
            ("PUT", f"{base}/global/override/.m.rule.master/enabled", {}, 400, "M_MISSING_PARAM"),
            ("GET", f"{base}/global/override/nope/enabled", None, 404, "M_NOT_FOUND"),
        ]
        for method, url, body, status_code, errcode in errors:
            status, answer = await api(method, url, body, token=token)
            assert (status, answer["errcode"]) == (status_code, errcode), (method, url)
        # Edits are durable: a restart rebuilds them from the log.
        server.restart()
        status, body = await api("GET", f"{base}/global/override/.m.rule.master", token=token)
        assert body["enabled"] is True
        status, body = await api(
            "GET", f"{base}/global/underride/.m.rule.message/actions", token=token
        )
        assert body == {"actions": []}
    finally:
        await close_all(alice)


def pusher(pushkey: str, **extra: object) -> dict[str, object]:
    return {
        "kind": "http",
        "app_id": "org.example.app",
        "pushkey": pushkey,
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "lang": "en",
        "data": {"url": "https://push.example.org/_matrix/push/v1/notify"},
        **extra,
    }


async def test_pushers_set_get_delete(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    url = f"{server.url}{V3}/pushers"
    try:
        status, _ = await api(
            "POST", f"{url}/set", pusher("key-1", profile_tag="t"), token=alice.access_token
        )
        assert status == 200
        status, body = await api("GET", url, token=alice.access_token)
        assert body["pushers"] == [{k: v for k, v in pusher("key-1", profile_tag="t").items()}]
        # Same pushkey for bob without append: it moves to bob.
        status, _ = await api("POST", f"{url}/set", pusher("key-1"), token=bob.access_token)
        assert status == 200
        assert (await api("GET", url, token=alice.access_token))[1] == {"pushers": []}
        # With append both keep it.
        await api("POST", f"{url}/set", pusher("key-1"), token=alice.access_token)
        await api("POST", f"{url}/set", pusher("key-1", append=True), token=bob.access_token)
        assert len((await api("GET", url, token=alice.access_token))[1]["pushers"]) == 1
        assert len((await api("GET", url, token=bob.access_token))[1]["pushers"]) == 1
        # kind null deletes.
        status, _ = await api(
            "POST",
            f"{url}/set",
            {"kind": None, "app_id": "org.example.app", "pushkey": "key-1"},
            token=alice.access_token,
        )
        assert status == 200
        assert (await api("GET", url, token=alice.access_token))[1] == {"pushers": []}
        for bad in (
            {"kind": "http"},
            {**pusher("k"), "lang": None},
            {**pusher("k"), "data": {}},
            {**pusher("k"), "kind": "carrier-pigeon"},
        ):
            status, body = await api("POST", f"{url}/set", bad, token=alice.access_token)
            assert status == 400 and body["errcode"] in ("M_MISSING_PARAM", "M_INVALID_PARAM")
    finally:
        await close_all(alice, bob)


async def test_event_context(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice")
    eve = await register(server.url, "eve")
    try:
        room_id = expect(await alice.room_create(), RoomCreateResponse).room_id
        sent = []
        for i in range(9):
            resp = expect(
                await alice.room_send(room_id, "m.room.message", text(f"m{i}")), RoomSendResponse
            )
            sent.append(resp.event_id)
        ctx = expect(await alice.room_context(room_id, sent[4], limit=4), RoomContextResponse)
        assert ctx.event.event_id == sent[4]
        assert [e.event_id for e in ctx.events_before] == [sent[3], sent[2]]
        assert [e.event_id for e in ctx.events_after] == [sent[5], sent[6]]
        assert any(e.source["type"] == "m.room.create" for e in ctx.state)
        # The tokens continue where the context stopped, both ways.
        status, older = await api(
            "GET",
            f"{server.url}{V3}/rooms/{room_id}/messages",
            token=alice.access_token,
            params={"from": ctx.start, "dir": "b", "limit": "2"},
        )
        assert [e["event_id"] for e in older["chunk"]] == [sent[1], sent[0]]
        status, newer = await api(
            "GET",
            f"{server.url}{V3}/rooms/{room_id}/messages",
            token=alice.access_token,
            params={"from": ctx.end, "dir": "f", "limit": "5"},
        )
        assert [e["event_id"] for e in newer["chunk"]] == [sent[7], sent[8]]
        status, body = await api(
            "GET",
            f"{server.url}{V3}/rooms/{room_id}/context/{sent[4]}",
            token=alice.access_token,
            params={"limit": "0"},
        )
        assert status == 200 and body["events_before"] == [] and body["events_after"] == []
        assert body["event"]["event_id"] == sent[4]
        # Outsiders and unknown events get 404 / 403, never a 500.
        status, body = await api(
            "GET", f"{server.url}{V3}/rooms/{room_id}/context/{sent[4]}", token=eve.access_token
        )
        assert status in (403, 404) and body["errcode"] in ("M_FORBIDDEN", "M_NOT_FOUND")
        status, body = await api(
            "GET", f"{server.url}{V3}/rooms/{room_id}/context/$nope", token=alice.access_token
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
        status, body = await api(
            "GET",
            f"{server.url}{V3}/rooms/{room_id}/context/{sent[0]}",
            token=alice.access_token,
            params={"filter": "{"},
        )
        assert (status, body["errcode"]) == (400, "M_NOT_JSON")
    finally:
        await close_all(alice, eve)


@pytest.fixture
def turn_server(tmp_path: Path) -> Iterator[OutlastProcess]:
    data_dir = tmp_path / "turn"
    data_dir.mkdir()
    config = tmp_path / "turn.toml"
    config.write_text(
        TEST_CONFIG.format(partitions=1, log_extra="", server_extra="")
        + '\n[voip]\nturn_uris = ["turn:turn.example.org:3478?transport=udp"]\n'
        + 'turn_shared_secret = "s3cret"\nturn_user_lifetime_seconds = 600\n'
    )
    proc = launch(data_dir, config, free_port(), [])
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


async def test_configured_turn_server_gives_time_limited_credentials(
    turn_server: OutlastProcess,
) -> None:
    alice = await register(turn_server.url, "alice")
    try:
        status, body = await api(
            "GET", f"{turn_server.url}{V3}/voip/turnServer", token=alice.access_token
        )
        assert status == 200
        assert body["uris"] == ["turn:turn.example.org:3478?transport=udp"]
        assert body["ttl"] == 600
        expiry, _, user = body["username"].partition(":")
        assert user == "@alice:localhost"
        assert 0 < int(expiry) - time.time() <= 600
        mac = hmac.new(b"s3cret", body["username"].encode(), hashlib.sha1).digest()
        assert body["password"] == base64.b64encode(mac).decode()
        # And the usual calls still answer.
        await eventually(lambda: _ok(turn_server.url, alice.access_token), timeout=10)
    finally:
        await close_all(alice)


async def _ok(url: str, token: str) -> bool:
    status, _ = await api("GET", f"{url}{V3}/pushrules/", token=token)
    return status == 200
