"""The Matrix workload, identical for every target (Outlast or any homeserver by URL).

Phases: send (concurrent senders, per-request latency), deliver (end-to-end
latency from send to each receiver's /sync, exactly once and in one order),
history (back-pagination), initial sync (one user in many rooms), idle
(parked /sync long-polls, memory per connection).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.stats import CpuMeter, ServerCpu, rss_kib, summarize_ms


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.s = session
        self.base = base.rstrip("/")
        self.token = ""
        self.user_id = ""

    async def call(
        self, method: str, path: str, body: Any = None, timeout: float = 60
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.s.request(
            method,
            self.base + path,
            json=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as r:
            return r.status, await r.json(content_type=None)

    async def ok(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        for attempt in range(50):
            status, data = await self.call(method, path, body, timeout)
            if status == 200:
                return data
            if status == 429:
                await asyncio.sleep(float(data.get("retry_after_ms", 500)) / 1000)
                continue
            if status >= 500 and attempt < 5:
                await asyncio.sleep(0.5)
                continue
            raise RuntimeError(f"{method} {path} -> {status} {data}")
        raise RuntimeError(f"{method} {path}: rate limited for too long")

    async def register(self, name: str) -> None:
        data = await self.ok(
            "POST",
            "/_matrix/client/v3/register",
            {"username": name, "password": "bench-password-1", "auth": {"type": "m.login.dummy"}},
        )
        self.token, self.user_id = data["access_token"], data["user_id"]

    async def send(self, room_id: str, body: str) -> str:
        txn = uuid.uuid4().hex
        data = await self.ok(
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{txn}",
            {"msgtype": "m.text", "body": body},
        )
        return str(data["event_id"])


async def setup(
    session: aiohttp.ClientSession, base: str, users: int, rooms: int, prefix: str
) -> tuple[list[Client], list[str]]:
    clients = [Client(session, base) for _ in range(users)]
    await asyncio.gather(*(c.register(f"{prefix}u{i}") for i, c in enumerate(clients)))
    owner = clients[0]
    room_ids = []
    for _ in range(rooms):
        data = await owner.ok("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"})
        room_ids.append(data["room_id"])
    await asyncio.gather(
        *(
            c.ok("POST", f"/_matrix/client/v3/join/{quote(r)}", {})
            for c in clients[1:]
            for r in room_ids
        )
    )
    return clients, room_ids


async def phase_send(
    clients: list[Client],
    rooms: list[str],
    senders: int,
    per_sender: int,
    server_pids: Sequence[int] = (),
) -> dict[str, Any]:
    latencies: list[float] = []

    async def sender(i: int) -> None:
        c = clients[i % len(clients)]
        for n in range(per_sender):
            t = time.perf_counter()
            await c.send(rooms[(i + n) % len(rooms)], f"s{i}-{n}")
            latencies.append(time.perf_counter() - t)

    with CpuMeter() as meter, ServerCpu(server_pids) as server:
        await asyncio.gather(*(sender(i) for i in range(senders)))
    sent = max(1, len(latencies))
    return {
        "senders": senders,
        **summarize_ms(latencies),
        "throughput_msgs_per_s": round(len(latencies) / meter.wall, 1),
        "client_cpu_percent": meter.client_cpu_percent,
        # Where the machine's CPU went per message: on a shared 2-core machine the
        # sum of these (plus the client's) is what bounds throughput.
        "client_cpu_ms_per_msg": round(1000 * meter.cpu / sent, 3),
        "server_cpu_ms_per_msg": server.per_message_ms(sent),
    }


async def _initial_token(c: Client) -> str:
    data = await c.ok(
        "GET",
        "/_matrix/client/v3/sync?timeout=0&filter="
        + quote(json.dumps({"room": {"timeline": {"limit": 1}}})),
    )
    return str(data["next_batch"])


async def phase_deliver(
    clients: list[Client],
    room: str,
    receivers: int,
    rate: float,
    seconds: float,
    receiver_bases: list[str] | None = None,
) -> dict[str, Any]:
    """Receivers long-poll while one sender sends at a fixed rate into one room."""
    sender = clients[0]
    recv = clients[1 : 1 + receivers]
    if receiver_bases:
        for i, c in enumerate(recv):
            c.base = receiver_bases[i % len(receiver_bases)].rstrip("/")
    sent_at: dict[str, float] = {}
    order_sent: list[str] = []
    seen: dict[int, list[str]] = {i: [] for i in range(len(recv))}
    latencies: list[float] = []
    stop = asyncio.Event()
    filt = quote(json.dumps({"room": {"timeline": {"limit": 200}}}))

    async def receiver(i: int, c: Client) -> None:
        token = await _initial_token(c)
        while not stop.is_set() or len(seen[i]) < len(order_sent):
            data = await c.ok(
                "GET",
                f"/_matrix/client/v3/sync?timeout=2000&since={token}&filter={filt}",
                timeout=30,
            )
            now = time.perf_counter()
            token = data["next_batch"]
            for event in data["rooms"]["join"].get(room, {}).get("timeline", {}).get("events", []):
                body = event.get("content", {}).get("body", "")
                if body.startswith("d-"):
                    seen[i].append(body)
                    if body in sent_at:
                        latencies.append(now - sent_at[body])
            if stop.is_set() and time.perf_counter() - stop_time[0] > 10:
                break

    stop_time = [0.0]
    tasks = [asyncio.create_task(receiver(i, c)) for i, c in enumerate(recv)]
    await asyncio.sleep(1.0)
    interval = 1.0 / rate
    with CpuMeter() as meter:
        next_at = time.perf_counter()
        n = 0
        while time.perf_counter() - meter._w < seconds:  # the meter's start
            body = f"d-{n}"
            sent_at[body] = time.perf_counter()
            order_sent.append(body)
            await sender.send(room, body)
            n += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        stop.set()
        stop_time[0] = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    exactly_once = all(
        sorted(s) == sorted(order_sent) and len(s) == len(order_sent) for s in seen.values()
    )
    same_order = all(s == seen[0] for s in seen.values())
    return {
        "receivers": len(recv),
        "rate": rate,
        "sent": len(order_sent),
        "end_to_end": summarize_ms(latencies),
        "exactly_once": exactly_once,
        "same_order_all_receivers": same_order,
        "client_cpu_percent": meter.client_cpu_percent,
    }


async def phase_history(clients: list[Client], rooms: list[str]) -> dict[str, Any]:
    latencies: list[float] = []
    events = 0
    c = clients[0]
    for room in rooms:
        token = ""
        for _ in range(1000):
            path = f"/_matrix/client/v3/rooms/{quote(room)}/messages?dir=b&limit=50"
            if token:
                path += f"&from={quote(token)}"
            t = time.perf_counter()
            data = await c.ok("GET", path)
            latencies.append(time.perf_counter() - t)
            events += len(data.get("chunk", []))
            if not data.get("end") or not data.get("chunk"):
                break
            token = data["end"]
    return {"pages": len(latencies), "events": events, **summarize_ms(latencies)}


async def phase_initial_sync(
    session: aiohttp.ClientSession, base: str, rooms: int, prefix: str
) -> dict[str, Any]:
    c = Client(session, base)
    await c.register(prefix + "many")
    for i in range(rooms):
        data = await c.ok("POST", "/_matrix/client/v3/createRoom", {"name": f"r{i}"})
        await c.send(data["room_id"], "hello")
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        data = await c.ok("GET", "/_matrix/client/v3/sync?timeout=0")
        samples.append(time.perf_counter() - t)
    return {
        "rooms": rooms,
        "joined_in_response": len(data["rooms"]["join"]),
        **summarize_ms(samples),
    }


async def phase_idle(
    base: str, connections: int, server_pids: list[int], hold_seconds: float = 5.0
) -> dict[str, Any]:
    """Park many /sync long-polls at once; count errors; server memory per connection."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        c = Client(session, base)
        await c.register("idle" + uuid.uuid4().hex[:8])
        token = await _initial_token(c)
        before = sum(rss_kib(p) for p in server_pids)
        errors = 0
        started = asyncio.Event()
        parked = 0

        async def park() -> None:
            nonlocal errors, parked
            try:
                headers = {"Authorization": f"Bearer {c.token}"}
                async with session.get(
                    f"{c.base}/_matrix/client/v3/sync?timeout={int(hold_seconds * 1000) + 20000}"
                    f"&since={token}",
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=hold_seconds + 60),
                ) as r:
                    parked += 1
                    if r.status != 200:
                        errors += 1
                    await r.read()
            except (TimeoutError, aiohttp.ClientError, OSError):
                errors += 1

        tasks = [asyncio.create_task(park()) for _ in range(connections)]
        del started
        await asyncio.sleep(hold_seconds)
        during = sum(rss_kib(p) for p in server_pids)
        # Wake them all with one message in a room of the user.
        room = (await c.ok("POST", "/_matrix/client/v3/createRoom", {}))["room_id"]
        await c.send(room, "wake up")
        await asyncio.wait_for(asyncio.gather(*tasks), hold_seconds + 90)
        return {
            "connections": connections,
            "errors": errors,
            "server_rss_before_kib": before,
            "server_rss_parked_kib": during,
            "kib_per_connection": round((during - before) / max(1, connections), 2)
            if server_pids
            else None,
        }
