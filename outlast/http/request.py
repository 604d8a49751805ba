"""Request parsing shared by every handler: JSON bodies, tokens, query parameters."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from aiohttp import web

from outlast.accounts.service import Requester
from outlast.core import jsonenc
from outlast.core.errors import MatrixError
from outlast.http.consistency import arrived_at
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


def parse_json(text: str) -> Any:
    """Parse a client's JSON: M_NOT_JSON if it is not JSON, M_BAD_JSON if it holds
    values that cannot round-trip (non-finite numbers, huge integers, lone surrogates)."""
    try:
        value = json.loads(
            text, parse_constant=_no_constants, parse_float=_finite_float, parse_int=_safe_int
        )
        if "\\u" in text:
            _check_strings(value)
    except _BadValue as exc:
        raise MatrixError(400, "M_BAD_JSON", f"request body: {exc}") from None
    except (ValueError, RecursionError):
        raise MatrixError(400, "M_NOT_JSON", "request body is not valid JSON") from None
    return value


async def json_body(request: web.Request, *, allow_empty: bool = True) -> dict[str, Any]:
    """The request body as a JSON object; M_NOT_JSON / M_BAD_JSON otherwise."""
    raw = await request.read()
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


def access_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    token = request.query.get("access_token", "")
    if token:
        return token
    raise MatrixError(401, "M_MISSING_TOKEN", "missing access token")


async def requester(request: web.Request) -> Requester:
    """Who is asking: the token checked against a view as current as the log at arrival."""
    return await services(request).accounts.authenticate(access_token(request), arrived_at(request))


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
