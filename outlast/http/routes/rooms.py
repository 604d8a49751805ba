"""Rooms: creation, membership, state, single events, and sending."""

from __future__ import annotations

from aiohttp import web

from outlast.core import ids
from outlast.core.errors import MatrixError, bad_json
from outlast.http.request import json_body, ok, requester, room_writer, services
from outlast.http.routing import Routes

routes = Routes()


def _room_id(request: web.Request) -> str:
    room_id = request.match_info["room_id"]
    if not ids.is_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "not a room id")
    return room_id


def _target(body: dict[str, object]) -> str:
    user_id = body.get("user_id")
    if not isinstance(user_id, str) or not ids.is_user_id(user_id):
        raise bad_json("user_id must be a user id")
    return user_id


@routes.post("/createRoom")
async def create_room(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/createRoom"""
    who = await requester(request)
    body = await json_body(request)
    return ok(await services(request).creator.create(who.user_id, body))


@routes.post("/join/{room:[^/]+}")
async def join_any(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/join/{roomIdOrAlias}"""
    who = await requester(request)
    body = await json_body(request)
    room_id = await services(request).memberships.join(
        who.user_id, request.match_info["room"], body
    )
    return ok({"room_id": room_id})


@routes.post("/knock/{room:[^/]+}")
async def knock(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/knock/{roomIdOrAlias}

    ``via`` and ``server_name`` name servers to knock through; Outlast's rooms
    are all local, so they are ignored.
    """
    who = await requester(request)
    body = await json_body(request)
    memberships = services(request).memberships
    room_id = await memberships.knock(who.user_id, request.match_info["room"], body.get("reason"))
    return ok({"room_id": room_id})


@routes.post("/rooms/{room_id}/join")
async def join_room(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/rooms/{roomId}/join"""
    who = await requester(request)
    body = await json_body(request)
    room_id = await services(request).memberships.join(who.user_id, _room_id(request), body)
    return ok({"room_id": room_id})


@routes.post("/rooms/{room_id}/leave")
async def leave(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/rooms/{roomId}/leave"""
    who = await requester(request)
    body = await json_body(request)
    await services(request).memberships.leave(who.user_id, _room_id(request), body.get("reason"))
    return ok()


@routes.post("/rooms/{room_id}/forget")
async def forget(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/rooms/{roomId}/forget"""
    who = await requester(request)
    await services(request).memberships.forget(who.user_id, _room_id(request))
    return ok()


def _membership_route(path: str, membership: str, only_from: tuple[str, ...] | None = None) -> None:
    async def handler(request: web.Request) -> web.Response:
        who = await requester(request)
        body = await json_body(request)
        target = _target(body)
        await services(request).memberships.change(
            who.user_id,
            _room_id(request),
            target,
            membership,
            reason=body.get("reason"),
            only_from=only_from,
        )
        return ok()

    handler.__doc__ = f"POST /_matrix/client/v3/rooms/{{roomId}}/{path}"
    routes.post(f"/rooms/{{room_id}}/{path}")(handler)


_membership_route("invite", "invite")
_membership_route("kick", "leave", only_from=("join", "invite", "knock"))
_membership_route("ban", "ban")
_membership_route("unban", "leave", only_from=("ban",))


@routes.get("/joined_rooms")
async def joined_rooms(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/joined_rooms"""
    who = await requester(request)
    return ok({"joined_rooms": services(request).memberships.joined_rooms(who.user_id)})


@routes.get("/rooms/{room_id}/members")
async def members(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/rooms/{roomId}/members"""
    who = await requester(request)
    chunk = services(request).messages.members(
        who.user_id,
        _room_id(request),
        request.query.get("membership"),
        request.query.get("not_membership"),
        request.query.get("at"),
    )
    return ok({"chunk": chunk})


@routes.get("/rooms/{room_id}/joined_members")
async def joined_members(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/rooms/{roomId}/joined_members"""
    who = await requester(request)
    joined = services(request).messages.joined_members(who.user_id, _room_id(request))
    return ok({"joined": joined})


@routes.get("/rooms/{room_id}/state")
async def state(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/rooms/{roomId}/state"""
    who = await requester(request)
    return ok(services(request).messages.state(who.user_id, _room_id(request)))


def _state_key(request: web.Request) -> tuple[str, str]:
    return request.match_info["event_type"], request.match_info.get("state_key", "")


@routes.get("/rooms/{room_id}/state/{event_type}")
@routes.get("/rooms/{room_id}/state/{event_type}/{state_key:.*}")
async def get_state_event(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"""
    who = await requester(request)
    event_type, state_key = _state_key(request)
    answer_format = request.query.get("format", "content")
    if answer_format not in ("content", "event"):
        raise MatrixError(400, "M_INVALID_PARAM", "format must be content or event")
    content = services(request).messages.state_event(
        who.user_id, _room_id(request), event_type, state_key, answer_format == "event"
    )
    return ok(content)


@routes.put("/rooms/{room_id}/state/{event_type}")
@routes.put("/rooms/{room_id}/state/{event_type}/{state_key:.*}")
async def put_state_event(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"""
    who = await room_writer(request)
    body = await json_body(request)
    event_type, state_key = _state_key(request)
    event_id = await services(request).messages.put_state(
        who.user_id, _room_id(request), event_type, state_key, body
    )
    return ok({"event_id": event_id})


@routes.put("/rooms/{room_id}/send/{event_type}/{txn_id}")
async def send(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"""
    who = await room_writer(request)
    body = await json_body(request)
    event_id = await services(request).messages.send(
        who, _room_id(request), request.match_info["event_type"], request.match_info["txn_id"], body
    )
    return ok({"event_id": event_id})


@routes.get("/rooms/{room_id}/event/{event_id}")
async def get_event(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}"""
    who = await requester(request)
    event = services(request).messages.event(who, _room_id(request), request.match_info["event_id"])
    return ok(event)
