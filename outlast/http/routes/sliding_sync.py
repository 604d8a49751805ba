"""Simplified sliding sync (MSC4186) at the path Synapse serves it, where
Element X and matrix-js-sdk look for it."""

from __future__ import annotations

from aiohttp import web

from outlast.http.request import json_body, ok, requester, services
from outlast.http.routing import Routes

PREFIX = "/_matrix/client/unstable/org.matrix.simplified_msc3575"

routes = Routes()


@routes.post("/sync", prefixes=(PREFIX,))
async def sliding_sync(request: web.Request) -> web.Response:
    """POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync"""
    who = await requester(request)
    body = await json_body(request)
    return ok(await services(request).sliding_sync.sliding_sync(who, body, request.query))
