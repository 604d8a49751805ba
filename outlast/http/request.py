"""Request parsing shared by every handler: JSON bodies, tokens, query parameters."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from outlast.core.errors import MatrixError
from outlast.service.accounts import Requester

REQUESTER_KEY: web.AppKey[Any] = web.AppKey("services", object)


def _no_constants(value: str) -> Any:
    raise ValueError(f"{value} is not valid JSON")


async def json_body(request: web.Request, *, allow_empty: bool = True) -> dict[str, Any]:
    """The request body as a JSON object; M_NOT_JSON / M_BAD_JSON otherwise."""
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise MatrixError(400, "M_NOT_JSON", "request body must be JSON")
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MatrixError(400, "M_NOT_JSON", "request body is not valid JSON") from None
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
    services = request.app[REQUESTER_KEY]
    who: Requester = await services.accounts.authenticate(access_token(request))
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


def query_bool(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() in ("true", "1")


def ok(body: Any = None, status: int = 200) -> web.Response:
    return web.json_response({} if body is None else body, status=status)


def require_self(who: Requester, user_id: str) -> None:
    if who.user_id != user_id:
        raise MatrixError(403, "M_FORBIDDEN", "you can only act on your own account")
