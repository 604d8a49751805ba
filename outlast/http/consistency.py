"""Which read routes wait for the read barrier, and on what (docs/consistency.md).

Every authenticated request waits for the users stream before its token is
checked (Accounts.authenticate): that alone makes reads of a user's own
account, devices, profile and account data current. Routes that read room
or directory data wait, before their handler runs, for those streams too.
The moment they wait from is when the request arrived, recorded here and
handed to authentication, so a route that waits for the users stream and
then authenticates asks the stream's leader once.

Every GET route must be listed, in ``READS`` or in ``NOT_VIEW_READS``;
tests/http/test_consistency.py checks that a new route cannot be forgotten.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from outlast.view.barrier import Barrier, Reads

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Which streams a read of some kind answers from (SiteContext.read_streams).
StreamsOf = Callable[[Reads, str | None], list[str]]

ARRIVED_KEY: web.RequestKey[float] = web.RequestKey("arrived", float)

# (method, path without its /_matrix/client/vN prefix) -> what the handler reads.
READS: dict[tuple[str, str], Reads] = {
    ("GET", "/sync"): Reads.EVERYTHING,
    ("POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"): Reads.EVERYTHING,
    ("GET", "/joined_rooms"): Reads.EVERYTHING,
    ("GET", "/notifications"): Reads.EVERYTHING,
    ("GET", "/keys/changes"): Reads.EVERYTHING,
    ("GET", "/publicRooms"): Reads.EVERYTHING,
    ("POST", "/publicRooms"): Reads.EVERYTHING,
    ("POST", "/user_directory/search"): Reads.EVERYTHING,
    ("GET", "/rooms/{room_id}/event/{event_id}"): Reads.ROOM,
    ("GET", "/rooms/{room_id}/context/{event_id}"): Reads.ROOM,
    ("GET", "/rooms/{room_id}/messages"): Reads.ROOM,
    ("GET", "/rooms/{room_id}/relations/{event_id}"): Reads.ROOM,
    ("GET", "/rooms/{room_id}/relations/{event_id}/{rel_type}"): Reads.ROOM,
    ("GET", "/rooms/{room_id}/relations/{event_id}/{rel_type}/{event_type}"): Reads.ROOM,
    ("GET", "/rooms/{room_id}/threads"): Reads.ROOM,
    # A space's children live in other rooms, on any partition.
    ("GET", "/rooms/{room_id}/hierarchy"): Reads.EVERYTHING,
    ("GET", "/rooms/{room_id}/state"): Reads.ROOM,
    ("GET", "/rooms/{room_id}/state/{event_type}"): Reads.ROOM,
    ("GET", "/rooms/{room_id}/state/{event_type}/{state_key}"): Reads.ROOM,
    ("GET", "/rooms/{room_id}/members"): Reads.ROOM,
    ("GET", "/rooms/{room_id}/joined_members"): Reads.ROOM,
    ("GET", "/rooms/{room_id}/aliases"): Reads.ROOM | Reads.DIRECTORY,
    ("GET", "/directory/list/room/{room_id}"): Reads.ROOM,
    ("GET", "/directory/room/{alias}"): Reads.DIRECTORY,
    # The users stream only; listed because they may be called without a token.
    ("GET", "/profile/{user_id}"): Reads.ACCOUNT,
    ("GET", "/profile/{user_id}/{key}"): Reads.ACCOUNT,
    ("GET", "/register/available"): Reads.ACCOUNT,
}

# GET routes that need nothing beyond authentication's wait on the users stream
# (or read nothing from the view at all).
NOT_VIEW_READS: frozenset[str] = frozenset(
    {
        "/_matrix/client/versions",
        "/.well-known/matrix/client",
        "/capabilities",
        "/login",
        "/register/m.login.registration_token/validity",
        "/account/whoami",
        "/devices",
        "/devices/{device_id}",
        "/user/{user_id}/account_data/{type}",
        "/user/{user_id}/rooms/{room_id}/account_data/{type}",
        "/user/{user_id}/rooms/{room_id}/tags",
        "/user/{user_id}/filter/{filter_id}",
        "/presence/{user_id}/status",
        "/pushrules/",
        "/pushrules",
        "/pushrules/{scope}/",
        "/pushrules/{scope}",
        "/pushrules/{scope}/{kind}/{rule_id}",
        "/pushrules/{scope}/{kind}/{rule_id}/{attr}",
        "/pushers",
        "/voip/turnServer",
        "/thirdparty/protocols",
        "/account/3pid",
        "/room_keys/version",
        "/_matrix/federation/v1/openid/userinfo",
        "/room_keys/version/{version}",
        "/room_keys/keys",
        "/room_keys/keys/{room_id}",
        "/room_keys/keys/{room_id}/{session_id}",
        "/media/config",
        "/config",
        "/media/download/{server_name}/{media_id}",
        "/media/download/{server_name}/{media_id}/{file_name}",
        "/media/thumbnail/{server_name}/{media_id}",
        "/download/{server_name}/{media_id}",
        "/download/{server_name}/{media_id}/{file_name}",
        "/thumbnail/{server_name}/{media_id}",
        "/health",
        "/metrics",
        "/dashboard",
        "/dashboard/",
        "/dashboard/{name}",
        "/admin/whoami",
        "/admin/status",
        "/",
        "/web/chat/{path}",
    }
)

_PREFIX = re.compile(r"^/_matrix/(client|media)/(v1|v3|r0)(?=/)|^/_outlast(?=/)")
_PATTERN = re.compile(r"\{(\w+)(:[^}]*)?\}")


def route_path(canonical: str) -> str:
    """A route's path as listed above: without its API prefix and without regex parts."""
    return _PATTERN.sub(r"{\1}", _PREFIX.sub("", canonical, count=1))


def reads_of(request: web.Request) -> Reads | None:
    route = getattr(request.match_info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None:
        return None
    return READS.get((request.method, route_path(str(resource.canonical))))


def arrived_at(request: web.Request) -> float | None:
    """When the request arrived (by the barrier's clock), if the middleware saw it."""
    return request.get(ARRIVED_KEY)


def stamp_arrival(request: web.Request, clock: Callable[[], float]) -> float:
    """Record when the request arrived, once: the outermost middleware that needs it
    stamps it, so authentication (for rate limits) and the read barrier share one
    moment, and so one question to a stream's leader."""
    arrived = request.get(ARRIVED_KEY)
    if arrived is None:
        arrived = request[ARRIVED_KEY] = clock()
    return arrived


def install(app: web.Application, barrier: Barrier, read_streams: StreamsOf) -> None:
    """Add the middleware that stamps arrival and waits for the barrier of read routes."""

    @web.middleware
    async def read_barrier(request: web.Request, handler: Handler) -> web.StreamResponse:
        arrived = stamp_arrival(request, barrier.clock)
        reads = reads_of(request)
        if reads is not None and barrier.enabled:
            streams = read_streams(reads, request.match_info.get("room_id"))
            await barrier.wait_current(streams, arrived)
        return await handler(request)

    app.middlewares.append(read_barrier)
