"""Slow and greedy connections against a real server: closed in time, never a stuck worker.

The server runs the default limits with short timeouts (2 s) so the tests
are quick; each test measures the close against the configured value.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.e2e.hostile import V3, log_text, register, request, seconds_until_closed
from tests.servers import OutlastProcess, start_outlast

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
KEEPALIVE_TIMEOUT = 2.0
MAX_PER_ADDRESS = 24
# How late a close may come on a busy machine (timer granularity, scheduling).
SLACK = 3.0

LIMITS = f"""header_timeout_seconds = {HEADER_TIMEOUT}
body_timeout_seconds = {BODY_TIMEOUT}
keepalive_timeout_seconds = {KEEPALIVE_TIMEOUT}
max_connections_per_address = {MAX_PER_ADDRESS}"""


@pytest.fixture(scope="module")
def proc(tmp_path_factory: pytest.TempPathFactory, view_backend: str) -> Iterator[OutlastProcess]:
    server = start_outlast(tmp_path_factory.mktemp("hostile-conn") / "site", limits=LIMITS)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def token(proc: OutlastProcess) -> str:
    reply = register(proc, "slowpoke")
    assert reply.status == 200, reply
    return str(reply.body["access_token"])


def connect(proc: OutlastProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proc.port), timeout=10)


def still_serving(proc: OutlastProcess, token: str) -> None:
    assert request(proc, "GET", "/account/whoami", token=token).status == 200


def test_a_silent_connection_is_closed_within_the_header_timeout(
    proc: OutlastProcess, token: str
) -> None:
    """Was: a connection that sends nothing was still open after 240 s."""
    with connect(proc) as sock:
        closed = seconds_until_closed(sock, HEADER_TIMEOUT + SLACK)
    assert closed is not None, "still open"
    assert HEADER_TIMEOUT - 0.5 <= closed <= HEADER_TIMEOUT + SLACK, closed
    still_serving(proc, token)


def test_slowloris_one_header_byte_at_a_time_is_closed_within_the_header_timeout(
    proc: OutlastProcess, token: str
) -> None:
    """Was: one header byte every 5 s kept the connection open indefinitely."""
    head = f"GET {V3}/account/whoami HTTP/1.1\r\nHost: x\r\nX-Padding: ".encode() + b"a" * 200
    with connect(proc) as sock:
        started = time.monotonic()
        closed_at = None
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed_at = time.monotonic() - started
                break
            sock.settimeout(0.25)
            try:
                sock.recv(1000)  # an answer (the 408) or EOF: the server hung up
                closed_at = time.monotonic() - started
                break
            except TimeoutError:
                pass
            if time.monotonic() - started > HEADER_TIMEOUT + SLACK:
                break
    assert closed_at is not None, "the server kept reading a drip-fed head"
    assert closed_at <= HEADER_TIMEOUT + SLACK, closed_at
    still_serving(proc, token)


def test_a_long_poll_outlives_the_header_timeout(proc: OutlastProcess, token: str) -> None:
    """Only the client's sending is timed: a /sync parked for longer than the head
    deadline (and the keep-alive timeout) answers normally."""
    first = request(proc, "GET", "/sync", token=token)
    assert first.status == 200, first
    since = first.body["next_batch"]
    started = time.monotonic()
    reply = request(proc, "GET", f"/sync?timeout=5000&since={since}", token=token)
    assert reply.status == 200, reply
    assert time.monotonic() - started >= 4.5  # it really parked, and was not cut


def test_an_idle_kept_alive_connection_is_closed(proc: OutlastProcess) -> None:
    with connect(proc) as sock:
        sock.sendall(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
        closed = seconds_until_closed(sock, KEEPALIVE_TIMEOUT + SLACK)
    assert closed is not None and closed <= KEEPALIVE_TIMEOUT + SLACK, closed


@pytest.mark.parametrize("path", [f"{V3}/createRoom", "/_matrix/media/v3/upload?filename=x.bin"])
def test_a_stalled_body_gets_408_and_the_connection_closes(
    proc: OutlastProcess, token: str, path: str
) -> None:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    with connect(proc) as sock:
        sock.sendall(head + b'{"name": "a')
        started = time.monotonic()
        sock.settimeout(BODY_TIMEOUT + SLACK)
        answer = sock.recv(65536)
        waited = time.monotonic() - started
        assert answer.split(b" ", 2)[1] == b"408", answer[:200]
        closed = seconds_until_closed(sock, BODY_TIMEOUT + SLACK)  # drained for as long again
    assert BODY_TIMEOUT - 0.5 <= waited <= BODY_TIMEOUT + SLACK, waited
    assert closed is not None
    still_serving(proc, token)


def test_connections_per_address_are_capped(proc: OutlastProcess, token: str) -> None:
    socks = [connect(proc) for _ in range(MAX_PER_ADDRESS)]
    try:
        with connect(proc) as extra:
            extra.settimeout(5)
            answer = extra.recv(65536)
        assert answer.split(b" ", 2)[1] == b"429", answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["errcode"] == "M_LIMIT_EXCEEDED"
    finally:
        for sock in socks:
            sock.close()
    # Closed connections free their places at once.
    time.sleep(0.3)
    still_serving(proc, token)


def test_a_client_disconnecting_mid_body_is_one_warning_line(
    proc: OutlastProcess, token: str
) -> None:
    """Was: a full traceback at ERROR for each client that went away mid-body."""
    before = log_text(proc).count("disconnected during")
    for path in (f"{V3}/createRoom", "/_matrix/media/v3/upload?filename=y.bin"):
        with connect(proc) as sock:
            sock.sendall(
                (
                    f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                    "Content-Length: 100000\r\n\r\n"
                ).encode()
                + b"x" * 5000
            )
            time.sleep(0.3)
    deadline = time.monotonic() + 10
    while log_text(proc).count("disconnected during") < before + 2:
        assert time.monotonic() < deadline, log_text(proc)[-2000:]
        time.sleep(0.1)
    assert "Traceback" not in log_text(proc)
    still_serving(proc, token)


def test_many_slow_clients_do_not_stall_the_others(proc: OutlastProcess, token: str) -> None:
    """A crowd of half-open connections (below the cap) while a real client goes on."""
    stop = threading.Event()

    def loiter() -> None:
        while not stop.is_set():
            with connect(proc) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\n")
                seconds_until_closed(sock, HEADER_TIMEOUT + SLACK)

    threads = [threading.Thread(target=loiter, daemon=True) for _ in range(MAX_PER_ADDRESS // 2)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(20):
            still_serving(proc, token)
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=HEADER_TIMEOUT + SLACK + 5)
    assert "Traceback" not in log_text(proc)
