"""Write a log as a running Outlast writes it: every fact kind, as JSON lines.

    .venv/bin/python scripts/capture_log_fixture.py tests/log/fixtures/log-v1.jsonl

Starts a real embedded server (tests/servers.py), drives one scenario through the
Client-Server API that makes the server append every kind of fact it has, then
reads every stream back from its nats-server and writes one line per message:
``{"stream", "seq", "subject", "data"}``. tests/log/test_facts.py decodes and
re-encodes that file, and projects it into a fresh view, so a change to the fact
types that could not read a log written in the field fails there.

The fixture in the repository was written by the code of the commit that added
this script (before the facts became types); keep it, add a new file for a new
wire version.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import nats
import nats.js.errors

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import OutlastProcess, http_json, start_outlast  # noqa: E402

V3 = "/_matrix/client/v3"
PASSWORD = "correct horse battery"


def b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).rstrip(b"=").decode()


class Scenario:
    def __init__(self, server: OutlastProcess) -> None:
        self.server = server

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        status, reply = http_json(method, self.server.url + path, body, token)
        if status != 200:
            raise RuntimeError(f"{method} {path}: {status} {reply}")
        return reply

    def register(self, name: str, device: str | None = None) -> dict[str, str]:
        body: dict[str, Any] = {
            "username": name,
            "password": PASSWORD,
            "auth": {"type": "m.login.dummy"},
        }
        if device:
            body["device_id"] = device
        reply = self.call("POST", V3 + "/register", body)
        return {"user_id": reply["user_id"], "token": reply["access_token"]}

    def login(self, name: str, device: str) -> dict[str, str]:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": name},
            "password": PASSWORD,
            "device_id": device,
            "initial_device_display_name": f"{name}'s {device}",
        }
        reply = self.call("POST", V3 + "/login", body)
        return {"user_id": reply["user_id"], "token": reply["access_token"], "device": device}

    def run(self) -> None:
        alice = self.register("alice", "ALICE1")
        bob = self.register("bob", "BOB1")
        carol = self.register("carol")
        self.call(
            "POST",
            V3 + "/register",
            {
                "username": "dave",
                "auth": {"type": "m.login.dummy"},
                "password": PASSWORD,
                "inhibit_login": True,
            },
        )
        phone = self.login("alice", "PHONE")
        a, b = alice["token"], bob["token"]
        uid_a, uid_b = alice["user_id"], bob["user_id"]

        # filters, rooms, aliases, the directory
        self.call("POST", f"{V3}/user/{uid_a}/filter", {"room": {"timeline": {"limit": 5}}}, a)
        room = self.call(
            "POST",
            V3 + "/createRoom",
            {
                "name": "Fixture",
                "preset": "public_chat",
                "visibility": "public",
                "room_alias_name": "fixture",
                "topic": "every fact",
            },
            a,
        )["room_id"]
        self.call("POST", f"{V3}/join/{room}", {}, b)
        sent = self.call(
            "PUT",
            f"{V3}/rooms/{room}/send/m.room.message/t1",
            {"msgtype": "m.text", "body": "hello bob"},
            a,
        )["event_id"]
        self.call(
            "PUT",
            f"{V3}/rooms/{room}/send/m.room.message/t2",
            {"msgtype": "m.text", "body": "to be redacted"},
            b,
        )
        redact_me = self.call(
            "PUT",
            f"{V3}/rooms/{room}/send/m.room.message/t3",
            {"msgtype": "m.text", "body": "oops"},
            a,
        )["event_id"]
        self.call("PUT", f"{V3}/rooms/{room}/redact/{redact_me}/r1", {"reason": "typo"}, a)
        self.call("PUT", f"{V3}/rooms/{room}/state/m.room.topic", {"topic": "changed"}, a)
        alias = "#second:localhost"
        self.call("PUT", f"{V3}/directory/room/{alias.replace('#', '%23')}", {"room_id": room}, a)
        self.call("DELETE", f"{V3}/directory/room/{alias.replace('#', '%23')}", None, a)
        self.call("PUT", f"{V3}/directory/list/room/{room}", {"visibility": "private"}, a)

        # receipts, markers, presence, account data, tags, profiles
        self.call("POST", f"{V3}/rooms/{room}/receipt/m.read/{sent}", {}, b)
        self.call("POST", f"{V3}/rooms/{room}/receipt/m.read/{sent}", {"thread_id": "main"}, b)
        self.call(
            "POST",
            f"{V3}/rooms/{room}/read_markers",
            {"m.fully_read": sent, "m.read.private": sent},
            b,
        )
        self.call(
            "PUT",
            f"{V3}/presence/{uid_a}/status",
            {"presence": "online", "status_msg": "writing fixtures"},
            a,
        )
        self.call("PUT", f"{V3}/presence/{uid_b}/status", {"presence": "unavailable"}, b)
        self.call(
            "PUT", f"{V3}/user/{uid_a}/account_data/org.example.settings", {"theme": "dark"}, a
        )
        self.call(
            "PUT",
            f"{V3}/user/{uid_a}/rooms/{room}/account_data/org.example.room",
            {"pinned": True},
            a,
        )
        self.call("PUT", f"{V3}/user/{uid_a}/rooms/{room}/tags/m.favourite", {"order": 0.5}, a)
        self.call("PUT", f"{V3}/user/{uid_a}/rooms/{room}/tags/u.work", {}, a)
        self.call("DELETE", f"{V3}/user/{uid_a}/rooms/{room}/tags/u.work", None, a)
        self.call("PUT", f"{V3}/profile/{uid_a}/displayname", {"displayname": "Alice A."}, a)
        self.call(
            "PUT", f"{V3}/profile/{uid_a}/org.example.pronouns", {"org.example.pronouns": "she"}, a
        )
        self.call("DELETE", f"{V3}/profile/{uid_a}/org.example.pronouns", None, a)
        self.call("PUT", f"{V3}/profile/{uid_b}/avatar_url", {"avatar_url": "mxc://localhost/x"}, b)
        self.call("PUT", f"{V3}/profile/{uid_b}/avatar_url", {"avatar_url": ""}, b)

        # devices, keys, cross-signing, to-device
        self.call("PUT", f"{V3}/devices/PHONE", {"display_name": "Alice's phone"}, a)
        self.call(
            "POST",
            V3 + "/keys/upload",
            {
                "device_keys": {
                    "user_id": uid_a,
                    "device_id": "ALICE1",
                    "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                    "keys": {"curve25519:ALICE1": b64(32), "ed25519:ALICE1": b64(32)},
                    "signatures": {uid_a: {"ed25519:ALICE1": b64(64)}},
                },
                "one_time_keys": {
                    "signed_curve25519:AAAAAQ": {"key": b64(32), "signatures": {}},
                    "signed_curve25519:AAAAAg": {"key": b64(32), "signatures": {}},
                },
                "fallback_keys": {
                    "signed_curve25519:AAAAAw": {"key": b64(32), "fallback": True},
                },
            },
            a,
        )
        claim = {"one_time_keys": {uid_a: {"ALICE1": "signed_curve25519"}}}
        for _ in range(3):  # two one-time keys, then the fallback key
            self.call("POST", V3 + "/keys/claim", claim, b)
        master_pub, self_pub, user_pub = b64(32), b64(32), b64(32)
        master_id = f"ed25519:{master_pub}"
        self.call(
            "POST",
            V3 + "/keys/device_signing/upload",
            {
                "master_key": {
                    "user_id": uid_a,
                    "usage": ["master"],
                    "keys": {master_id: master_pub},
                },
                "self_signing_key": {
                    "user_id": uid_a,
                    "usage": ["self_signing"],
                    "keys": {f"ed25519:{self_pub}": self_pub},
                    "signatures": {uid_a: {master_id: b64(64)}},
                },
                "user_signing_key": {
                    "user_id": uid_a,
                    "usage": ["user_signing"],
                    "keys": {f"ed25519:{user_pub}": user_pub},
                    "signatures": {uid_a: {master_id: b64(64)}},
                },
            },
            a,
        )
        query = self.call("POST", V3 + "/keys/query", {"device_keys": {uid_a: []}}, a)
        device = query["device_keys"][uid_a]["ALICE1"]
        signed = {k: v for k, v in device.items() if k != "unsigned"}
        signed["signatures"] = {uid_a: {f"ed25519:{self_pub}": b64(64)}}
        self.call("POST", V3 + "/keys/signatures/upload", {uid_a: {"ALICE1": signed}}, a)
        self.call(
            "PUT",
            f"{V3}/sendToDevice/m.room_key_request/td1",
            {"messages": {uid_a: {"ALICE1": {"action": "request"}, "*": {"x": 1}}}},
            b,
        )
        first = self.call("GET", f"{V3}/sync?timeout=0", None, a)["next_batch"]
        self.call("GET", f"{V3}/sync?timeout=0&since={first}", None, a)  # acknowledges

        # push rules and pushers
        self.call("PUT", f"{V3}/pushrules/global/room/{room}", {"actions": ["notify"]}, a)
        pusher = {
            "app_id": "org.example.app",
            "pushkey": "key1",
            "kind": "http",
            "app_display_name": "Example",
            "device_display_name": "phone",
            "lang": "en",
            "data": {"url": "https://push.example/_matrix/push/v1/notify"},
        }
        self.call("POST", f"{V3}/pushers/set", pusher, a)
        self.call("POST", f"{V3}/pushers/set", {**pusher, "kind": None}, a)

        # leaving, forgetting, devices and sessions going, accounts ending
        self.call("POST", f"{V3}/rooms/{room}/leave", {}, b)
        self.call("POST", f"{V3}/rooms/{room}/forget", {}, b)
        auth = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": PASSWORD,
        }
        self.call("POST", V3 + "/delete_devices", {"devices": ["PHONE"], "auth": auth}, a)
        del phone
        self.login("bob", "BOB2")
        self.call("POST", V3 + "/logout", None, b)
        bob3 = self.login("bob", "BOB3")
        self.call("POST", V3 + "/logout/all", None, bob3["token"])
        self.call(
            "POST",
            V3 + "/account/password",
            {"new_password": PASSWORD, "logout_devices": False, "auth": auth},
            a,
        )
        carol_auth = {**auth, "identifier": {"type": "m.id.user", "user": "carol"}}
        self.call("POST", V3 + "/account/deactivate", {"auth": carol_auth}, carol["token"])
        grant = subprocess.run(
            [
                sys.executable,
                "-m",
                "outlast",
                "admin",
                "grant",
                "@alice:localhost",
                "--config",
                str(self.server.config_path),
                "--data-dir",
                str(self.server.data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if grant.returncode != 0:
            raise RuntimeError(grant.stderr)


async def dump(nats_url: str) -> list[dict[str, Any]]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream(timeout=10)
        lines = []
        for info in await js.streams_info():
            name = str(info.config.name)
            if name.startswith("OBJ_"):
                continue  # the media bucket holds objects, not facts
            first = max(1, int(info.state.first_seq))
            for seq in range(first, int(info.state.last_seq) + 1):
                try:
                    msg = await js.get_msg(name, seq)
                except nats.js.errors.NotFoundError:
                    continue  # replaced (the health stream keeps one report per worker)
                lines.append(
                    {
                        "stream": name,
                        "seq": seq,
                        "subject": msg.subject,
                        "data": json.loads(msg.data or b"{}"),
                    }
                )
        return sorted(lines, key=lambda line: (line["stream"], line["seq"]))
    finally:
        await nc.close()


def main() -> int:
    out = Path(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="outlast-fixture-") as tmp:
        server = start_outlast(Path(tmp) / "site")
        try:
            Scenario(server).run()
            conf = (server.data_dir / "nats" / "nats.conf").read_text()
            port = re.search(r'^listen:\s*"[^"]*:(\d+)"', conf, re.MULTILINE)
            assert port is not None
            lines = asyncio.run(dump(f"nats://127.0.0.1:{port.group(1)}"))
        finally:
            server.stop()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))
    ops = sorted({str(line["data"].get("op")) for line in lines})
    print(f"{len(lines)} messages, {len(ops)} kinds: {', '.join(ops)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
