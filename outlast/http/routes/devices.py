"""Devices, end-to-end keys and to-device messages."""

from __future__ import annotations

from aiohttp import web

from outlast.accounts.devices import check_device_ids
from outlast.core.errors import missing_param
from outlast.http.request import json_body, ok, requester, services
from outlast.http.routes.account import _password_auth as password_auth
from outlast.http.routing import Routes

routes = Routes()


@routes.get("/devices")
async def list_devices(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/devices"""
    who = await requester(request)
    return ok({"devices": services(request).devices.all(who.user_id)})


@routes.get("/devices/{device_id}")
async def get_device(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/devices/{deviceId}"""
    who = await requester(request)
    devices = services(request).devices
    return ok(await devices.get(who.user_id, request.match_info["device_id"]))


@routes.put("/devices/{device_id}")
async def rename_device(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/devices/{deviceId}"""
    who = await requester(request)
    body = await json_body(request)
    devices = services(request).devices
    await devices.rename(who.user_id, request.match_info["device_id"], body.get("display_name"))
    return ok()


@routes.delete("/devices/{device_id}")
async def delete_device(request: web.Request) -> web.Response:
    """DELETE /_matrix/client/v3/devices/{deviceId} (user-interactive auth by password)"""
    who = await requester(request)
    body = await json_body(request)
    devices = services(request).devices
    device_id = request.match_info["device_id"]
    await devices.get(who.user_id, device_id)
    await password_auth(request, body, who.user_id)
    await devices.delete(who.user_id, [device_id])
    return ok()


@routes.post("/delete_devices")
async def delete_devices(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/delete_devices (user-interactive auth by password)"""
    who = await requester(request)
    body = await json_body(request)
    device_ids = check_device_ids(body.get("devices"))
    await password_auth(request, body, who.user_id)
    await services(request).devices.delete(who.user_id, device_ids)
    return ok()


@routes.post("/keys/upload")
async def upload_keys(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/keys/upload"""
    who = await requester(request)
    body = await json_body(request)
    counts = await services(request).keys.upload(who, body)
    return ok({"one_time_key_counts": counts})


@routes.post("/keys/query")
async def query_keys(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/keys/query"""
    who = await requester(request)
    body = await json_body(request)
    keys = services(request).keys
    return ok(keys.query(body.get("device_keys"), who.user_id))


@routes.post("/keys/device_signing/upload")
async def upload_signing_keys(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/keys/device_signing/upload (user-interactive auth by
    password to replace existing keys; none for the first upload or an identical retry)"""
    who = await requester(request)
    body = await json_body(request)

    async def authenticate() -> None:
        await password_auth(request, body, who.user_id)

    await services(request).keys.upload_signing_keys(who.user_id, body, authenticate)
    return ok()


@routes.post("/keys/signatures/upload")
async def upload_signatures(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/keys/signatures/upload"""
    who = await requester(request)
    body = await json_body(request)
    return ok(await services(request).keys.upload_signatures(who.user_id, body))


@routes.post("/keys/claim")
async def claim_keys(request: web.Request) -> web.Response:
    """POST /_matrix/client/v3/keys/claim"""
    await requester(request)
    body = await json_body(request)
    return ok(await services(request).keys.claim(body.get("one_time_keys")))


@routes.get("/keys/changes")
async def key_changes(request: web.Request) -> web.Response:
    """GET /_matrix/client/v3/keys/changes"""
    who = await requester(request)
    start, end = request.query.get("from"), request.query.get("to")
    if not start or not end:
        raise missing_param("from and to are required")
    keys = services(request).keys
    changed, left = await keys.changes(who.user_id, start, end)
    return ok({"changed": changed, "left": left})


@routes.put("/sendToDevice/{event_type}/{txn_id}")
async def send_to_device(request: web.Request) -> web.Response:
    """PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}"""
    who = await requester(request)
    body = await json_body(request)
    to_device = services(request).to_device
    await to_device.send(who, request.match_info["event_type"], request.match_info["txn_id"], body)
    return ok()
