"""Hostile input against a real server on its defaults: the right 4xx, never a 500.

Each test is one finding of the hardening review (issue 11): the request that
used to answer 500 (or succeed when it should not) and what it answers now.
"""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.e2e.hostile import V3, Reply, log_text, raw_exchange, register, request
from tests.servers import OutlastProcess, start_outlast


class Site:
    def __init__(self, proc: OutlastProcess) -> None:
        self.proc = proc
        reply = register(proc, "mallory")
        assert reply.status == 200, reply
        self.token: str = reply.body["access_token"]
        reply = self.call("POST", "/createRoom", {"name": "target"})
        assert reply.status == 200, reply
        self.room: str = reply.body["room_id"]
        reply = self.call("PUT", f"/rooms/{quote(self.room)}/send/m.room.message/t0", _text("x"))
        assert reply.status == 200, reply
        self.event: str = reply.body["event_id"]

    def call(self, method: str, path: str, body: object = None, **kw: object) -> Reply:
        return request(self.proc, method, path, body, self.token, **kw)  # type: ignore[arg-type]

    def bodies(self) -> list[str]:
        reply = self.call("GET", f"/rooms/{quote(self.room)}/messages?dir=b&limit=100")
        assert reply.status == 200, reply
        return [
            e["content"].get("body") for e in reply.body["chunk"] if e["type"] == "m.room.message"
        ]


def _text(body: str) -> dict[str, str]:
    return {"msgtype": "m.text", "body": body}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, view_backend: str) -> Iterator[Site]:
    proc = start_outlast(tmp_path_factory.mktemp("hostile-input") / "site", limits="")
    try:
        yield Site(proc)
    finally:
        proc.stop()


def test_non_ascii_bearer_token_is_401(site: Site) -> None:
    """Was: UnicodeEncodeError, 500, on any authenticated endpoint."""
    for raw in ("éé".encode(), "éé".encode("latin-1"), "olt_\u2603".encode(), b"\x01\x02"):
        for path in ("/account/whoami", "/sync", "/joined_rooms"):
            head = (
                f"GET {V3}{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
                + b"Authorization: Bearer "
                + raw
                + b"\r\n\r\n"
            )
            answer = raw_exchange(site.proc.port, head)
            if raw.isascii():  # control characters: the HTTP parser itself refuses the header
                assert answer.split(b" ", 2)[1] == b"400", answer[:300]
            else:
                assert answer.split(b" ", 2)[1] == b"401", answer[:300]
                assert b'"M_UNKNOWN_TOKEN"' in answer, answer[:400]
    token = "\u00e9\u00e9"
    reply = request(site.proc, "GET", f"/account/whoami?access_token={quote(token)}")
    assert (reply.status, reply.errcode) == (401, "M_UNKNOWN_TOKEN")


@pytest.mark.parametrize("depth", [3000, 150])
def test_deeply_nested_filters_are_400(site: Site, depth: int) -> None:
    """Was: RecursionError, 500, on /sync, /messages and /context (3,000 levels)."""
    nested_object = '{"room":' * depth + "{}" + "}" * depth
    nested_list = "[" * depth + "]" * depth
    room = quote(site.room)
    for path in (
        "/sync?filter=" + quote(nested_object),
        f"/rooms/{room}/messages?filter=" + quote(nested_object),
        f"/rooms/{room}/messages?filter=" + quote('{"types":' + nested_list + "}"),
        f"/rooms/{room}/context/{quote(site.event)}?filter=" + quote(nested_object),
    ):
        reply = site.call("GET", path)
        assert reply.status == 400, (path[:80], reply)
        assert reply.errcode in ("M_NOT_JSON", "M_BAD_JSON"), reply
    assert site.call("GET", "/account/whoami").status == 200


def test_bodies_whose_content_encoding_cannot_be_decoded_are_400_and_store_nothing(
    site: Site,
) -> None:
    """Was: 500 for a deflate body that is not deflate; a corrupt gzip body on /send
    committed a message (or answered 500). Now 400, and nothing is stored."""
    room = quote(site.room)
    before = site.bodies()
    good = gzip.compress(b'{"msgtype": "m.text", "body": "zipped"}')
    corrupt = good[:-12] + b"garbage!"
    for encoding, body in (("deflate", b"not deflate at all"), ("gzip", corrupt)):
        reply = site.call(
            "PUT",
            f"/rooms/{room}/send/m.room.message/enc-{encoding}",
            body,
            headers={"Content-Encoding": encoding, "Content-Type": "application/json"},
        )
        assert (reply.status, reply.errcode) == (400, "M_NOT_JSON"), reply
    reply = site.call("POST", "/createRoom", b"\x1f\x8b junk", headers={"Content-Encoding": "gzip"})
    assert reply.status == 400, reply
    assert site.bodies() == before
    # A correct gzip body is still welcome, and the txnId used by the failed try is free.
    reply = site.call(
        "PUT",
        f"/rooms/{room}/send/m.room.message/enc-gzip",
        good,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert reply.status == 200, reply
    assert site.bodies() == ["zipped", *before]
    assert "Traceback" not in log_text(site.proc)


def test_well_known_never_echoes_the_host_header(site: Site) -> None:
    """Was: base_url = http://<whatever Host the request carried> when public_baseurl is empty."""
    reply = request(
        site.proc, "GET", "/.well-known/matrix/client", headers={"Host": "evil.example"}
    )
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND"), reply
    assert "evil" not in str(reply.body)


def test_well_known_advertises_the_configured_base_url(tmp_path: Path) -> None:
    proc = start_outlast(
        tmp_path / "wk", server_extra='public_baseurl = "https://matrix.example.org/"'
    )
    try:
        reply = request(proc, "GET", "/.well-known/matrix/client", headers={"Host": "evil.example"})
        assert reply.status == 200, reply
        assert reply.body == {"m.homeserver": {"base_url": "https://matrix.example.org"}}
    finally:
        proc.stop()


@pytest.mark.parametrize(
    "content",
    [{"m.federate": "yes"}, {"type": 5}, {"predecessor": "!x:y"}, {"predecessor": {"room_id": 5}}],
)
def test_creation_content_is_checked(site: Site, content: dict[str, object]) -> None:
    """Was: stored unchecked (creator, m.federate: "yes", type: 5)."""
    reply = site.call("POST", "/createRoom", {"creation_content": content})
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), reply


def test_creation_content_cannot_name_another_creator(site: Site) -> None:
    reply = site.call(
        "POST",
        "/createRoom",
        {"creation_content": {"creator": "@ceo:localhost", "m.federate": False, "type": "x.y"}},
    )
    assert reply.status == 200, reply
    room = quote(reply.body["room_id"])
    create = site.call("GET", f"/rooms/{room}/state/m.room.create")
    assert create.status == 200, create
    assert create.body["creator"] != "@ceo:localhost"  # the server names the sender
    assert create.body["m.federate"] is False and create.body["type"] == "x.y"
    assert create.body["room_version"] == "10"


def test_registering_without_a_password_is_refused(site: Site) -> None:
    """Was: 200, and the account could never log in."""
    for extra in ({}, {"inhibit_login": True}, {"password": None}):
        reply = request(
            site.proc,
            "POST",
            "/register",
            {"username": "nopassword", "auth": {"type": "m.login.dummy"}, **extra},
        )
        assert (reply.status, reply.errcode) == (400, "M_MISSING_PARAM"), reply
    reply = request(site.proc, "GET", "/register/available?username=nopassword")
    assert reply.status == 200 and reply.body == {"available": True}


def test_sync_token_from_the_future_is_400(site: Site) -> None:
    """Was: answered at once, echoing the token (the client polled in a tight loop forever)."""
    first = site.call("GET", "/sync")
    assert first.status == 200, first
    current = first.body["next_batch"]
    positions = current[1:].split(".")[0].split("_")
    future = "s" + "_".join(str(int(p) + 1_000_000) for p in positions)
    started = time.monotonic()
    reply = site.call("GET", f"/sync?timeout=20000&since={future}")
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM"), reply
    assert time.monotonic() - started < 15  # refused, not parked for the whole timeout
    # The real token still works.
    reply = site.call("GET", f"/sync?timeout=0&since={current}")
    assert reply.status == 200, reply


def test_malformed_http_is_a_matrix_400_and_one_log_line(site: Site) -> None:
    """Was: a full traceback at ERROR per malformed request (a log flood anyone can cause)."""
    before = log_text(site.proc).count("malformed HTTP")
    for junk in (
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ):
        answer = raw_exchange(site.proc.port, junk)
        assert answer.split(b" ", 2)[1] == b"400", answer[:200]
        assert b'"errcode"' in answer, answer[:400]
    with socket.create_connection(("127.0.0.1", site.proc.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40))  # a TLS hello
        sock.recv(1000)
    text = log_text(site.proc)
    assert text.count("malformed HTTP") >= before + 3
    assert "Traceback" not in text
    assert site.call("GET", "/account/whoami").status == 200
