"""What clients call at start: push rules, pushers, TURN, third-party protocols,
3PIDs, key-backup version, notifications and event context. Unknown paths stay
404 ``M_UNRECOGNIZED``."""

from __future__ import annotations

from aiohttp import web

from outlast.core import ids
from outlast.core.errors import MatrixError
from outlast.core.pushrules import check_kind, check_scope, rule_attribute
from outlast.http.request import (
    json_body,
    ok,
    query_event_filter,
    query_int,
    requester,
    services,
)
from outlast.http.routing import Routes

routes = Routes()


def _rule_path(request: web.Request) -> tuple[str, str]:
    check_scope(request.match_info["scope"])
    kind = request.match_info["kind"]
    check_kind(kind)
    return kind, request.match_info["rule_id"]


@routes.get("/pushrules/")
@routes.get("/pushrules")
async def push_rules(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/pushrules/"""
    who = await requester(request)
    return ok({"global": services(request).push.rules(who.user_id)})


@routes.get("/pushrules/{scope}/")
@routes.get("/pushrules/{scope}")
async def push_rules_scope(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/pushrules/global/"""
    who = await requester(request)
    check_scope(request.match_info["scope"])
    return ok(services(request).push.rules(who.user_id))


@routes.get("/pushrules/{scope}/{kind}/{rule_id}")
async def get_rule(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}"""
    who = await requester(request)
    kind, rule_id = _rule_path(request)
    return ok(services(request).push.rule(who.user_id, kind, rule_id))


@routes.put("/pushrules/{scope}/{kind}/{rule_id}")
async def put_rule(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}"""
    who = await requester(request)
    kind, rule_id = _rule_path(request)
    body = await json_body(request, allow_empty=False)
    await services(request).push.put_rule(
        who.user_id, kind, rule_id, body, request.query.get("before"), request.query.get("after")
    )
    return ok()


@routes.delete("/pushrules/{scope}/{kind}/{rule_id}")
async def delete_rule(request: web.Request) -> web.Response:
    """DELETE /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}"""
    who = await requester(request)
    kind, rule_id = _rule_path(request)
    await services(request).push.delete_rule(who.user_id, kind, rule_id)
    return ok()


@routes.get("/pushrules/{scope}/{kind}/{rule_id}/{attr:enabled|actions}")
async def get_rule_attribute(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/enabled|actions"""
    who = await requester(request)
    kind, rule_id = _rule_path(request)
    rule = services(request).push.rule(who.user_id, kind, rule_id)
    return ok(rule_attribute(rule, request.match_info["attr"]))


@routes.put("/pushrules/{scope}/{kind}/{rule_id}/{attr:enabled|actions}")
async def put_rule_attribute(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/enabled|actions"""
    who = await requester(request)
    kind, rule_id = _rule_path(request)
    attr = request.match_info["attr"]
    body = await json_body(request, allow_empty=False)
    if attr not in body:
        raise MatrixError(400, "M_MISSING_PARAM", f"{attr} is required")
    await services(request).push.set_attribute(who.user_id, kind, rule_id, attr, body[attr])
    return ok()


@routes.get("/pushers")
async def pushers(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/pushers"""
    who = await requester(request)
    return ok({"pushers": services(request).push.pushers(who.user_id)})


@routes.post("/pushers/set")
async def set_pusher(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/pushers/set"""
    who = await requester(request)
    body = await json_body(request, allow_empty=False)
    await services(request).push.set_pusher(who.user_id, body)
    return ok()


@routes.get("/voip/turnServer")
async def turn_server(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/voip/turnServer"""
    who = await requester(request)
    return ok(services(request).turn.turn_server(who.user_id))


@routes.get("/thirdparty/protocols")
async def thirdparty_protocols(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/thirdparty/protocols — no bridges, so no protocols."""
    await requester(request)
    return ok({})


@routes.get("/account/3pid")
async def third_party_ids(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/account/3pid — no e-mail or phone binding, so none."""
    await requester(request)
    return ok({"threepids": []})


@routes.get("/notifications")
async def notifications(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/notifications"""
    who = await requester(request)
    limit = query_int(request, "limit", 20, low=1, high=100)
    push = services(request).push
    return ok(push.notifications(who, limit, request.query.get("only"), request.query.get("from")))


@routes.get("/rooms/{room_id}/context/{event_id}")
async def event_context(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}"""
    who = await requester(request)
    room_id = request.match_info["room_id"]
    if not ids.is_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "not a room id")
    event_filter = query_event_filter(request)
    limit = query_int(request, "limit", 10, high=100)
    if event_filter.limit is not None:
        limit = min(limit, event_filter.limit)
    return ok(
        services(request).room_context.context(
            who, room_id, request.match_info["event_id"], limit, event_filter
        )
    )
