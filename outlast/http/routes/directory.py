"""Aliases, the public room directory, the user directory and space hierarchies."""

from __future__ import annotations

from aiohttp import web

from outlast.core import ids
from outlast.core.errors import MatrixError, bad_json
from outlast.directory.service import Directory
from outlast.http.request import json_body, ok, requester, services
from outlast.http.routing import Routes

routes = Routes()


def _directory(request: web.Request) -> Directory:
    return services(request).directory


def _room_id(request: web.Request) -> str:
    room_id = request.match_info["room_id"]
    if not ids.is_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "not a room id")
    return room_id


@routes.get("/directory/room/{alias}")
async def resolve_alias(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/directory/room/{roomAlias}"""
    return ok(await _directory(request).resolve(request.match_info["alias"]))


@routes.put("/directory/room/{alias}")
async def put_alias(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/directory/room/{roomAlias}"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    await _directory(request).put_alias(who, request.match_info["alias"], body.get("room_id"))
    return ok()


@routes.delete("/directory/room/{alias}")
async def delete_alias(request: web.Request) -> web.Response:
    """DELETE /_matrix/client/v3/directory/room/{roomAlias}"""
    who = await requester(request)
    await _directory(request).delete_alias(who, request.match_info["alias"])
    return ok()


@routes.get("/rooms/{room_id}/aliases")
async def room_aliases(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/rooms/{roomId}/aliases"""
    who = await requester(request)
    return ok({"aliases": _directory(request).room_aliases(who, _room_id(request))})


@routes.get("/directory/list/room/{room_id}")
async def get_visibility(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/directory/list/room/{roomId}"""
    return ok({"visibility": _directory(request).visibility(_room_id(request))})


@routes.put("/directory/list/room/{room_id}")
async def put_visibility(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/directory/list/room/{roomId}"""
    who = await requester(request)
    body = await json_body(request)
    await _directory(request).set_visibility(who, _room_id(request), body.get("visibility"))
    return ok()


@routes.get("/publicRooms")
async def public_rooms(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/publicRooms — readable without logging in."""
    query = request.query
    return ok(
        _directory(request).public_rooms(
            query.get("limit"), query.get("since"), None, None, query.get("server")
        )
    )


@routes.post("/publicRooms")
async def search_public_rooms(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/publicRooms"""
    await requester(request)
    body = await json_body(request)
    room_filter = body.get("filter") or {}
    if not isinstance(room_filter, dict):
        raise bad_json("filter must be an object")
    return ok(
        _directory(request).public_rooms(
            body.get("limit"),
            body.get("since"),
            room_filter.get("generic_search_term"),
            room_filter.get("room_types"),
            request.query.get("server"),
        )
    )


@routes.post("/user_directory/search")
async def search_users(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/user_directory/search"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    return ok(_directory(request).search_users(who, body.get("search_term"), body.get("limit")))


@routes.get("/rooms/{room_id}/hierarchy", prefixes=("/_matrix/client/v1",))
async def space_hierarchy(request: web.Request) -> web.Response:
    """GET /_matrix/client/v1/rooms/{roomId}/hierarchy"""
    who = await requester(request)
    body = services(request).hierarchy.hierarchy(who.user_id, _room_id(request), request.query)
    return ok(body)
