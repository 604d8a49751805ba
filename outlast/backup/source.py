"""Find the running deployment a backup command reads: its log and its names.

The same three ways as ``outlast admin``: ``--cluster cluster.json`` (any
reachable site), ``--config`` with ``log.nats_urls``, or an embedded server's
data directory (its nats-server's port is in ``DATA_DIR/nats/nats.conf``;
with no server running there, the embedded nats-server is started on the
directory for the moment of the backup).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from outlast.admin_commands import CONNECT_TIMEOUT, embedded_port, reachable
from outlast.backup.manifest import Deployment
from outlast.log.client import LogClient
from outlast.log.engine import NatsNode, embedded_node
from outlast.log.names import Names
from outlast.log.tls import client_context


class SourceError(Exception):
    """The deployment to back up could not be found or reached."""


@dataclass(frozen=True)
class Source:
    log: LogClient
    deployment: Deployment
    where: str

    @property
    def names(self) -> Names:
        return Names(self.deployment.prefix, self.deployment.partitions)


@contextlib.asynccontextmanager
async def open_source(args: argparse.Namespace) -> AsyncIterator[Source]:
    node: NatsNode | None = None
    names = Names()
    tls: ssl.SSLContext | None = None
    if getattr(args, "cluster", None):
        from outlast.cluster.plan import load_description

        description: dict[str, Any] = load_description(Path(args.cluster))
        server_name = str(description.get("server_name") or "localhost")
        names = Names(partitions=int(description.get("partitions") or Names().partitions))
        urls = [str(s["nats_url"]) for s in description["sites"]]
        tls = client_context(str(description.get("tls_ca") or ""))
        live = [u for u in urls if await reachable(u)]
        urls = live + [u for u in urls if u not in live]
        where = f"cluster {args.cluster}"
    else:
        from outlast.config import resolve_config
        from outlast.context import names_of

        config = resolve_config(args)
        server_name = config.server.server_name
        names = names_of(config)
        where = str(config.data_path)
        if config.log.nats_urls:
            urls = list(config.log.nats_urls)
            tls = client_context(config.log.tls_ca, config.log.tls_cert, config.log.tls_key)
            where = ", ".join(urls)
        else:
            port = embedded_port(config.data_path)
            url = f"nats://127.0.0.1:{port}" if port else ""
            if url and await reachable(url):
                urls = [url]
            else:
                if not (config.data_path / "nats").is_dir():
                    raise SourceError(f"no server data in {config.data_path} (wrong --data-dir?)")
                node = embedded_node(config.data_path, 0, config.log.sync_always)
                node.start()
                await node.wait_ready()
                urls = [node.url]
    log = LogClient(urls, name="outlast-backup", publish_timeout=30.0, tls=tls)
    try:
        try:
            await asyncio.wait_for(log.connect(), CONNECT_TIMEOUT)
        except Exception as exc:
            raise SourceError(f"cannot reach the log at {', '.join(urls)}: {exc!r}") from exc
        deployment = Deployment(server_name, names.prefix, names.partitions, names.media_bucket)
        yield Source(log, deployment, where)
    finally:
        await log.close()
        if node is not None:
            await asyncio.get_running_loop().run_in_executor(None, node.stop)
