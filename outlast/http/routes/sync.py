"""/sync, /messages and filters: the read side of rooms."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from outlast.core import ids
from outlast.core.errors import MatrixError
from outlast.core.tokens import SyncToken, parse_boundary, parse_sync_token
from outlast.http.request import (
    REQUESTER_KEY,
    json_body,
    ok,
    parse_json,
    query_bool,
    query_event_filter,
    query_int,
    requester,
    require_self,
)
from outlast.http.routing import Routes
from outlast.log.client import LogUnavailable

routes = Routes()


@routes.get("/sync")
async def sync(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/sync"""
    who = await requester(request)
    services = request.app[REQUESTER_KEY]
    since_raw = request.query.get("since")
    since = parse_sync_token(since_raw, len(services.ctx.stream_names)) if since_raw else None
    if since is not None:
        await _refuse_future_token(services, since)
        await services.ctx.reach(since.positions)
    raw_filter = request.query.get("filter")
    if raw_filter is not None and raw_filter.lstrip().startswith("{"):
        raw_filter = parse_json(raw_filter, "filter")  # inline JSON rather than a filter id
    sync_filter = await services.filters.resolve(who.user_id, raw_filter)
    body = await services.sync.sync(
        who,
        since,
        sync_filter,
        full_state=query_bool(request, "full_state"),
        timeout_ms=query_int(request, "timeout", 0, high=10**9),
    )
    return ok(body)


async def _refuse_future_token(services: Any, since: SyncToken) -> None:
    """A position beyond the log's end was never issued by any site: 400 M_INVALID_PARAM.

    Answering it at once would hand the token back and leave the client polling
    in a tight loop forever; waiting would park it until the log happens to get
    there. A position the log has but this view has not yet applied (a token
    from a site that is ahead) is fine: the caller waits for it.

    Only a site that reaches a quorum can tell: cut off from the others, its
    node's idea of a stream's end may be stale (an old leader), and a token
    from the majority is legitimately ahead of it. Such a site keeps the usual
    bounded wait and answers a token no older than the one it was given."""
    ctx = services.ctx
    checked = False
    for name, seq in zip(ctx.stream_names, since.positions, strict=True):
        if seq > ctx.positions.applied(name):
            if not checked:
                checked = True
                if not (await services.health()).get("ready"):
                    return
            try:
                last = await ctx.log.last_seq(name)
            except LogUnavailable:
                return  # cannot tell now; the usual wait for the position applies
            if seq > last:
                raise MatrixError(400, "M_INVALID_PARAM", "since is beyond this server's log")


@routes.get("/rooms/{room_id}/messages")
async def messages(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/rooms/{roomId}/messages"""
    who = await requester(request)
    services = request.app[REQUESTER_KEY]
    room_id = request.match_info["room_id"]
    if not ids.is_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "not a room id")
    direction = request.query.get("dir", "b")
    if direction not in ("b", "f"):
        raise MatrixError(400, "M_INVALID_PARAM", "dir must be b or f")
    stream = services.messages.room_stream(room_id)
    stream_index = services.ctx.stream_names.index(stream)

    def boundary(token: str) -> tuple[int, int]:
        if token.startswith("s"):
            sync_token = parse_sync_token(token, len(services.ctx.stream_names))
            return parse_boundary(token, sync_token.positions[stream_index])
        return parse_boundary(token)

    raw_from = request.query.get("from")
    start = boundary(raw_from) if raw_from else None
    if start is not None:
        await services.ctx.positions.wait_for(stream, start[0] - 1, 5.0)
    if start is None and direction == "b":
        start = (services.ctx.positions.applied(stream) + 1, 0)
    raw_to = request.query.get("to")
    end = boundary(raw_to) if raw_to else None
    event_filter = query_event_filter(request)
    limit = query_int(request, "limit", 10, high=1000)
    if event_filter.limit is not None:
        limit = min(limit, event_filter.limit)
    body = services.messages.page(who, room_id, start, end, direction == "b", limit, event_filter)
    return ok(body)


@routes.post("/user/{user_id}/filter")
async def upload_filter(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/user/{userId}/filter"""
    who = await requester(request)
    require_self(who, request.match_info["user_id"])
    body = await json_body(request)
    filter_id = await request.app[REQUESTER_KEY].filters.upload(who.user_id, body)
    return ok({"filter_id": filter_id})


@routes.get("/user/{user_id}/filter/{filter_id}")
async def get_filter(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/user/{userId}/filter/{filterId}"""
    who = await requester(request)
    require_self(who, request.match_info["user_id"])
    return ok(
        await request.app[REQUESTER_KEY].filters.get(who.user_id, request.match_info["filter_id"])
    )
