"""The HTTP listener: aiohttp's connection protocol, guarded against slow and hostile clients.

What aiohttp gives: a keep-alive timeout for idle connections between
requests (``limits.keepalive_timeout_seconds``), and handlers read bodies
under ``limits.body_timeout_seconds`` (outlast.http.request.read_body, media
uploads per chunk). What it does not give is a timeout on reading a
request's *head*: a client that connects and sends nothing, or one header
byte every few seconds, would keep its connection, a file descriptor and a
parser for ever (slowloris). So each connection runs
``GuardedRequestHandler``, aiohttp's own protocol with three additions:

- **Head deadline.** A timer starts when the connection opens, and again
  when the first byte of a later request arrives on a kept-alive connection;
  it is cancelled as soon as the parser has a complete request line and
  headers. If it fires, the connection is closed. Only the client's sending
  of the request is timed: once the head is in, a ``/sync`` long-poll may
  park for its full minute, and the response is never cut.
- **Connections per address.** At most ``limits.max_connections_per_address``
  open connections per peer address (trusted proxies, such as the front
  door, are exempt: they carry everyone's connections). Over it, the
  connection gets a 429 Matrix error and is closed.
- **Quiet errors.** Malformed HTTP gets a Matrix JSON 400 and one WARNING
  line, not aiohttp's traceback at ERROR (anyone can send junk; a log flood
  must not be that cheap).

The listener is a ``web.BaseSite`` so the runner still owns its lifetime.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from outlast.config import LimitsConfig
from outlast.core import jsonenc
from outlast.http.limits import ClientAddresses

log = logging.getLogger(__name__)


class ConnectionGuard:
    """The settings and per-address connection counts shared by one worker's connections."""

    def __init__(self, limits: LimitsConfig, addresses: ClientAddresses) -> None:
        self.header_timeout = limits.header_timeout_seconds
        self.max_per_address = limits.max_connections_per_address if limits.enabled else 0
        self.addresses = addresses
        self.open: dict[str, int] = {}
        self.timed_out = 0
        self.refused = 0

    def admit(self, address: str) -> bool:
        count = self.open.get(address, 0)
        if (
            self.max_per_address
            and count >= self.max_per_address
            and not self.addresses.trusted(address)
        ):
            self.refused += 1
            return False
        self.open[address] = count + 1
        return True

    def release(self, address: str) -> None:
        count = self.open.get(address, 0) - 1
        if count > 0:
            self.open[address] = count
        else:
            self.open.pop(address, None)


def _raw_response(status: int, reason: str, errcode: str, error: str) -> bytes:
    body = jsonenc.dumps({"errcode": errcode, "error": error})
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    )
    if status == 429:
        head += "Retry-After: 1\r\n"
    return head.encode() + b"\r\n" + body


class GuardedRequestHandler(RequestHandler):
    """aiohttp's protocol plus a head deadline, a per-address cap and quiet errors."""

    def __init__(self, manager: Server, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.guard = guard
        self.address: str | None = None
        self.head_timer: asyncio.TimerHandle | None = None
        # True between a response and the first byte of the next request.
        self.idle = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, (tuple, list)) and peer else "?"
        if not self.guard.admit(address):
            log.warning("refused a connection from %s: too many open connections", address)
            if self.transport is not None:
                self.transport.write(
                    _raw_response(
                        429, "Too Many Requests", "M_LIMIT_EXCEEDED", "too many open connections"
                    )
                )
            self.force_close()
            return
        self.address = address
        self._start_head_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        if self.address is not None:
            self.guard.release(self.address)
            self.address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # ``_request_count`` is aiohttp's count of parsed request heads on this
        # connection (it has no public hook for "a head is complete").
        before = self._request_count
        if self.idle and data:
            self.idle = False
            self._start_head_timer()
        super().data_received(data)
        if self._request_count != before:
            self._stop_head_timer()

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        result = await super().finish_response(request, resp, start_time)
        self.idle = True  # aiohttp's keep-alive timer now watches the silent connection
        return result

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self.head_timer = self._loop.call_later(self.guard.header_timeout, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_too_slow(self) -> None:
        self.head_timer = None
        self.guard.timed_out += 1
        log.info("closed a connection from %s: request head not received in time", self.address)
        if self.transport is not None:
            self.transport.write(
                _raw_response(408, "Request Timeout", "M_UNKNOWN", "request head took too long")
            )
        self.force_close()

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's own errors caused by the client (a body that cannot be decoded while
        it drains it, a reset): one WARNING line instead of a traceback at ERROR."""
        exc = kw.get("exc_info")
        if isinstance(exc, (web.RequestPayloadError, HttpProcessingError, ConnectionError)):
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            log.warning("bad request data from %s: %s", self.address, first)
            return
        super().log_exception(*args, **kw)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Malformed HTTP (aiohttp's parser refused it): one line, and Matrix JSON."""
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        log.warning("malformed HTTP from %s: %s", self.address, str(exc).splitlines()[0][:200])
        response = web.json_response(
            {"errcode": "M_UNKNOWN", "error": "malformed HTTP request"}, status=status
        )
        response.force_close()
        return response


class GuardedSite(web.BaseSite):
    """A TCP listener whose connections run ``GuardedRequestHandler``."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        handler_args: dict[str, Any],
        *,
        reuse_port: bool = False,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self.host = host
        self.port = port
        self.guard = guard
        self.handler_args = handler_args
        self.reuse_port = reuse_port

    @property
    def name(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()

        def protocol() -> GuardedRequestHandler:
            return GuardedRequestHandler(server, self.guard, loop=loop, **self.handler_args)

        self._server = await loop.create_server(
            protocol,
            self.host,
            self.port,
            reuse_address=True,
            reuse_port=self.reuse_port or None,
            backlog=self._backlog,
        )
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
