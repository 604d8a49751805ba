"""Drill records live on the log (OUTLAST_DRILLS, replicated like everything else),
so the history of drills survives the next fire and can be read from any site."""

from __future__ import annotations

import json
from typing import Any

import nats
from nats.js.errors import NotFoundError

from outlast.log.names import Names
from outlast.log.tls import TlsContext, client_context


def cluster_tls(description: dict[str, Any]) -> TlsContext:
    """How to verify the nodes of the cluster a cluster.json describes (None: plain TCP)."""
    return client_context(str(description.get("tls_ca") or ""))


def _tls(tls: TlsContext) -> dict[str, Any]:
    return {"tls": tls} if tls is not None else {}


# A cluster started by `outlast cluster` uses the default names.
NAMES = Names()


async def store(nats_urls: list[str], report: dict[str, Any], tls: TlsContext = None) -> int:
    nc = await nats.connect(
        servers=nats_urls, connect_timeout=5, max_reconnect_attempts=3, **_tls(tls)
    )
    try:
        js = nc.jetstream(timeout=10)
        ack = await js.publish(
            NAMES.drill_subject(report["id"]),
            json.dumps(report).encode(),
            headers={"Nats-Msg-Id": f"drill-{report['id']}"},
        )
        return int(ack.seq)
    finally:
        await nc.close()


async def history(nats_url: str, limit: int = 100, tls: TlsContext = None) -> list[dict[str, Any]]:
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=1, **_tls(tls))
    try:
        js = nc.jetstream(timeout=10)
        info = await js.stream_info(NAMES.drills_stream)
        first, last = int(info.state.first_seq), int(info.state.last_seq)
        out = []
        for seq in range(max(first, last - limit + 1), last + 1):
            try:
                msg = await js.get_msg(NAMES.drills_stream, seq)
            except NotFoundError:
                continue
            if msg.data:
                out.append(json.loads(msg.data))
        return out
    finally:
        await nc.close()
