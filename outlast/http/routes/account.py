"""Registration, login, logout, whoami, password change and deactivation."""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

from aiohttp import web

from outlast.core import ids, refresh
from outlast.core.errors import MatrixError, bad_json
from outlast.http.consistency import arrived_at
from outlast.http.limits import LIMITS_KEY
from outlast.http.request import json_body, ok, requester, services
from outlast.http.routing import Routes
from outlast.log.client import LogUnavailable

routes = Routes()

LOGIN_FLOWS = {"flows": [{"type": "m.login.password"}]}


def _uia(stage: str, session: Any = None, error: str | None = None) -> MatrixError:
    """A 401 UIA challenge; with ``error``, a failed attempt the client may retry."""
    session = session if isinstance(session, str) and session else None
    return MatrixError(
        401,
        "M_FORBIDDEN" if session or error else "M_UNAUTHORIZED",
        error or "additional authentication is required",
        extra={
            "flows": [{"stages": [stage]}],
            "params": {},
            "session": session or secrets.token_urlsafe(16),
            "completed": [],
        },
    )


@routes.post("/register")
async def register(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/register"""
    svc = services(request)
    body = await json_body(request)
    kind = request.query.get("kind", "user")
    if kind != "user":
        raise MatrixError(403, "M_FORBIDDEN", "guest access is not enabled")
    if not svc.config.registration.enabled:
        raise MatrixError(403, "M_FORBIDDEN", "registration is disabled on this server")
    auth = body.get("auth")
    if auth is None:
        raise _uia("m.login.dummy")
    if not isinstance(auth, dict) or auth.get("type") not in ("m.login.dummy", None):
        raise _uia("m.login.dummy", auth.get("session") if isinstance(auth, dict) else None)
    username = body.get("username")
    if username is not None and not isinstance(username, str):
        raise bad_json("username must be a string")
    if body.get("password") is None:
        # An account without a password could never log in (there is no other way
        # in: no SSO, no application services), so refuse to create it.
        raise MatrixError(400, "M_MISSING_PARAM", "password is required")
    request.app[LIMITS_KEY].check_registration(request)
    inhibit = body.get("inhibit_login", False)
    result = await svc.accounts.register(
        username.lower() if username else None,
        body.get("password"),
        device_id=body.get("device_id"),
        display_name=body.get("initial_device_display_name"),
        inhibit_login=bool(inhibit),
        refreshable=refresh.wants_refresh(body),
    )
    return ok(result)


@routes.get("/register/available")
async def available(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/register/available"""
    svc = services(request)
    name = request.query.get("username", "")
    await svc.accounts.available(name.lower() if name else name)
    return ok({"available": True})


@routes.get("/register/m.login.registration_token/validity", prefixes=("/_matrix/client/v1",))
async def registration_token_validity(request: web.Request) -> web.Response:
    """GET /_matrix/client/v1/register/m.login.registration_token/validity

    Outlast offers no ``m.login.registration_token`` stage, so no token is one
    it recognises: the spec's answer is ``valid: false`` while registration is
    open, and 403 when it is closed (every token is then invalid). Guessing is
    pointless, and the general per-address rate limit still applies.
    """
    if not services(request).config.registration.enabled:
        raise MatrixError(403, "M_FORBIDDEN", "registration is disabled on this server")
    token = request.query.get("token")
    if token is None:
        raise MatrixError(400, "M_MISSING_PARAM", "token is required")
    return ok({"valid": False})


@routes.get("/login")
async def login_flows(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/login"""
    return ok(LOGIN_FLOWS)


def _login_user(body: dict[str, Any], server_name: str) -> str:
    identifier = body.get("identifier")
    name: Any = None
    if isinstance(identifier, dict):
        if identifier.get("type") != "m.id.user":
            raise MatrixError(400, "M_UNKNOWN", "only m.id.user identifiers are supported")
        name = identifier.get("user")
    elif identifier is None:
        name = body.get("user")
    if not isinstance(name, str) or not name:
        raise bad_json("login needs identifier.user")
    return ids.user_id(ids.localpart_from_login(name, server_name), server_name)


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/login"""
    svc = services(request)
    body = await json_body(request)
    if body.get("type") != "m.login.password":
        raise MatrixError(400, "M_UNKNOWN", "unsupported login type")
    user_id = _login_user(body, svc.config.server.server_name)
    limits = request.app[LIMITS_KEY]
    limits.check_login(request, user_id)
    try:
        result = await svc.accounts.login(
            user_id,
            body.get("password"),
            device_id=body.get("device_id"),
            display_name=body.get("initial_device_display_name"),
            refreshable=refresh.wants_refresh(body),
        )
    except MatrixError as exc:
        if exc.status == 403:  # a wrong password (or no such user): count it
            limits.login_failed(request, user_id)
        raise
    limits.login_succeeded(request, user_id)
    return ok(result)


@routes.post("/refresh", prefixes=("/_matrix/client/v3", "/_matrix/client/v1"))
async def refresh_tokens(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/refresh (and v1, where v1.3 first put it)

    No access token: the expired one is what the client is replacing.
    """
    token = refresh.parse_refresh_body(await json_body(request))
    return ok(await services(request).accounts.refresh(token, arrived_at(request)))


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/logout"""
    who = await requester(request)
    await services(request).accounts.logout(who)
    return ok()


@routes.post("/logout/all")
async def logout_all(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/logout/all"""
    who = await requester(request)
    await services(request).accounts.logout_all(who)
    return ok()


@routes.get("/account/whoami")
async def whoami(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/account/whoami"""
    who = await requester(request)
    return ok({"user_id": who.user_id, "device_id": who.device_id, "is_guest": False})


async def _password_auth(request: web.Request, body: dict[str, Any], user_id: str) -> None:
    """User-interactive auth by password, for sensitive account changes."""
    auth = body.get("auth")
    if not isinstance(auth, dict):
        raise _uia("m.login.password")
    if auth.get("type") != "m.login.password":
        raise _uia("m.login.password", auth.get("session"))
    svc = services(request)
    claimed = (
        _login_user(auth, svc.config.server.server_name)
        if (auth.get("identifier") or auth.get("user"))
        else user_id
    )
    limits = request.app[LIMITS_KEY]
    limits.check_login(request, claimed)
    if not await svc.accounts.check_password(claimed, auth.get("password")):
        limits.login_failed(request, claimed)
        # Spec (UIA): a failed stage is a 401 with the flows again, so the client can retry.
        raise _uia("m.login.password", auth.get("session"), "Invalid password")
    limits.login_succeeded(request, claimed)
    if claimed != user_id:
        # Authenticated, but as someone else: no retry can help (Synapse's 403).
        raise MatrixError(403, "M_FORBIDDEN", "the authenticated user is not the requester")


@routes.post("/account/password")
async def change_password(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/account/password"""
    who = await requester(request)
    body = await json_body(request)
    await _password_auth(request, body, who.user_id)
    logout_devices = body.get("logout_devices", True)
    await services(request).accounts.change_password(
        who, body.get("new_password"), bool(logout_devices)
    )
    return ok()


@routes.post("/account/deactivate")
async def deactivate(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/account/deactivate"""
    who = await requester(request)
    body = await json_body(request)
    await _password_auth(request, body, who.user_id)
    svc = services(request)
    for room_id in svc.memberships.joined_rooms(who.user_id):
        # Leaving is best effort; the account is deactivated regardless.
        with contextlib.suppress(MatrixError, LogUnavailable):
            await svc.memberships.leave(who.user_id, room_id)
    await svc.accounts.deactivate(who.user_id)
    return ok({"id_server_unbind_result": "no-support"})


@routes.post("/user/{user_id}/openid/request_token")
async def openid_request_token(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/user/{userId}/openid/request_token"""
    who = await requester(request)
    await json_body(request)
    return ok(await services(request).openid.request_token(who, request.match_info["user_id"]))


@routes.get("/openid/userinfo", prefixes=("/_matrix/federation/v1",))
async def openid_userinfo(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/openid/userinfo — which user an OpenID token names
    (asked by third parties, so no client authentication)."""
    return ok(await services(request).openid.userinfo(request.query.get("access_token")))
