"""Event relationships: child events of an event, and a room's threads."""

from __future__ import annotations

from aiohttp import web

from outlast.core import ids
from outlast.core.errors import MatrixError
from outlast.http.request import ok, requester, services
from outlast.http.routing import Routes

routes = Routes()
V1 = ("/_matrix/client/v1",)


def _room_id(request: web.Request) -> str:
    room_id = request.match_info["room_id"]
    if not ids.is_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "not a room id")
    return room_id


async def _relations(request: web.Request) -> web.Response:
    who = await requester(request)
    body = await services(request).relations.relations(
        who,
        _room_id(request),
        request.match_info["event_id"],
        request.match_info.get("rel_type"),
        request.match_info.get("event_type"),
        request.query,
    )
    return ok(body)


@routes.get("/rooms/{room_id}/relations/{event_id}", prefixes=V1)
async def relations(request: web.Request) -> web.Response:
    """GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}"""
    return await _relations(request)


@routes.get("/rooms/{room_id}/relations/{event_id}/{rel_type}", prefixes=V1)
async def relations_of_type(request: web.Request) -> web.Response:
    """GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}"""
    return await _relations(request)


@routes.get("/rooms/{room_id}/relations/{event_id}/{rel_type}/{event_type}", prefixes=V1)
async def relations_of_type_and_event_type(request: web.Request) -> web.Response:
    """GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}"""
    return await _relations(request)


@routes.get("/rooms/{room_id}/threads", prefixes=V1)
async def threads(request: web.Request) -> web.Response:
    """GET /_matrix/client/v1/rooms/{roomId}/threads"""
    who = await requester(request)
    return ok(await services(request).relations.threads(who, _room_id(request), request.query))
