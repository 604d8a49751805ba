"""Errors end to end: Matrix error JSON for bad requests, never a 500, size and rate limits."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.servers import OutlastProcess, http_json, start_outlast

V3 = "/_matrix/client/v3"


class Site:
    """One server shared by this module's tests, with a user and a room."""

    def __init__(self, proc: OutlastProcess) -> None:
        self.proc = proc
        status, body = http_json(
            "POST",
            proc.url + V3 + "/register",
            {"username": "eve", "password": "pw", "auth": {"type": "m.login.dummy"}},
        )
        assert status == 200, body
        self.token: str = body["access_token"]
        status, body = self.call("POST", "/createRoom", {"name": "target"})
        assert status == 200, body
        self.room: str = body["room_id"]

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = ""
    ) -> tuple[int, Any]:
        return http_json(
            method,
            self.proc.url + (path if path.startswith("/_") else V3 + path),
            body,
            self.token if token == "" else token,
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, view_backend: str) -> Iterator[Site]:
    proc = start_outlast(tmp_path_factory.mktemp("errors") / "site")
    try:
        yield Site(proc)
    finally:
        proc.stop()


def assert_error(status: int, body: Any, want_status: int, errcode: str) -> None:
    assert (status, body.get("errcode") if isinstance(body, dict) else body) == (
        want_status,
        errcode,
    ), body
    assert isinstance(body.get("error"), str)


def test_unknown_endpoint_and_wrong_method(site: Site) -> None:
    assert_error(*site.call("GET", "/no/such/endpoint"), 404, "M_UNRECOGNIZED")
    assert_error(*site.call("GET", "/_matrix/client/v9/sync"), 404, "M_UNRECOGNIZED")
    assert_error(*site.call("GET", "/_matrix/nothing"), 404, "M_UNRECOGNIZED")
    assert_error(*site.call("DELETE", "/login"), 405, "M_UNRECOGNIZED")
    assert_error(*site.call("GET", "/createRoom"), 405, "M_UNRECOGNIZED")


def test_missing_and_bad_tokens(site: Site) -> None:
    assert_error(*site.call("GET", "/account/whoami", token=None), 401, "M_MISSING_TOKEN")
    assert_error(*site.call("GET", "/sync", token=None), 401, "M_MISSING_TOKEN")
    assert_error(*site.call("GET", "/account/whoami", token="olt_nope"), 401, "M_UNKNOWN_TOKEN")
    assert_error(*site.call("GET", "/account/whoami", token="x" * 5000), 401, "M_UNKNOWN_TOKEN")
    status, body = http_json("GET", site.proc.url + V3 + "/account/whoami?access_token=bad")
    assert_error(status, body, 401, "M_UNKNOWN_TOKEN")
    status, body = http_json(
        "GET", site.proc.url + V3 + "/account/whoami?access_token=" + site.token
    )
    assert status == 200 and body["user_id"] == "@eve:localhost"


def test_a_flood_of_unknown_tokens_is_refused_and_real_ones_keep_working(site: Site) -> None:
    """Each unknown token makes the server ask the log whether it missed a login;
    concurrent misses share those requests, so the flood answers 401 throughout."""

    def probe(i: int) -> int:
        return site.call("GET", "/account/whoami", token=f"olt_bogus_{i}")[0]

    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(probe, range(400)))
    assert statuses == [401] * 400
    status, body = site.call("GET", "/account/whoami")
    assert status == 200 and body["user_id"] == "@eve:localhost"


def test_malformed_json_bodies(site: Site) -> None:
    assert_error(*site.call("POST", "/createRoom", b"{not json"), 400, "M_NOT_JSON")
    assert_error(*site.call("POST", "/createRoom", b"\xff\xfe"), 400, "M_NOT_JSON")
    assert_error(*site.call("POST", "/createRoom", b'{"a": NaN}'), 400, "M_NOT_JSON")
    assert_error(*site.call("POST", "/createRoom", b"[1, 2]"), 400, "M_BAD_JSON")
    assert_error(*site.call("POST", "/createRoom", b'"text"'), 400, "M_BAD_JSON")
    assert_error(*site.call("POST", "/login", b"[]", token=None), 400, "M_BAD_JSON")
    send = f"/rooms/{site.room}/send/m.room.message/txn-json"
    assert_error(*site.call("PUT", send, b"[]"), 400, "M_BAD_JSON")
    assert_error(*site.call("PUT", send, b"{"), 400, "M_NOT_JSON")
    # Valid JSON syntax, but values no event can hold faithfully: refused at the door.
    for bad in (
        b'{"msgtype": "m.text", "body": "\\ud800"}',  # a lone surrogate: not text
        b'{"msgtype": "m.text", "body": "x", "n": 9007199254740992}',  # beyond 2^53 - 1
        b'{"msgtype": "m.text", "body": "x", "f": 1e400}',  # overflows to infinity
    ):
        assert_error(*site.call("PUT", send, bad), 400, "M_BAD_JSON")
    # Escaped pairs are ordinary characters, and the edge of the safe range is fine.
    status, _ = site.call(
        "PUT",
        f"/rooms/{site.room}/send/m.room.message/txn-ok-escapes",
        b'{"msgtype": "m.text", "body": "\\ud83d\\ude00", "n": -9007199254740991}',
    )
    assert status == 200
    deep = b"[" * 100_000 + b"]" * 100_000
    status, body = site.call("PUT", send, deep)
    assert status == 400 and body["errcode"] in ("M_NOT_JSON", "M_BAD_JSON")


def test_oversized_body_and_event(site: Site) -> None:
    big = json.dumps({"msgtype": "m.text", "body": "x" * (1024 * 1024 + 10)}).encode()
    status, body = site.call("PUT", f"/rooms/{site.room}/send/m.room.message/big-body", big)
    assert_error(status, body, 413, "M_TOO_LARGE")
    content = {"msgtype": "m.text", "body": "y" * 70_000}
    status, body = site.call("PUT", f"/rooms/{site.room}/send/m.room.message/big-event", content)
    assert_error(status, body, 413, "M_TOO_LARGE")
    status, body = site.call("PUT", f"/rooms/{site.room}/state/org.example.big", content)
    assert_error(status, body, 413, "M_TOO_LARGE")
    # Just under the limit is fine, and the server is still healthy afterwards.
    ok = {"msgtype": "m.text", "body": "z" * 60_000}
    status, body = site.call("PUT", f"/rooms/{site.room}/send/m.room.message/ok-event", ok)
    assert status == 200, body


R = "{room}"  # replaced by the module's real room id
HOSTILE: list[tuple[str, str, Any]] = [
    ("GET", "/rooms/garbage/messages", None),
    ("GET", "/rooms/!nope:localhost/messages", None),
    ("GET", f"/rooms/{R}/messages?limit=99999999999999999999999999", None),
    ("GET", f"/rooms/{R}/messages?limit=-5", None),
    ("GET", f"/rooms/{R}/messages?limit=abc", None),
    ("GET", f"/rooms/{R}/messages?dir=x", None),
    ("GET", f"/rooms/{R}/messages?dir=", None),
    ("GET", f"/rooms/{R}/messages?from=garbage", None),
    ("GET", f"/rooms/{R}/messages?from=t-1_0", None),
    ("GET", f"/rooms/{R}/messages?from=t99999999999999999999999_0", None),
    ("GET", f"/rooms/{R}/messages?from=t1_99999999999999", None),
    ("GET", f"/rooms/{R}/messages?from=s1_2_3", None),
    ("GET", f"/rooms/{R}/messages?from=s1_2_3_4_5_6_7", None),
    ("GET", f"/rooms/{R}/messages?from=s_____", None),
    ("GET", f"/rooms/{R}/messages?to=%00", None),
    ("GET", f"/rooms/{R}/messages?filter=%7Bbad", None),
    ("GET", f"/rooms/{R}/messages?filter=%5B1%5D", None),
    ("GET", f"/rooms/{R}/messages?filter=" + quote('{"types": 5}'), None),
    ("GET", f"/rooms/{R}/messages?filter=" + quote('{"limit": -1}'), None),
    ("GET", f"/rooms/{R}/messages?filter=" + quote('{"limit": 1e400}'), None),
    ("GET", f"/rooms/{R}/messages?filter=" + quote('{"types": ["' + "*" * 1500 + '"]}'), None),
    ("GET", "/sync?since=garbage", None),
    ("GET", "/sync?since=s", None),
    ("GET", "/sync?since=s-1_-1_-1_-1", None),
    ("GET", "/sync?since=s" + "9" * 30 + "_0_0_0", None),
    ("GET", "/sync?since=" + "s1_" * 2000, None),
    ("GET", "/sync?timeout=-1", None),
    ("GET", "/sync?timeout=1e999", None),
    ("GET", "/sync?filter=" + quote('{"room": []}'), None),
    ("GET", "/sync?filter=" + quote('{"room": {"timeline": {"limit": "x"}}}'), None),
    ("GET", "/sync?filter=" + quote("\u2603\u0000"), None),
    ("GET", "/sync?full_state=maybe&set_presence=%F0%9F%92%A9", None),
    ("GET", "/rooms/%21bad%2Fslash:localhost/state", None),
    ("GET", "/rooms/%E2%98%83/state", None),
    ("GET", "/rooms/!%E2%98%83:localhost/state/m.room.name", None),
    ("GET", f"/rooms/{R}/state/m.room.name/%2F..%2F..", None),
    ("GET", f"/rooms/{R}/state/%2F%2F/%00", None),
    ("GET", f"/rooms/{R}/event/%2F..%2F..%2Fetc%2Fpasswd", None),
    ("GET", f"/rooms/{R}/event/$" + "x" * 4000, None),
    ("GET", "/rooms/!" + "a" * 4000 + ":localhost/members", None),
    ("GET", f"/rooms/{R}/members?membership=%FF%FE", None),
    ("GET", f"/rooms/{R}/joined_members/extra", None),
    ("PUT", f"/rooms/{R}/send/m.room.message/%2F%2F", {"body": "x"}),
    ("PUT", f"/rooms/{R}/send/{'t' * 300}/txn", {"body": "x"}),
    ("PUT", f"/rooms/{R}/send/m.room.message/{'n' * 300}", {"body": "x"}),
    ("PUT", f"/rooms/{R}/send/%00/txn0", {"body": "x"}),
    ("PUT", f"/rooms/{R}/state/m.room.member/not-a-user", {"membership": "join"}),
    ("PUT", f"/rooms/{R}/state/m.room.member/@eve:localhost", {"membership": 5}),
    ("PUT", f"/rooms/{R}/state/m.room.power_levels", {"users": {"@eve:localhost": "high"}}),
    ("PUT", f"/rooms/{R}/state/m.room.power_levels", {"users": []}),
    ("PUT", f"/rooms/{R}/state/m.room.name/{'k' * 300}", {"name": "x"}),
    ("PUT", "/rooms/!nope:localhost/state/m.room.name", {"name": "x"}),
    ("PUT", "/rooms/!nope:localhost/send/m.room.message/t1", {"body": "x"}),
    ("POST", "/join/garbage", {}),
    ("POST", "/join/%23", {}),
    ("POST", "/join/!", {}),
    ("POST", "/join/%23%E2%98%83:localhost", {}),
    ("POST", "/join/%23a%2Fb:localhost", {}),
    ("POST", "/rooms/!nope:localhost/join", {}),
    ("POST", "/rooms/!nope:localhost/leave", {}),
    ("POST", "/rooms/!nope:localhost/forget", {}),
    ("POST", f"/rooms/{R}/leave", {"reason": 5}),
    ("POST", f"/rooms/{R}/invite", {"user_id": 5}),
    ("POST", f"/rooms/{R}/invite", {"user_id": "@" + "u" * 300 + ":localhost"}),
    ("POST", f"/rooms/{R}/kick", {}),
    ("POST", f"/rooms/{R}/ban", {"user_id": "@x:localhost", "reason": ["no"]}),
    ("POST", f"/rooms/{R}/unban", {"user_id": "not an id"}),
    ("POST", "/createRoom", {"preset": 5}),
    ("POST", "/createRoom", {"preset": "nope"}),
    ("POST", "/createRoom", {"visibility": "sideways"}),
    ("POST", "/createRoom", {"invite": "x"}),
    ("POST", "/createRoom", {"invite": ["not-a-user"]}),
    ("POST", "/createRoom", {"initial_state": [1]}),
    ("POST", "/createRoom", {"initial_state": [{"type": "m.room.topic", "content": []}]}),
    ("POST", "/createRoom", {"initial_state": [{"type": "x", "state_key": 5}]}),
    ("POST", "/createRoom", {"room_version": "999"}),
    ("POST", "/createRoom", {"room_version": 11}),
    ("POST", "/createRoom", {"power_level_content_override": []}),
    ("POST", "/createRoom", {"power_level_content_override": {"users": {"@eve:localhost": "x"}}}),
    ("POST", "/createRoom", {"creation_content": "x"}),
    ("POST", "/createRoom", {"name": 5, "topic": {}}),
    ("POST", "/createRoom", {"room_alias_name": "a:b"}),
    ("POST", "/createRoom", {"room_alias_name": ""}),
    ("POST", "/createRoom", {"room_alias_name": "x" * 300}),
    ("POST", "/login", {"type": "m.login.password", "identifier": "x"}),
    (
        "POST",
        "/login",
        {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": 5}},
    ),
    ("POST", "/login", {"type": "m.login.password", "user": "@:"}),
    ("POST", "/login", {"type": "m.login.password", "user": "@a:elsewhere", "password": "x"}),
    ("POST", "/login", {"type": "m.login.password", "user": "eve", "password": ["x"]}),
    ("POST", "/login", {"type": "m.login.password", "user": "eve", "password": "p" * 100_000}),
    (
        "POST",
        "/login",
        {"type": "m.login.password", "user": "eve", "password": "pw", "device_id": 5},
    ),
    ("POST", "/login", {"type": 5}),
    ("POST", "/register", {"username": 5, "auth": {"type": "m.login.dummy"}}),
    ("POST", "/register", {"username": "ok1", "auth": "x"}),
    ("POST", "/register", {"username": "ok2", "auth": {"type": "m.login.dummy"}, "password": 5}),
    (
        "POST",
        "/register",
        {"username": "ok3", "auth": {"type": "m.login.dummy"}, "password": "p", "device_id": ["x"]},
    ),
    ("POST", "/register?kind=guest", {}),
    ("GET", "/register/available", None),
    ("GET", "/register/available?username=%00%FF", None),
    ("POST", "/user/@eve:localhost/filter", {"room": {"timeline": {"limit": "ten"}}}),
    ("POST", "/user/@eve:localhost/filter", {"event_format": "xml"}),
    ("POST", "/user/@someone:localhost/filter", {}),
    ("GET", "/user/@eve:localhost/filter/%2F..", None),
    ("GET", "/user/@eve:localhost/filter/" + "f" * 4000, None),
    ("GET", "/user/%E2%98%83/filter/1", None),
    (
        "POST",
        "/account/password",
        {"auth": {"type": "m.login.password", "password": 5}, "new_password": "x"},
    ),
    (
        "POST",
        "/account/password",
        {"auth": {"type": "m.login.password", "identifier": "bad"}, "new_password": "x"},
    ),
    ("POST", "/account/deactivate", {"auth": []}),
    ("GET", "/capabilities?" + "&".join(f"k{i}=v" for i in range(500)), None),
    ("OPTIONS", "/sync", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), HOSTILE, ids=[f"{m} {p[:60]}" for m, p, _ in HOSTILE]
)
def test_hostile_input_never_500(site: Site, method: str, path: str, body: Any) -> None:
    status, reply = site.call(method, path.replace(R, quote(site.room)), body)
    assert status < 500, reply
    if status >= 400:
        assert isinstance(reply, dict), reply
        assert isinstance(reply.get("errcode"), str) and reply["errcode"].startswith("M_"), reply
        assert isinstance(reply.get("error"), str), reply
    # The server is still up and answering.
    assert site.call("GET", "/account/whoami")[0] == 200


def test_raw_protocol_junk_keeps_server_up(site: Site) -> None:
    for junk in (
        b"GARBAGE\r\n\r\n",
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", site.proc.port), timeout=5) as sock:
            sock.sendall(junk)
            reply = sock.recv(200)
            assert not reply.startswith(b"HTTP/1.1 5"), reply
    assert site.call("GET", "/account/whoami")[0] == 200


def test_limits_switched_off(site: Site) -> None:
    """``[limits] enabled = false`` (this module's server): no request is ever throttled."""
    statuses = {site.call("GET", "/account/whoami")[0] for _ in range(150)}
    assert statuses == {200}


def test_rate_limit_on(tmp_path: Path) -> None:
    proc = start_outlast(
        tmp_path / "limited", limits="rate_limit_per_second = 1.0\nrate_limit_burst = 5"
    )
    try:
        status, body = http_json(
            "POST",
            proc.url + V3 + "/register",
            {"username": "fast", "password": "pw", "auth": {"type": "m.login.dummy"}},
        )
        token = body["access_token"] if status == 200 else None
        replies = [
            http_json("GET", proc.url + V3 + "/account/whoami", token=token) for _ in range(30)
        ]
        limited = [body for status, body in replies if status == 429]
        assert limited, [status for status, _ in replies]
        assert all(b["errcode"] == "M_LIMIT_EXCEEDED" and b["retry_after_ms"] > 0 for b in limited)
        assert isinstance(limited[0]["error"], str)
        # Health checks are never throttled, or the front door would drain the site.
        for _ in range(30):
            status, body = http_json("GET", proc.url + "/_outlast/health")
            assert status == 200 and body["ready"], body
    finally:
        proc.stop()
