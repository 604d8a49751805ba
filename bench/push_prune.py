"""How big ``push_actions`` grows, with and without pruning (docs/push.md, "Pruning").

    python -m bench.push_prune                      # 2,000 messages, room of 10
    python -m bench.push_prune --messages 5000 --read-every 50

One embedded server per run (one worker). One room of ``--members``; one
sender sends ``--messages`` messages, one at a time; after every
``--read-every`` messages each other member sends an ``m.read`` receipt for the
latest. Then the view's ``push_actions`` rows are counted. Runs twice: pruning
off (``prune_every = 0``) and on with the default caps but no minimum age
(``prune_min_age_seconds = 0``: a day of log time does not pass in a
benchmark, so the caps are what is measured). Also reports the send rate, so
the cost of pruning in the projector shows up there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time
import uuid
from typing import Any

import aiohttp

from bench.run import Embedded
from bench.workload import setup

OFF = "\n[push]\nenabled = false\nprune_every = 0\n"
ON = "\n[push]\nenabled = false\nprune_every = 16\nprune_min_age_seconds = 0.0\n"


async def run(server: Embedded, members: int, messages: int, read_every: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        clients, rooms = await setup(session, server.url, members, 1, "pp" + uuid.uuid4().hex[:6])
        room, sender, readers = rooms[0], clients[0], clients[1:]
        started = time.monotonic()
        for n in range(1, messages + 1):
            event_id = await sender.send(room, f"message {n}")
            if n % read_every == 0:
                path = f"/_matrix/client/v3/rooms/{room}/receipt/m.read/{event_id}"
                await asyncio.gather(*(r.ok("POST", path, {}) for r in readers))
        elapsed = time.monotonic() - started
        # The view has applied every send (read-your-writes); a last /sync makes sure.
        await readers[0].ok("GET", "/_matrix/client/v3/sync?timeout=0")
    return {"sends_per_second": round(messages / elapsed, 1)}


def stored_rows(server: Embedded) -> int:
    """Rows in the view's push_actions (read once the server has stopped: it holds the
    view's lock while it runs)."""
    view = sqlite3.connect(f"file:{server.dir / 'data' / 'view.sqlite'}?mode=ro", uri=True)
    try:
        return int(view.execute("SELECT COUNT(*) FROM push_actions").fetchone()[0])
    finally:
        view.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--read-every", type=int, default=20)
    args = parser.parse_args()
    out: dict[str, Any] = {"members": args.members, "messages": args.messages}
    out["read_every"] = args.read_every
    for name, toml in (("pruning_off", OFF), ("pruning_on", ON)):
        server = Embedded(1, toml)
        try:
            out[name] = asyncio.run(run(server, args.members, args.messages, args.read_every))
            server.halt()
            out[name]["rows"] = stored_rows(server)
        finally:
            server.stop()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
