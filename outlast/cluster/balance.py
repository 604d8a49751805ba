"""Spread stream leaders over the sites.

A stream's leader orders and replicates its writes. If one site leads every
stream (JetStream tends to elect the first node that was up), losing that site
stalls every room for an election (4–9 s), and that site's node does all the
ordering work. Asking each stream to step down in favour of a preferred node,
round robin over the sites, means a site loss stalls only the partitions that
site led, while the others keep committing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import nats


async def balance_leaders(
    app_url: str, streams: Sequence[str], nodes: Sequence[str]
) -> dict[str, str]:
    """Best effort: returns stream -> node it asked to lead. Never raises."""
    wanted: dict[str, str] = {}
    try:
        nc = await nats.connect(app_url, connect_timeout=5, max_reconnect_attempts=1)
    except Exception:  # noqa: BLE001 - balancing is an optimisation
        return wanted
    try:
        js = nc.jetstream(timeout=5)
        for i, stream in enumerate(streams):
            node = nodes[i % len(nodes)]
            try:
                info = await js.stream_info(stream)
            except Exception:  # noqa: BLE001
                continue
            if info.cluster is None or info.cluster.leader == node:
                wanted[stream] = node
                continue
            try:
                await nc.request(
                    f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}",
                    json.dumps({"placement": {"preferred": node}}).encode(),
                    timeout=5,
                )
                wanted[stream] = node
            except Exception:  # noqa: BLE001
                continue
    finally:
        await nc.close()
    return wanted
