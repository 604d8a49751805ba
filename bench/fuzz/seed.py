"""The fuzzer's starting data: a victim it must not touch, and ids of its own to draw from."""

from __future__ import annotations

import io
import json
from typing import Any, Protocol
from urllib.parse import quote

from PIL import Image


class Client(Protocol):
    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any: ...

    def send(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]: ...


def image(fmt: str) -> bytes:
    """A small real image (PNG, JPEG, GIF or WEBP) for uploads that thumbnails can use."""
    out = io.BytesIO()
    Image.new("RGBA" if fmt in ("PNG", "WEBP") else "RGB", (300, 200), (10, 120, 200)).save(
        out, fmt
    )
    return out.getvalue()


def seed_site(client: Client, password: str) -> tuple[str, dict[str, list[str]], dict[str, Any]]:
    """A victim's private data the fuzzing account must never change, and the ids
    the fuzzer draws from (its own rooms, events, media and filters).

    Returns the fuzzing account's token, the pools of ids by path parameter name,
    and the victim's snapshot (what ``victim_state`` must keep reading back)."""
    v3 = "/_matrix/client/v3"
    dummy = {"type": "m.login.dummy"}
    victim = client.api(
        "POST", v3 + "/register", {"username": "victim", "password": "v", "auth": dummy}
    )
    vt = victim["access_token"]
    me = client.api(
        "POST",
        v3 + "/register",
        {"username": "fuzz", "password": password, "auth": dummy},
    )
    token = me["access_token"]
    private = client.api(
        "POST", v3 + "/createRoom", {"name": "victim's", "preset": "private_chat"}, vt
    )["room_id"]
    sent = [
        client.api("PUT", f"{v3}/rooms/{quote(private)}/send/m.room.message/s{i}",
                   {"msgtype": "m.text", "body": f"secret {i}"}, vt)["event_id"]
        for i in range(5)
    ]  # fmt: skip
    client.api("PUT", f"{v3}/user/@victim:localhost/account_data/x.secret", {"k": "v"}, vt)
    client.api("PUT", f"{v3}/profile/@victim:localhost/displayname", {"displayname": "V"}, vt)
    media = client.api("POST", "/_matrix/media/v3/upload", image("PNG"), vt)["content_uri"]
    own = client.api("POST", v3 + "/createRoom", {"name": "fuzz"}, token)["room_id"]
    public = client.api("POST", v3 + "/createRoom", {"preset": "public_chat"}, token)
    events = [
        client.api("PUT", f"{v3}/rooms/{quote(own)}/send/m.room.message/f{i}",
                   {"msgtype": "m.text", "body": f"mine {i}"}, token)["event_id"]
        for i in range(3)
    ]  # fmt: skip
    uploads = [
        client.api("POST", "/_matrix/media/v3/upload", image(fmt), token)["content_uri"]
        for fmt in ("PNG", "JPEG", "GIF", "WEBP")
    ]
    uploads.append(
        client.api("POST", "/_matrix/media/v3/upload", b"not an image", token)["content_uri"]
    )
    flt = client.api("POST", f"{v3}/user/@fuzz:localhost/filter", {"room": {}}, token)
    since = client.api("GET", v3 + "/sync", None, token)["next_batch"]
    pools = {
        "room_id": [own, public["room_id"], private, "!nope:localhost"],
        "room": [own, public["room_id"], "#nope:localhost"],
        "user_id": ["@fuzz:localhost", "@victim:localhost", "@nobody:localhost"],
        "event_id": [*events, sent[0], "$nope"],
        "media_id": [u.rsplit("/", 1)[1] for u in [*uploads, media]],
        "server_name": ["localhost"],
        "filter_id": [flt["filter_id"]],
        "event_type": ["m.room.message", "m.room.name", "m.room.member", "m.room.topic",
                       "m.room.power_levels", "m.room.join_rules", "m.reaction", "x.y"],
        "state_key": ["", "@fuzz:localhost", "@victim:localhost"],
        "receipt_type": ["m.read", "m.read.private", "m.fully_read"],
        "scope": ["global"],
        "kind": ["override", "underride", "sender", "room", "content"],
        "rule_id": [".m.rule.master", ".m.rule.message", "mine"],
        "attr": ["enabled", "actions"],
        "key": ["displayname", "avatar_url"],
        "type": ["m.direct", "x.custom", "m.fully_read"],
        "tag": ["m.favourite", "u.work"],
        "alias": ["#fuzz:localhost", "#nope:localhost"],
        "name": ["index.html", "dashboard.js", "dashboard.css"],
        "path": ["app.js", "index.html", "style.css"],
        "since": [since],
    }  # fmt: skip
    snapshot: dict[str, Any] = {"private": private, "victim": vt, "media": media}
    snapshot["state"] = victim_state(client, snapshot)
    return token, pools, snapshot


def victim_state(client: Client, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Everything of the victim's that must read back unchanged after fuzzing."""
    v3 = "/_matrix/client/v3"
    vt = snapshot.get("victim") or ""
    room = quote(snapshot.get("private", ""))
    messages = client.api("GET", f"{v3}/rooms/{room}/messages?dir=b&limit=100", None, vt)
    media = snapshot.get("media", "").removeprefix("mxc://")
    return {
        "messages": [(e["event_id"], e["content"]) for e in messages["chunk"]],
        "state": sorted(json.dumps(e, sort_keys=True)
                        for e in client.api("GET", f"{v3}/rooms/{room}/state", None, vt)),
        "profile": client.api("GET", f"{v3}/profile/@victim:localhost", None, vt),
        "account_data": client.api("GET", f"{v3}/user/@victim:localhost/account_data/x.secret",
                                 None, vt),
        "media": client.send("GET", f"/_matrix/client/v1/media/download/{media}", None,
                           {"Authorization": f"Bearer {vt}"})[1],
        # Which devices, and their names; when each was last used moves with every use.
        "devices": [{k: v for k, v in d.items() if not k.startswith("last_seen")}
                    for d in client.api("GET", f"{v3}/devices", None, vt)["devices"]],
    }  # fmt: skip
