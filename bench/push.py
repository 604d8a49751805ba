"""Push latency: from a send's acknowledgement to the push gateway, in a busy room.

    python -m bench.push                   # embedded server, 1 worker, 100 msg/s for 10 s
    python -m bench.push --cluster         # a local 3-site cluster through the front door

One room with ``--members`` members, each with an ``http`` pusher at a
recording gateway (outlast/drill/pushgw.py) in this process. One sender sends
at ``--rate`` msg/s; every tenth message mentions one member. For each
notification the figure is gateway arrival minus the send's acknowledgement
(what a phone waits, minus the gateway's own hop), and every expected
(event, pushkey) must arrive exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.run import Embedded, LocalCluster
from bench.stats import summarize_ms
from bench.workload import setup
from outlast.drill.pushgw import PushGateway

SETTLE_SECONDS = 60.0


async def measure(
    base: str, members: int, rate: float, seconds: float, pushers: int
) -> dict[str, Any]:
    async with PushGateway() as gateway, aiohttp.ClientSession() as session:
        clients, rooms = await setup(session, base, members, 1, "push" + uuid.uuid4().hex[:6])
        room = rooms[0]
        with_pusher = clients[1 : 1 + pushers]
        for c in with_pusher:
            await c.ok(
                "POST",
                "/_matrix/client/v3/pushers/set",
                {
                    "app_id": "io.outlast.bench",
                    "pushkey": c.user_id,
                    "kind": "http",
                    "app_display_name": "bench",
                    "device_display_name": "bench",
                    "lang": "en",
                    "data": {"url": gateway.url, "format": "event_id_only"},
                },
            )
        sender, others = clients[0], clients[1:]
        acked: dict[str, float] = {}  # event id -> wall-clock time of its acknowledgement
        send_s: list[float] = []

        async def send(n: int) -> None:
            content: dict[str, Any] = {"msgtype": "m.text", "body": f"message {n}"}
            if n % 10 == 0:
                content["m.mentions"] = {"user_ids": [others[n % len(others)].user_id]}
            path = f"/_matrix/client/v3/rooms/{quote(room)}/send/m.room.message/t{n}"
            began = time.monotonic()
            data = await sender.ok("PUT", path, content)
            acked[data["event_id"]] = time.time()
            send_s.append(time.monotonic() - began)

        # Open loop: sends start on schedule whatever the previous ones take.
        tasks = []
        begin = time.monotonic()
        n = 0
        while n < int(rate * seconds):
            await asyncio.sleep(max(0.0, begin + n / rate - time.monotonic()))
            tasks.append(asyncio.create_task(send(n)))
            n += 1
        await asyncio.gather(*tasks)
        expected = {(e, c.user_id) for e in acked for c in with_pusher}

        def complete(g: PushGateway) -> bool:
            got = {(r.event_id, k) for r in g.accepted() for k in r.pushkeys}
            return expected <= got

        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await gateway.wait_for(complete, SETTLE_SECONDS)
        first: dict[tuple[str, str], float] = {}
        repeats = 0
        for r in gateway.accepted():
            for key in r.pushkeys:
                pair = (str(r.event_id), key)
                if pair in first:
                    repeats += 1
                else:
                    first[pair] = r.at
        latencies = [first[pair] - acked[pair[0]] for pair in expected if pair in first]
        return {
            "members": members,
            "pushers": len(with_pusher),
            "rate": rate,
            "sent": n,
            "expected": len(expected),
            "lost": len(expected - set(first)),
            "duplicated": repeats,
            "settled_after_s": round(time.monotonic() - started, 3),
            "send_latency_ms": summarize_ms(send_s),
            "latency_ms": summarize_ms(latencies),
        }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    target: Embedded | LocalCluster
    if args.cluster:
        target = LocalCluster()
        base = str(target.description["front_door"])
    else:
        target = Embedded(1, "" if args.delivery else "[push]\nenabled = false\n")
        base = target.url
    try:
        pushers = args.members - 1 if args.pushers is None else args.pushers
        result = await measure(base, args.members, args.rate, args.seconds, pushers)
    finally:
        target.stop()
    result["target"] = "3 sites via front door" if args.cluster else "embedded, 1 worker"
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=10, help="room members, sender included")
    p.add_argument("--rate", type=float, default=100.0, help="messages per second")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--cluster", action="store_true", help="a local 3-site cluster")
    p.add_argument(
        "--pushers", type=int, help="members (sender excluded) with a pusher (default: all)"
    )
    p.add_argument(
        "--no-delivery",
        dest="delivery",
        action="store_false",
        help="push.enabled = false: evaluation and counts only (what it costs the sends)",
    )
    p.add_argument("--json-out", type=Path)
    args = p.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2))
    ok = result["duplicated"] == 0 and (result["lost"] == 0 or not args.delivery)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
