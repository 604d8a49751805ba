"""The aiohttp application: middlewares that turn every failure into Matrix JSON."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from outlast.core.errors import MatrixError, log_unavailable
from outlast.http import consistency
from outlast.http.limits import LIMITS_KEY, RateLimits, address_key
from outlast.http.metrics import Metrics
from outlast.http.metrics import install as install_metrics
from outlast.http.request import CORS_HEADERS, SERVICES, presented_token, requester
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
    relations,
    room_keys,
    rooms,
    sliding_sync,
    sync,
    webchat,
)
from outlast.http.routing import Routes
from outlast.http.versions import VERSIONS_KEY
from outlast.http.versions import body as versions_body
from outlast.log.client import LogUnavailable
from outlast.services import Services
from outlast.view.barrier import Barrier

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HEALTH_PATH = "/_outlast/health"
HOT_PATHS = frozenset({"/rooms/{room_id}/send/{event_type}/{txn_id}"})

ROUTE_GROUPS: list[Routes] = [
    meta.routes,
    account.routes,
    rooms.routes,
    sync.routes,
    sliding_sync.routes,
    receipts.routes,
    profile.routes,
    directory.routes,
    account_data.routes,
    redact.routes,
    relations.routes,
    devices.routes,
    room_keys.routes,
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


async def _admit(request: web.Request, limits: RateLimits) -> None:
    """Count the request against its account (token resolves) or its address (anything else)."""
    if not limits.enabled or request.path == HEALTH_PATH:
        return  # the front door's health checks must never be throttled into "unhealthy"
    key = address_key(limits.address(request))
    if presented_token(request) is not None:
        # An unknown token counts against the address; the handler answers 401.
        with contextlib.suppress(MatrixError):
            key = "u" + (await requester(request)).user_id
    limits.check_request(key)


def build_app(
    services: Services,
    *,
    metrics: Metrics | None,
    barrier: Barrier,
    read_streams: consistency.StreamsOf,
    max_request_bytes: int,
    limits: RateLimits,
) -> web.Application:
    site_name = services.config.server.site

    @web.middleware
    async def matrix_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return web.Response(status=204, headers=CORS_HEADERS)
        try:
            consistency.stamp_arrival(request, barrier.clock)
            await _admit(request, limits)
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
        except ConnectionError as exc:
            # The client went away mid-request (often mid-body): nothing to answer,
            # and nothing worth a traceback that any client could flood the log with.
            log.warning(
                "client %s disconnected during %s %s: %s",
                request.remote,
                request.method,
                request.path[:200],
                type(exc).__name__,
            )
            return _error(400, "M_UNKNOWN", "connection closed by the client")
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
    app[LIMITS_KEY] = limits
    app[VERSIONS_KEY] = versions_body(ROUTE_GROUPS)
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
