"""Server-side key backup: versions and the encrypted session keys in them."""

from __future__ import annotations

from aiohttp import web

from outlast.http.request import json_body, ok, requester, services
from outlast.http.routing import Routes
from outlast.room_keys.service import RoomKeys

routes = Routes()


def _keys(request: web.Request) -> RoomKeys:
    return services(request).room_keys


@routes.post("/room_keys/version")
async def create_version(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/room_keys/version"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    return ok(await _keys(request).create_version(who, body))


@routes.get("/room_keys/version")
async def current_version(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/room_keys/version"""
    who = await requester(request)
    return ok(_keys(request).version(who, None))


@routes.get("/room_keys/version/{version}")
async def get_version(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/room_keys/version/{version}"""
    who = await requester(request)
    return ok(_keys(request).version(who, request.match_info["version"]))


@routes.put("/room_keys/version/{version}")
async def update_version(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/room_keys/version/{version}"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    await _keys(request).update_version(who, request.match_info["version"], body)
    return ok()


@routes.delete("/room_keys/version/{version}")
async def delete_version(request: web.Request) -> web.Response:
    """DELETE /_matrix/client/v3/room_keys/version/{version}"""
    who = await requester(request)
    await _keys(request).delete_version(who, request.match_info["version"])
    return ok()


def _where(request: web.Request) -> tuple[str | None, str | None]:
    info = request.match_info
    return info.get("room_id"), info.get("session_id")


async def get_keys(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]"""
    who = await requester(request)
    room_id, session_id = _where(request)
    version = request.query.get("version")
    return ok(_keys(request).keys(who, version, room_id, session_id))


async def put_keys(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    room_id, session_id = _where(request)
    version = request.query.get("version")
    return ok(await _keys(request).put_keys(who, version, body, room_id, session_id))


async def delete_keys(request: web.Request) -> web.Response:
    """DELETE /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]"""
    who = await requester(request)
    room_id, session_id = _where(request)
    version = request.query.get("version")
    return ok(await _keys(request).delete_keys(who, version, room_id, session_id))


for _path in (
    "/room_keys/keys",
    "/room_keys/keys/{room_id}",
    "/room_keys/keys/{room_id}/{session_id}",
):
    routes.get(_path)(get_keys)
    routes.put(_path)(put_keys)
    routes.delete(_path)(delete_keys)
