"""Rebuild time of an embedded site's view: from the whole log, and from a view snapshot.

    python -m bench.rebuild [--messages 100000] [--tail 1000] [--out FILE]

Fills an embedded ``outlast serve`` through the Client-Server API, stops it,
stores a view snapshot (``outlast view snapshot``), starts the server again to
send ``--tail`` more messages (the history a snapshot does not hold), stops it,
then times ``outlast view rebuild`` (every message replayed) and
``outlast view rebuild --from-snapshot`` (snapshot fetched, checked, installed,
then only the tail replayed). Each time is a whole command: process start,
nats-server start, catch-up, stop. After each rebuild the view's stored
messages are counted, so a rebuild that skipped history cannot pass.

``--fill direct`` (default ``api``) makes the history fast to fill: the API
fills a base (``--api-base`` messages; the users, rooms and joins are all real),
then, with the server stopped, the rest is appended straight to its log on its
own embedded nats-server, many publishes in flight. Why that is honest: each
append is the fact the server's send path writes (``RoomEvents`` on the room's
timeline subject, one event from ``make_event`` with the event id
``txn_event_id`` derives from sender, device and txnId, the ``txn`` of the
sending device, ``Nats-Msg-Id`` = event id), sent by users who joined through
the API. Nothing writes the view: ``outlast view snapshot`` must project them
with the server's own projector (which judges each message again) before it
copies the view, and the bench checks the view holds every one of them and
that ``/messages`` serves them afterwards. What it skips is only the HTTP
request, auth and the send path's wait for its view, the slow part of a fill.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.run import Embedded
from bench.stats import emit_json
from bench.workload import Client, phase_send, setup
from outlast.config import load
from outlast.context import names_of
from outlast.core import ids, jsonenc
from outlast.core.events import make_event
from outlast.log.client import LogClient
from outlast.log.engine import embedded_node
from outlast.log.facts import RoomEvents

SENDERS = 32
WINDOW = 2000  # direct appends in flight
QUIET_LOAD = 3.0  # wait (bounded) for the 1-minute load average to drop below this


def outlast(server: Embedded, *args: str) -> tuple[float, str, str]:
    """Run an ``outlast`` command on the bench server's data; its wall time and output."""
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "outlast",
            *args,
            "--config",
            str(server.dir / "bench.toml"),
            "--data-dir",
            str(server.dir / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"outlast {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return elapsed, done.stdout, done.stderr


def steps(stdout: str) -> dict[str, float]:
    """Seconds from the command's start to each step it reports (log ready, view seeded,
    caught up)."""
    return {
        k.strip().replace(" ", "_"): float(v)
        for k, v in re.findall(r"([a-z ]+?) ([\d.]+)s", stdout)
    }


def replayed(stdout: str) -> int:
    match = re.search(r"(\d+) log messages replayed", stdout)
    if match is None:
        raise RuntimeError(f"no replay count in {stdout!r}")
    return int(match.group(1))


async def fill(url: str, messages: int, prefix: str) -> dict[str, Any]:
    """Users, rooms, joins and ``messages`` sends through the Client-Server API; also
    returns who sent (user, device, token) and where, for the direct fill and the check."""
    per_sender = max(1, messages // SENDERS)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=SENDERS)) as session:
        clients, rooms = await setup(session, url, users=16, rooms=20, prefix=prefix)
        sent = await phase_send(clients, rooms, SENDERS, per_sender)
        who = []
        for c in clients:
            me = await c.ok("GET", "/_matrix/client/v3/account/whoami")
            who.append((c.user_id, str(me["device_id"]), c.token))
    return {**sent, "sent": SENDERS * per_sender, "who": who, "rooms": rooms}


async def fill_direct(
    server: Embedded, who: list[tuple[str, str, str]], rooms: list[str], messages: int
) -> dict[str, Any]:
    """Append ``messages`` sends straight to the stopped server's log: the facts its send
    path writes (see the module docstring), ``WINDOW`` publishes in flight."""
    config = load(server.dir / "bench.toml")
    names = names_of(config)
    node = embedded_node(server.dir / "data", 0, config.log.sync_always)
    node.start()
    try:
        await node.wait_ready()
        log = LogClient([node.url], name="bench-direct-fill", publish_timeout=60)
        await log.connect()
        try:
            started = time.monotonic()
            pending: list[Any] = []
            duplicates = 0
            for k in range(messages):
                user, device, _ = who[k % len(who)]
                room = rooms[(k // len(who)) % len(rooms)]
                txn_id = f"direct-{k}"
                event_id = ids.txn_event_id(user, device, room, "m.room.message", txn_id)
                event = make_event(
                    event_id=event_id,
                    room_id=room,
                    sender=user,
                    event_type="m.room.message",
                    content={"msgtype": "m.text", "body": f"d{k}"},
                    origin_server_ts=int(time.time() * 1000),
                )
                fact = RoomEvents((event,), {"device_id": device, "txn_id": txn_id})
                pending.append(
                    await log.js.publish_async(
                        names.room_subjects(room).timeline,
                        jsonenc.dumps(fact.encode()),
                        headers={"Nats-Msg-Id": event_id},
                        wait_stall=60,
                    )
                )
                if len(pending) >= WINDOW or k == messages - 1:
                    acks = await asyncio.wait_for(asyncio.gather(*pending), 300)
                    duplicates += sum(1 for a in acks if a.duplicate)
                    pending = []
            seconds = time.monotonic() - started
        finally:
            await log.close()
    finally:
        node.stop()
    if duplicates:
        raise RuntimeError(f"{duplicates} direct appends were duplicates")
    return {"direct_messages": messages, "direct_fill_seconds": round(seconds, 1)}


def stored_messages(server: Embedded, room: str | None = None) -> int:
    """m.room.message rows in the (stopped) server's view."""
    conn = sqlite3.connect(f"file:{server.dir / 'data' / 'view.sqlite'}?mode=ro", uri=True)
    try:
        sql = "SELECT count(*) FROM events WHERE type = 'm.room.message'"
        args: tuple[str, ...] = ()
        if room is not None:
            sql, args = sql + " AND room_id = ?", (room,)
        return int(conn.execute(sql, args).fetchone()[0])
    finally:
        conn.close()


async def served_messages(url: str, token: str, room: str) -> int:
    """m.room.message events ``/messages`` serves for a room, paging back from its end."""
    async with aiohttp.ClientSession() as session:
        c = Client(session, url)
        c.token = token
        path = f"/_matrix/client/v3/rooms/{quote(room)}/messages?dir=b&limit=1000"
        count, since = 0, ""
        for _ in range(10_000):  # bounded: 10 M events at 1,000 a page
            page = await c.ok("GET", path + (f"&from={quote(since)}" if since else ""))
            count += sum(1 for e in page["chunk"] if e["type"] == "m.room.message")
            if not page["chunk"] or "end" not in page:
                return count
            since = page["end"]
        raise RuntimeError("/messages did not end")


def quiet(wait: float) -> dict[str, float]:
    """Wait, bounded, for the 1-minute load average to fall below QUIET_LOAD; the load
    average when timing starts (and how long was waited, at most ``wait`` seconds) goes
    next to the figure."""
    started = time.monotonic()
    while os.getloadavg()[0] >= QUIET_LOAD and time.monotonic() - started < wait:
        time.sleep(10)
    load1, load5, load15 = os.getloadavg()
    print(f"load average {load1:.2f} {load5:.2f} {load15:.2f}", file=sys.stderr)
    return {
        "load1": round(load1, 2),
        "load5": round(load5, 2),
        "load15": round(load15, 2),
        "waited_s": round(time.monotonic() - started),
    }


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(
    messages: int,
    tail: int,
    fsync: bool,
    direct: bool,
    api_base: int,
    keep: bool,
    quiet_wait: float,
    log_only: bool = False,
    fill_only: bool = False,
) -> dict[str, Any]:
    # Without an fsync per write the fill is faster; the log it leaves is the same.
    server = Embedded(workers=1, extra_toml="" if fsync else "[log]\nsync_always = false\n")
    try:
        started = time.monotonic()
        sent = asyncio.run(fill(server.url, min(messages, api_base) if direct else messages, "h"))
        server._terminate()
        filled: dict[str, Any] = {"api_messages": sent["sent"], "direct_messages": 0}
        if direct and messages > sent["sent"]:
            filled |= asyncio.run(
                fill_direct(server, sent["who"], sent["rooms"], messages - sent["sent"])
            )
        history = filled["api_messages"] + filled["direct_messages"]
        fill_seconds = time.monotonic() - started
        print(f"filled {history} messages in {fill_seconds:.0f}s ({filled})", file=sys.stderr)
        if fill_only:
            return {"messages": history, **filled, "fill_seconds": round(fill_seconds)}
        if log_only:
            result = log_rebuild(server, quiet_wait)
            if result["stored_messages_after_rebuild"] != history:
                raise RuntimeError(f"the view holds {result}, not {history} messages")
            return {"messages": history, **filled, "fill_seconds": round(fill_seconds), **result}
        snap_seconds, snap_out, _ = outlast(server, "view", "snapshot")
        if stored_messages(server) != history:
            raise RuntimeError(f"the view holds {stored_messages(server)} messages, not {history}")
        snapshot_bytes = int(re.search(r"\((\d+) bytes", snap_out).group(1))  # type: ignore[union-attr]
        print(f"snapshot stored in {snap_seconds:.1f}s", file=sys.stderr)
        server.start()
        tail_sent = asyncio.run(fill(server.url, tail, "t"))["sent"]
        server._terminate()
        expected = history + tail_sent
        log_bytes = size(server.dir / "data" / "nats")
        view_bytes = (server.dir / "data" / "view.sqlite").stat().st_size
        full_load = quiet(quiet_wait)
        full_seconds, full_out, _ = outlast(server, "view", "rebuild")
        print(f"full rebuild {full_seconds:.1f}s", file=sys.stderr)
        full_stored = stored_messages(server)
        seeded_load = quiet(quiet_wait)
        seeded_seconds, seeded_out, seeded_err = outlast(
            server, "view", "rebuild", "--from-snapshot"
        )
        print(f"rebuild from snapshot {seeded_seconds:.1f}s:\n{seeded_err}", file=sys.stderr)
        if "installed" not in seeded_err:
            raise RuntimeError(f"the snapshot was not used: {seeded_err}")
        seeded_stored = stored_messages(server)
        if full_stored != expected or seeded_stored != expected:
            raise RuntimeError(
                f"views hold {full_stored} / {seeded_stored} messages, not {expected}"
            )
        room, token = sent["rooms"][0], sent["who"][0][2]
        in_room = stored_messages(server, room)
        server.start()
        served = asyncio.run(served_messages(server.url, token, room))
        if served != in_room:
            raise RuntimeError(f"/messages served {served} of {in_room} messages in {room}")
        return {
            "messages": messages,
            "fill": "direct" if direct else "api",
            **filled,
            "fill_seconds": round(fill_seconds),
            "fill_fsync_per_write": fsync,
            "tail_messages": tail_sent,
            "stored_messages_after_each_rebuild": expected,
            "messages_served_in_one_room": served,
            "fill_msgs_per_s": sent["throughput_msgs_per_s"],
            "load_before_full_rebuild": full_load,
            "load_before_snapshot_rebuild": seeded_load,
            "log_bytes": log_bytes,
            "view_bytes": view_bytes,
            "snapshot_bytes": snapshot_bytes,
            "snapshot_seconds": round(snap_seconds, 2),
            "full_rebuild_seconds": round(full_seconds, 2),
            "full_replayed": replayed(full_out),
            "full_rebuild_steps": steps(full_out.split("(", 1)[1]),
            "snapshot_rebuild_seconds": round(seeded_seconds, 2),
            "snapshot_replayed": replayed(seeded_out),
            "snapshot_rebuild_steps": steps(seeded_out.split("(", 1)[1]),
            "snapshot_rebuild_said": seeded_err.strip().splitlines(),
        }
    finally:
        if keep:
            server.halt()
            print(f"data kept in {server.dir}", file=sys.stderr)
        elif server.proc.poll() is None:
            server.stop()
        else:
            shutil.rmtree(server.dir, ignore_errors=True)


def log_rebuild(server: Embedded, quiet_wait: float) -> dict[str, Any]:
    """``--log-only``: only the rebuild from the whole log, timed, with the stored-messages
    check. No snapshot and no tail: after a direct fill of 1 M messages the snapshot step and
    the server's restart for the tail each first project the whole backlog (≈ 25 minutes;
    the restart's health check times out on it), and the from-log figure needs neither."""
    load = quiet(quiet_wait)
    seconds, out, _ = outlast(server, "view", "rebuild")
    after = os.getloadavg()
    print(f"full rebuild {seconds:.1f}s", file=sys.stderr)
    count = replayed(out)
    return {
        "stored_messages_after_rebuild": stored_messages(server),
        "load_before_full_rebuild": load,
        "load_after_full_rebuild": [round(x, 2) for x in after],
        "log_bytes": size(server.dir / "data" / "nats"),
        "view_bytes": (server.dir / "data" / "view.sqlite").stat().st_size,
        "full_rebuild_seconds": round(seconds, 2),
        "full_replayed": count,
        "full_replayed_per_s": round(count / seconds),
        "full_rebuild_steps": steps(out.split("(", 1)[1]),
    }


def again(directory: Path, expected: int, quiet_wait: float) -> dict[str, Any]:
    """Time ``outlast view rebuild --from-snapshot`` once more on data a ``--keep`` run left
    (e.g. after changing the snapshot code), with the same stored-messages check."""
    server = Embedded.__new__(Embedded)
    server.dir = directory
    load = quiet(quiet_wait)
    seconds, out, err = outlast(server, "view", "rebuild", "--from-snapshot")
    if "installed" not in err:
        raise RuntimeError(f"the snapshot was not used: {err}")
    stored = stored_messages(server)
    if stored != expected:
        raise RuntimeError(f"the view holds {stored} messages, not {expected}")
    return {
        "stored_messages": stored,
        "load_before_snapshot_rebuild": load,
        "snapshot_rebuild_seconds": round(seconds, 2),
        "snapshot_replayed": replayed(out),
        "snapshot_rebuild_steps": steps(out.split("(", 1)[1]),
        "snapshot_rebuild_said": err.strip().splitlines(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--tail", type=int, default=1_000)
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="fill with log.sync_always = false (faster; the rebuilds read the same log)",
    )
    parser.add_argument(
        "--fill",
        choices=("api", "direct"),
        default="api",
        help="direct: an API-filled base, the rest appended to the log (module docstring)",
    )
    parser.add_argument(
        "--api-base", type=int, default=5_000, help="messages sent through the API (direct)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=300.0,
        help="seconds to wait at most for a load average below 3 before each timing",
    )
    parser.add_argument("--keep", action="store_true", help="keep the site's data afterwards")
    parser.add_argument(
        "--log-only",
        action="store_true",
        help="time only the rebuild from the log (no snapshot step; see log_rebuild)",
    )
    parser.add_argument(
        "--fill-only",
        action="store_true",
        help="only fill the log (with --keep: time the rebuilds later with --again)",
    )
    parser.add_argument(
        "--again",
        type=Path,
        metavar="DIR",
        help="only time the snapshot rebuild again on a kept site (--messages: the stored "
        "messages to expect, history and tail)",
    )
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.again and args.log_only:
        server = Embedded.__new__(Embedded)
        server.dir = args.again
        result = log_rebuild(server, args.quiet_wait)
        if result["stored_messages_after_rebuild"] != args.messages:
            raise RuntimeError(f"the view holds {result}, not {args.messages} messages")
    elif args.again:
        result = again(args.again, args.messages, args.quiet_wait)
    else:
        result = measure(
            args.messages,
            args.tail,
            not args.no_fsync,
            args.fill == "direct",
            args.api_base,
            args.keep,
            args.quiet_wait,
            args.log_only,
            args.fill_only,
        )
    emit_json(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
