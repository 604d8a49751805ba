"""Profiles: display names, avatars and custom fields."""

from __future__ import annotations

from aiohttp import web

from outlast.http.request import json_body, ok, requester, services
from outlast.http.routing import Routes
from outlast.profiles.service import Profiles

routes = Routes()


def _profiles(request: web.Request) -> Profiles:
    return services(request).profiles


@routes.get("/profile/{user_id}")
async def get_profile(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/profile/{userId} — public, like the reference servers."""
    return ok(await _profiles(request).get(request.match_info["user_id"]))


@routes.get("/profile/{user_id}/{key}")
async def get_field(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/profile/{userId}/{keyName}"""
    info = request.match_info
    return ok(await _profiles(request).get_field(info["user_id"], info["key"]))


@routes.put("/profile/{user_id}/{key}")
async def put_field(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/profile/{userId}/{keyName}"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    info = request.match_info
    await _profiles(request).set_field(who, info["user_id"], info["key"], body)
    return ok()


@routes.delete("/profile/{user_id}/{key}")
async def delete_field(request: web.Request) -> web.Response:
    """DELETE /_matrix/client/v3/profile/{userId}/{keyName}"""
    who = await requester(request)
    info = request.match_info
    await _profiles(request).delete_field(who, info["user_id"], info["key"])
    return ok()
