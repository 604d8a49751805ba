"""Raw HTTP for the hostile-client tests: headers both ways, bytes on sockets, the server's log."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from tests.servers import OutlastProcess

V3 = "/_matrix/client/v3"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def errcode(self) -> str | None:
        return self.body.get("errcode") if isinstance(self.body, dict) else None


def request(
    proc: OutlastProcess,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Reply:
    """One request; ``path`` below /_matrix/client/v3 unless it starts with ``/_`` or ``/.``."""
    url = proc.url + (path if path.startswith(("/_", "/.")) else V3 + path)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Reply(resp.status, dict(resp.headers), _decode(resp.read()))
    except urllib.error.HTTPError as err:
        return Reply(err.code, dict(err.headers), _decode(err.read()))


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw


def register(
    proc: OutlastProcess, name: str, password: str = "pw", headers: dict[str, str] | None = None
) -> Reply:
    return request(
        proc,
        "POST",
        "/register",
        {"username": name, "password": password, "auth": {"type": "m.login.dummy"}},
        headers=headers,
    )


def login(
    proc: OutlastProcess, name: str, password: str, headers: dict[str, str] | None = None
) -> Reply:
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": name}}
    return request(proc, "POST", "/login", {**body, "password": password}, headers=headers)


def assert_limited(reply: Reply) -> None:
    """The spec's 429: M_LIMIT_EXCEEDED with retry_after_ms, plus Retry-After."""
    assert reply.status == 429, reply
    assert reply.errcode == "M_LIMIT_EXCEEDED", reply
    assert isinstance(reply.body.get("retry_after_ms"), int), reply
    assert reply.body["retry_after_ms"] > 0, reply
    assert int(reply.headers["Retry-After"]) >= 1, reply


def raw_exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes on a fresh connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def seconds_until_closed(sock: socket.socket, limit: float) -> float | None:
    """Read (and drop) what the server sends until it closes; None if still open at ``limit``."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        sock.settimeout(max(0.05, limit - (time.monotonic() - started)))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return None
        except OSError:
            return time.monotonic() - started
        if not chunk:
            return time.monotonic() - started
    return None


def log_text(proc: OutlastProcess) -> str:
    return proc.log_path.read_text(encoding="utf-8", errors="replace")
