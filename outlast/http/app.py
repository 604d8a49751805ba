"""The aiohttp application: middlewares that turn every failure into Matrix JSON."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from outlast.core.errors import MatrixError, log_unavailable
from outlast.http import consistency
from outlast.http.metrics import Metrics
from outlast.http.metrics import install as install_metrics
from outlast.http.request import CORS_HEADERS, SERVICES
from outlast.http.routes import (
    account,
    account_data,
    admin,
    devices,
    directory,
    media,
    meta,
    misc,
    profile,
    receipts,
    redact,
    rooms,
    sync,
    webchat,
)
from outlast.http.routing import Routes
from outlast.log.client import LogUnavailable
from outlast.services import Services
from outlast.view.barrier import Barrier

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


HOT_PATHS = frozenset({"/rooms/{room_id}/send/{event_type}/{txn_id}"})

ROUTE_GROUPS: list[Routes] = [
    meta.routes,
    account.routes,
    rooms.routes,
    sync.routes,
    receipts.routes,
    profile.routes,
    directory.routes,
    account_data.routes,
    redact.routes,
    devices.routes,
    media.routes,
    misc.routes,
    admin.routes,
    webchat.routes,
]


def _error(
    status: int,
    errcode: str,
    message: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    body = {"errcode": errcode, "error": message, **(extra or {})}
    return web.json_response(body, status=status, headers={**CORS_HEADERS, **(headers or {})})


class RateLimiter:
    """A token bucket per client (user token or address); off when rate is 0."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: str) -> float:
        """0 if allowed, else seconds until the next request would be."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > 100_000:
            self._buckets.clear()
        return 0.0


def client_key(request: web.Request) -> str:
    """Whom a request is counted against: its access token, else its address.

    A digest, not the header itself: headers may be 64 KiB long, and a client
    making up a new one per request must not fill memory with such keys."""
    header = request.headers.get("Authorization")
    if header:
        digest = hashlib.blake2b(header.encode("utf-8", "surrogateescape"), digest_size=16)
        return "t" + digest.hexdigest()
    return "a" + (request.remote or "?")


def build_app(
    services: Services,
    *,
    metrics: Metrics | None,
    barrier: Barrier,
    read_streams: consistency.StreamsOf,
    max_request_bytes: int,
    limiter: RateLimiter,
) -> web.Application:
    site_name = services.config.server.site

    @web.middleware
    async def matrix_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return web.Response(status=204, headers=CORS_HEADERS)
        # The front door's health checks must never be throttled into "unhealthy".
        wait = (
            0.0
            if limiter.rate <= 0 or request.path == "/_outlast/health"
            else limiter.check(client_key(request))
        )
        if wait > 0:
            return _error(
                429,
                "M_LIMIT_EXCEEDED",
                "too many requests",
                headers={"Retry-After": str(int(wait) + 1)},
                extra={"retry_after_ms": int(wait * 1000) + 1},
            )
        try:
            response = await handler(request)
        except MatrixError as exc:
            return _error(exc.status, exc.errcode, exc.error, exc.headers, exc.extra)
        except LogUnavailable as exc:
            # The one place an engine outage becomes an answer: nothing was committed.
            down = log_unavailable(exc)
            return _error(down.status, down.errcode, down.error, down.headers, down.extra)
        except web.HTTPRequestEntityTooLarge:
            return _error(
                413, "M_TOO_LARGE", f"request body is larger than {max_request_bytes} bytes"
            )
        except web.HTTPNotFound:
            return _error(404, "M_UNRECOGNIZED", "unrecognized request")
        except web.HTTPMethodNotAllowed:
            return _error(405, "M_UNRECOGNIZED", "method not allowed on this endpoint")
        except web.HTTPException as exc:
            if exc.status >= 400:
                return _error(exc.status, "M_UNKNOWN", exc.reason)
            raise
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return _error(500, "M_UNKNOWN", "internal error")
        for name, value in CORS_HEADERS.items():
            response.headers.setdefault(name, value)
        # Which site answered: drills chart acknowledged writes per site with it.
        response.headers["X-Outlast-Site"] = site_name
        return response

    app = web.Application(client_max_size=max_request_bytes, middlewares=[matrix_errors])
    app[SERVICES] = services
    if metrics is not None:
        install_metrics(app, metrics)  # request counts and latencies, outermost
    # Innermost: read routes wait for a current view.
    consistency.install(app, barrier, read_streams)
    # aiohttp tries the routes under one path prefix in the order they were
    # added; sending is by far the most frequent of the two dozen under /rooms.
    for group in ROUTE_GROUPS:
        group.mount(app.router, lambda path: path in HOT_PATHS)
    for group in ROUTE_GROUPS:
        group.mount(app.router, lambda path: path not in HOT_PATHS)
    return app
