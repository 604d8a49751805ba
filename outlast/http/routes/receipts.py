"""Read state: receipts, read markers, typing and presence."""

from __future__ import annotations

from aiohttp import web

from outlast.core import ids
from outlast.core.errors import MatrixError
from outlast.http.request import json_body, ok, requester, services
from outlast.http.routing import Routes

routes = Routes()


def _room_id(request: web.Request) -> str:
    room_id = request.match_info["room_id"]
    if not ids.is_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "not a room id")
    return room_id


@routes.post("/rooms/{room_id}/receipt/{receipt_type}/{event_id}")
async def receipt(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}"""
    who = await requester(request)
    body = await json_body(request)
    await services(request).receipts.receipt(
        who,
        _room_id(request),
        request.match_info["receipt_type"],
        request.match_info["event_id"],
        body,
    )
    return ok()


@routes.post("/rooms/{room_id}/read_markers")
async def read_markers(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/rooms/{roomId}/read_markers"""
    who = await requester(request)
    body = await json_body(request)
    await services(request).receipts.read_markers(who, _room_id(request), body)
    return ok()


@routes.put("/rooms/{room_id}/typing/{user_id}")
async def typing(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    await services(request).typing.set_typing(
        who, _room_id(request), request.match_info["user_id"], body
    )
    return ok()


@routes.get("/presence/{user_id}/status")
async def get_presence(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/presence/{userId}/status"""
    who = await requester(request)
    return ok(services(request).presence.status(who, request.match_info["user_id"]))


@routes.put("/presence/{user_id}/status")
async def put_presence(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/presence/{userId}/status"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    await services(request).presence.set_status(who, request.match_info["user_id"], body)
    return ok()
