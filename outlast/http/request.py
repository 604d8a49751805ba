"""Request parsing shared by every handler: JSON bodies, tokens, query parameters."""

from __future__ import annotations

import asyncio
import json
import math
import re
from typing import Any

from aiohttp import web

from outlast.accounts.service import Requester, unknown_token
from outlast.core import jsonenc
from outlast.core.errors import MatrixError
from outlast.core.filters import EventFilter, parse_event_filter
from outlast.http.consistency import arrived_at
from outlast.http.limits import LIMITS_KEY
from outlast.services import Services

SERVICES: web.AppKey[Services] = web.AppKey("services", Services)

# Every answer carries these (the middleware adds them; a streamed answer, whose
# headers go out before the middleware sees it, adds them itself).
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Origin, X-Requested-With, Content-Type, Accept, Authorization",
}


def services(request: web.Request) -> Services:
    """The worker's services: every handler's one way to them (typed, so mypy checks each
    call a handler makes)."""
    return request.app[SERVICES]


# Canonical JSON (what events are hashed and signed as) allows integers in this range only.
MAX_SAFE_INT = 2**53 - 1
# No Matrix object comes close; a deeper one is an attack on recursive code.
MAX_JSON_DEPTH = 100
_SURROGATE = re.compile("[\ud800-\udfff]")


class _BadValue(ValueError):
    """Valid JSON syntax, but a value Outlast cannot store faithfully."""


def _no_constants(value: str) -> Any:
    raise ValueError(f"{value} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadValue("numbers must be finite")
    return value


def _safe_int(text: str) -> int:
    value = int(text)
    if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        raise _BadValue("integers must be within ±(2^53 - 1)")
    return value


def _check_strings(value: Any) -> None:
    """Lone surrogates (from ``\\ud800``-style escapes) are not text: refuse them.

    They could not be encoded as UTF-8 for the log later, so the request
    would fail half-way instead of at the door."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise _BadValue("strings must be valid Unicode (no lone surrogates)")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_depth(value: Any) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH: every later walk over the value
    (filters, redaction, encoders) can then recurse without running out of stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _BadValue(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))


def parse_json(text: str, what: str = "request body") -> Any:
    """Parse a client's JSON: M_NOT_JSON if it is not JSON, M_BAD_JSON if it holds
    values that cannot round-trip (non-finite numbers, huge integers, lone surrogates)
    or is nested deeper than MAX_JSON_DEPTH."""
    try:
        value = json.loads(
            text, parse_constant=_no_constants, parse_float=_finite_float, parse_int=_safe_int
        )
        if "\\u" in text:
            _check_strings(value)
        if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
            _check_depth(value)
    except _BadValue as exc:
        raise MatrixError(400, "M_BAD_JSON", f"{what}: {exc}") from None
    except (ValueError, RecursionError):
        raise MatrixError(400, "M_NOT_JSON", f"{what} is not valid JSON") from None
    return value


async def read_body(request: web.Request) -> bytes:
    """The whole (small) request body, within ``limits.body_timeout_seconds``.

    A body that stops arriving gets 408 and the connection is closed; one that
    cannot be decoded (a corrupt gzip or deflate ``Content-Encoding``) is a
    400, so nothing half-read is ever acted on."""
    try:
        async with asyncio.timeout(request.app[LIMITS_KEY].body_timeout):
            return await request.read()
    except TimeoutError:
        raise MatrixError(
            408,
            "M_UNKNOWN",
            "the request body did not arrive in time",
            headers={"Connection": "close"},
        ) from None
    except web.RequestPayloadError:
        raise MatrixError(
            400, "M_NOT_JSON", "the request body could not be decoded (Content-Encoding)"
        ) from None


async def json_body(request: web.Request, *, allow_empty: bool = True) -> dict[str, Any]:
    """The request body as a JSON object; M_NOT_JSON / M_BAD_JSON otherwise."""
    raw = await read_body(request)
    if not raw.strip():
        if allow_empty:
            return {}
        raise MatrixError(400, "M_NOT_JSON", "request body must be JSON")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MatrixError(400, "M_NOT_JSON", "request body is not UTF-8") from None
    value = parse_json(text)
    if not isinstance(value, dict):
        raise MatrixError(400, "M_BAD_JSON", "request body must be a JSON object")
    return value


# What the rate-limit middleware learnt about the request's token, so the
# handler does not resolve it twice: the requester, or the error to answer.
IDENTITY_KEY: web.RequestKey[Requester | MatrixError] = web.RequestKey("identity")
# Our tokens are URL-safe base64; anything else cannot be one of them.
_TOKEN_CHARS = re.compile(r"^[!-~]{1,512}$")


def presented_token(request: web.Request) -> str | None:
    """The access token the request carries (header first, then query), if any."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return request.query.get("access_token") or None


def access_token(request: web.Request) -> str:
    token = presented_token(request)
    if token is None:
        raise MatrixError(401, "M_MISSING_TOKEN", "missing access token")
    if not _TOKEN_CHARS.match(token):
        # Non-ASCII, control characters or absurd lengths: no token we issued.
        raise unknown_token()
    return token


async def requester(request: web.Request) -> Requester:
    """Authenticate the request's token (401 M_MISSING_TOKEN / M_UNKNOWN_TOKEN), once:
    the rate-limit middleware may have done it already. The token is checked against a
    view as current as the log at the request's arrival."""
    known = request.get(IDENTITY_KEY)
    if known is None:
        try:
            known = await services(request).accounts.authenticate(
                access_token(request), arrived_at(request)
            )
        except MatrixError as exc:
            known = exc
        else:
            limits = request.app.get(LIMITS_KEY)
            address = limits.address(request) if limits is not None else request.remote
            services(request).devices.seen(known.user_id, known.device_id, address)
        request[IDENTITY_KEY] = known
    if isinstance(known, MatrixError):
        raise known
    return known


async def room_writer(request: web.Request) -> Requester:
    """The requester of an event send (message, state, redaction): it also takes from the
    account's send budget (``limits.send_per_second``)."""
    who = await requester(request)
    request.app[LIMITS_KEY].check_send(who.user_id)
    return who


def query_int(
    request: web.Request, name: str, default: int, *, low: int = 0, high: int = 2**31
) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise MatrixError(400, "M_INVALID_PARAM", f"{name} must be an integer") from None
    return max(low, min(high, value))


def query_event_filter(request: web.Request) -> EventFilter:
    """The inline RoomEventFilter of ``/messages`` and ``/context`` (``?filter=``)."""
    raw = request.query.get("filter")
    return parse_event_filter(parse_json(raw, "filter")) if raw else EventFilter()


def query_bool(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() in ("true", "1")


def ok(body: Any = None, status: int = 200) -> web.Response:
    return web.Response(
        body=jsonenc.dumps({} if body is None else body),
        status=status,
        content_type="application/json",
    )


def require_self(who: Requester, user_id: str) -> None:
    if who.user_id != user_id:
        raise MatrixError(403, "M_FORBIDDEN", "you can only act on your own account")
