"""/sync, /messages and filters: the read side of rooms."""

from __future__ import annotations

from aiohttp import web

from outlast.core import ids
from outlast.core.errors import MatrixError
from outlast.http.request import (
    json_body,
    ok,
    parse_json,
    query_bool,
    query_event_filter,
    query_int,
    requester,
    require_self,
    services,
)
from outlast.http.routing import Routes

routes = Routes()


@routes.get("/sync")
async def sync(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/sync"""
    who = await requester(request)
    svc = services(request)
    since = await svc.sync.since(request.query.get("since"))
    raw_filter = request.query.get("filter")
    if raw_filter is not None and raw_filter.lstrip().startswith("{"):
        raw_filter = parse_json(raw_filter, "filter")  # inline JSON rather than a filter id
    sync_filter = await svc.filters.resolve(who.user_id, raw_filter)
    await svc.presence.on_sync(who, request.query.get("set_presence"))
    body = await svc.sync.sync(
        who,
        since,
        sync_filter,
        full_state=query_bool(request, "full_state"),
        timeout_ms=query_int(request, "timeout", 0, high=10**9),
    )
    return ok(body)


@routes.get("/rooms/{room_id}/messages")
async def messages(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/rooms/{roomId}/messages"""
    who = await requester(request)
    svc = services(request)
    room_id = request.match_info["room_id"]
    if not ids.is_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "not a room id")
    direction = request.query.get("dir", "b")
    if direction not in ("b", "f"):
        raise MatrixError(400, "M_INVALID_PARAM", "dir must be b or f")
    raw_from, raw_to = request.query.get("from"), request.query.get("to")
    start = svc.messages.boundary(room_id, raw_from) if raw_from else None
    end = svc.messages.boundary(room_id, raw_to) if raw_to else None
    event_filter = query_event_filter(request)
    limit = query_int(request, "limit", 10, high=1000)
    if event_filter.limit is not None:
        limit = min(limit, event_filter.limit)
    body = await svc.messages.history(
        who, room_id, start, end, direction == "b", limit, event_filter
    )
    return ok(body)


@routes.post("/user/{user_id}/filter")
async def upload_filter(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/user/{userId}/filter"""
    who = await requester(request)
    require_self(who, request.match_info["user_id"])
    body = await json_body(request)
    filter_id = await services(request).filters.upload(who.user_id, body)
    return ok({"filter_id": filter_id})


@routes.get("/user/{user_id}/filter/{filter_id}")
async def get_filter(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/user/{userId}/filter/{filterId}"""
    who = await requester(request)
    require_self(who, request.match_info["user_id"])
    return ok(await services(request).filters.get(who.user_id, request.match_info["filter_id"]))
