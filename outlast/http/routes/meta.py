"""Discovery and health: versions, well-known, capabilities, the site's readiness."""

from __future__ import annotations

from aiohttp import web

from outlast.core import room_versions
from outlast.core.errors import MatrixError
from outlast.http.request import ok, requester, services
from outlast.http.routing import Routes
from outlast.http.versions import VERSIONS_KEY

routes = Routes()


@routes.get("/_matrix/client/versions", prefixes=("",))
async def versions(request: web.Request) -> web.Response:
    """GET /_matrix/client/versions — derived from the route table (outlast/http/versions.py)"""
    return ok(request.app[VERSIONS_KEY])


@routes.get("/.well-known/matrix/client", prefixes=("",))
async def well_known(request: web.Request) -> web.Response:
    """GET /.well-known/matrix/client

    Only an operator-configured ``server.public_baseurl`` is advertised. Without
    one the answer is 404, which the spec's discovery treats as "no well-known"
    (the client keeps the URL it was given); echoing the request's Host header
    would let anyone who can put a Host header in front of a cache point
    clients at a server of their choosing."""
    config = services(request).config
    if not config.server.public_baseurl:
        raise MatrixError(404, "M_NOT_FOUND", "no client discovery information is configured")
    return ok({"m.homeserver": {"base_url": config.server.public_baseurl.rstrip("/")}})


@routes.get("/capabilities")
async def capabilities(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/capabilities"""
    await requester(request)
    return ok(
        {
            "capabilities": {
                "m.change_password": {"enabled": True},
                "m.room_versions": room_versions.capability(),
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
