"""Redacting events."""

from __future__ import annotations

from aiohttp import web

from outlast.core import ids
from outlast.core.errors import MatrixError
from outlast.http.request import json_body, ok, room_writer, services
from outlast.http.routing import Routes
from outlast.rooms.redactions import Redactions

routes = Routes()


@routes.put("/rooms/{room_id}/redact/{event_id}/{txn_id}")
async def redact(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}"""
    who = await room_writer(request)
    body = await json_body(request)
    info = request.match_info
    if not ids.is_room_id(info["room_id"]):
        raise MatrixError(400, "M_INVALID_PARAM", "not a room id")
    service: Redactions = services(request).redactions
    event_id = await service.redact(who, info["room_id"], info["event_id"], info["txn_id"], body)
    return ok({"event_id": event_id})
