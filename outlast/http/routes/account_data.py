"""Account data (global and per room) and room tags."""

from __future__ import annotations

from aiohttp import web

from outlast.account_data.service import AccountData
from outlast.http.request import json_body, ok, requester, services
from outlast.http.routing import Routes

routes = Routes()


def _data(request: web.Request) -> AccountData:
    return services(request).account_data


@routes.get("/user/{user_id}/account_data/{type}")
async def get_global(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/user/{userId}/account_data/{type}"""
    who = await requester(request)
    info = request.match_info
    return ok(_data(request).get(who, info["user_id"], None, info["type"]))


@routes.put("/user/{user_id}/account_data/{type}")
async def put_global(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/user/{userId}/account_data/{type}"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    info = request.match_info
    await _data(request).put(who, info["user_id"], None, info["type"], body)
    return ok()


@routes.get("/user/{user_id}/rooms/{room_id}/account_data/{type}")
async def get_room(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}"""
    who = await requester(request)
    info = request.match_info
    return ok(_data(request).get(who, info["user_id"], info["room_id"], info["type"]))


@routes.put("/user/{user_id}/rooms/{room_id}/account_data/{type}")
async def put_room(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    info = request.match_info
    await _data(request).put(who, info["user_id"], info["room_id"], info["type"], body)
    return ok()


@routes.get("/user/{user_id}/rooms/{room_id}/tags")
async def get_tags(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags"""
    who = await requester(request)
    info = request.match_info
    return ok(_data(request).tags(who, info["user_id"], info["room_id"]))


@routes.put("/user/{user_id}/rooms/{room_id}/tags/{tag}")
async def put_tag(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}"""
    who = await requester(request)
    body = await json_body(request)
    info = request.match_info
    await _data(request).set_tag(who, info["user_id"], info["room_id"], info["tag"], body)
    return ok()


@routes.delete("/user/{user_id}/rooms/{room_id}/tags/{tag}")
async def delete_tag(request: web.Request) -> web.Response:
    """DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}"""
    who = await requester(request)
    info = request.match_info
    await _data(request).delete_tag(who, info["user_id"], info["room_id"], info["tag"])
    return ok()
