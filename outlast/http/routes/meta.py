"""Discovery and health: versions, well-known, capabilities, the site's readiness."""

from __future__ import annotations

from aiohttp import web

from outlast.http.request import ok, requester, services
from outlast.http.routing import Routes

routes = Routes()

SPEC_VERSIONS = [
    "r0.6.1",
    "v1.1",
    "v1.2",
    "v1.3",
    "v1.4",
    "v1.5",
    "v1.6",
    "v1.7",
    "v1.8",
    "v1.9",
    "v1.10",
    "v1.11",
]


@routes.get("/_matrix/client/versions", prefixes=("",))
async def versions(request: web.Request) -> web.Response:
    """GET /_matrix/client/versions"""
    return ok({"versions": SPEC_VERSIONS, "unstable_features": {}})


@routes.get("/.well-known/matrix/client", prefixes=("",))
async def well_known(request: web.Request) -> web.Response:
    """GET /.well-known/matrix/client"""
    config = services(request).config
    base = config.server.public_baseurl or f"http://{request.host}"
    return ok({"m.homeserver": {"base_url": base.rstrip("/")}})


@routes.get("/capabilities")
async def capabilities(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/capabilities"""
    await requester(request)
    return ok(
        {
            "capabilities": {
                "m.change_password": {"enabled": True},
                "m.room_versions": {"default": "11", "available": {"11": "stable"}},
                "m.set_displayname": {"enabled": True},
                "m.set_avatar_url": {"enabled": True},
                "m.3pid_changes": {"enabled": False},
            }
        }
    )


@routes.get("/health", prefixes=("/_outlast",))
async def health(request: web.Request) -> web.Response:
    """GET /_outlast/health — ready only when this site can commit and its view is current."""
    report = await services(request).health.report()
    return web.json_response(report, status=200 if report["ready"] else 503)
