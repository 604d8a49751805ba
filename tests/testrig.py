"""In-process sites on one shared nats-server, for service-level tests.

Dendrite's testrig and Synapse's HomeserverTestCase, here: every test gets a
whole :class:`outlast.site.Site` — real JetStream, real SQLite view, real
projector, its HTTP listener on a free loopback port — started in the test's
own event loop, so the test calls services directly (``site.services``) and
typed. Sites share one nats-server for the session; each uses its own name
prefix (``log.prefix``), so they never see each other's streams, and its
streams are deleted when it stops. A test that needs a process of its own (a
restart, a kill, a signal) uses tests/servers.py instead.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import nats.js.errors

from outlast.clock import SYSTEM, Clock
from outlast.config import FAST_HASH_TOML, Config, load
from outlast.log.engine import NatsNode, embedded_node
from outlast.log.names import Names
from outlast.services import Services
from outlast.site import Site

_prefixes = itertools.count()


def start_shared_nats(directory: Path) -> NatsNode:
    """One nats-server for many sites. No fsync per write: durability is what the
    subprocess and cluster tests check, not these."""
    node = embedded_node(directory, 0, sync_always=False)
    node.start()
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection((node.spec.host, node.spec.client_port), timeout=1):
                return node
        except OSError:
            if time.monotonic() > deadline:
                node.stop()
                raise
            time.sleep(0.05)


def site_config(
    directory: Path, nats_url: str, prefix: str, partitions: int = 2, extra: str = ""
) -> Config:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "site.toml"
    path.write_text(
        f"""
[server]
server_name = "localhost"
listen = "127.0.0.1:0"
data_dir = "{directory}"

[log]
nats_urls = ["{nats_url}"]
prefix = "{prefix}"
partitions = {partitions}
"""
        + FAST_HASH_TOML
        + extra
    )
    return load(path)


def new_prefix() -> str:
    """Unique per test process and session (two test runs may share nothing, but be safe)."""
    return f"t{os.getpid()}x{next(_prefixes)}"


async def delete_everything(nats_url: str, names: Names) -> None:
    """Drop a stopped site's streams and media bucket from the shared server."""
    nc = await nats.connect(nats_url, connect_timeout=5)
    try:
        js = nc.jetstream(timeout=5)
        for name in [
            *(s.name for s in [*names.streams(), *names.control_streams()]),
            f"OBJ_{names.media_bucket}",
            f"OBJ_{names.snapshot_bucket}",
        ]:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def running_site(
    directory: Path,
    nats_url: str,
    *,
    prefix: str | None = None,
    clock: Clock = SYSTEM,
    extra_toml: str = "",
) -> AsyncIterator[Site]:
    """A started site (services ready, view caught up, HTTP listening); stopped after.
    ``extra_toml`` adds configuration sections."""
    config = site_config(directory, nats_url, prefix or new_prefix(), extra=extra_toml)
    site = Site(config, clock=clock)
    try:
        await site.start()
        yield site
    finally:
        await site.stop()
        await delete_everything(nats_url, Names(config.log.prefix, config.log.partitions))


def services_of(site: Site) -> Services:
    assert site.services is not None, "the site is not running"
    return site.services


def shared_nats_node(directory: Path) -> Iterator[str]:
    node = start_shared_nats(directory)
    try:
        yield node.url
    finally:
        node.stop()
