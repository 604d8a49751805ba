"""HTTP handlers for the admin pages: the site dashboard, its status API, metrics.

- ``GET /_outlast/dashboard``: the static page (outlast/web/dashboard), served
  by every site under a strict Content-Security-Policy (no inline code, no
  other origins). It logs in with the Matrix login API.
- ``GET /_outlast/admin/whoami``: who the access token belongs to and whether
  they are a server administrator.
- ``GET /_outlast/admin/status``: the dashboard's data (administrators only,
  403 ``M_FORBIDDEN`` otherwise), see outlast/ops/dashboard.py.
- ``GET /_outlast/metrics``: Prometheus text (``[metrics] enabled``).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from outlast.core.errors import MatrixError
from outlast.http.metrics import CONTENT_TYPE, METRICS_KEY
from outlast.http.request import ok, requester, services
from outlast.http.routing import Routes

routes = Routes()

OUTLAST = ("/_outlast",)
DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "web" / "dashboard"
ASSETS = {
    "index.html": "text/html",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "icon.svg": "image/svg+xml",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def _asset(name: str) -> web.Response:
    content_type = ASSETS.get(name)
    path = DASHBOARD_DIR / name
    if content_type is None or not path.is_file():
        raise MatrixError(404, "M_NOT_FOUND", "no such dashboard file")
    return web.Response(
        body=path.read_bytes(), content_type=content_type, charset="utf-8", headers=PAGE_HEADERS
    )


@routes.get("/dashboard", prefixes=OUTLAST)
async def dashboard_page(request: web.Request) -> web.Response:
    """GET /_outlast/dashboard — the site dashboard."""
    return _asset("index.html")


@routes.get("/dashboard/", prefixes=OUTLAST)
async def dashboard_page_slash(request: web.Request) -> web.Response:
    return _asset("index.html")


@routes.get("/dashboard/{name}", prefixes=OUTLAST)
async def dashboard_asset(request: web.Request) -> web.Response:
    """GET /_outlast/dashboard/dashboard.js and dashboard.css."""
    return _asset(request.match_info["name"])


@routes.get("/admin/whoami", prefixes=OUTLAST)
async def whoami(request: web.Request) -> web.Response:
    """GET /_outlast/admin/whoami — {user_id, admin, site} for any valid token."""
    who = await requester(request)
    svc = services(request)
    admins = svc.admins
    return ok(
        {
            "user_id": who.user_id,
            "admin": admins.is_admin(who.user_id),
            "site": svc.config.server.site,
        }
    )


@routes.get("/admin/status", prefixes=OUTLAST)
async def status(request: web.Request) -> web.Response:
    """GET /_outlast/admin/status — every site, node, stream leader and drill."""
    who = await requester(request)
    svc = services(request)
    svc.admins.require(who.user_id)
    body = await svc.dashboard.status()
    return web.json_response(body, headers={"Cache-Control": "no-store"})


@routes.get("/metrics", prefixes=OUTLAST)
async def metrics(request: web.Request) -> web.Response:
    """GET /_outlast/metrics — Prometheus text exposition of this worker."""
    collected = request.app.get(METRICS_KEY)
    if collected is None:
        raise MatrixError(404, "M_UNRECOGNIZED", "metrics are turned off ([metrics] enabled)")
    body = await collected.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
