"""The composition root: one Outlast worker of one site, wired from its configuration.

The embedded default and a site of a three-site cluster run this same code;
only where the log lives (a child nats-server or a cluster's URLs) and how
many replicas each stream has differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from outlast.config import Config, listen_address
from outlast.http.app import build_app
from outlast.http.limits import RateLimits
from outlast.http.server import ConnectionGuard, GuardedSite
from outlast.log.client import LogClient
from outlast.log.engine import NatsNode, embedded_node
from outlast.log.names import all_streams, control_streams
from outlast.service.accounts import Accounts
from outlast.service.context import SiteContext
from outlast.service.create_room import RoomCreator
from outlast.service.filters import Filters
from outlast.service.health import Health
from outlast.service.membership import Memberships
from outlast.service.messages import Messages
from outlast.service.passwords import Passwords
from outlast.service.rooms import RoomWriter
from outlast.service.sync import Sync
from outlast.view import queries
from outlast.view.notifier import Notifier
from outlast.view.projector import Projector
from outlast.view.state_cache import StateCache
from outlast.view.store import Positions, open_db

log = logging.getLogger(__name__)

# Pending connections the kernel queues before the worker accepts them. When a
# site fails, its users reconnect to the others all at once; with aiohttp's
# default of 128, connections beyond it had their handshakes dropped and sat
# until the client gave up (bench: 10,000 parked /syncs opened at once).
# The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096


@dataclass
class Services:
    """Everything the HTTP handlers may call; built once per worker."""

    ctx: SiteContext
    projector: Projector
    accounts: Accounts
    creator: RoomCreator
    memberships: Memberships
    messages: Messages
    sync: Sync
    filters: Filters

    def rooms_joined(self, user_id: str) -> list[str]:
        return queries.joined_rooms(self.ctx.conn, user_id)

    health_check: Health | None = None
    writer: RoomWriter | None = None
    # Feature services by name (receipts, typing, media, ...), see outlast/features.py.
    features: dict[str, Any] = field(default_factory=dict)

    async def health(self) -> dict[str, Any]:
        assert self.health_check is not None
        return await self.health_check.report()


class Site:
    """Start and stop one worker: log (and embedded node), view, projector, HTTP."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.node: NatsNode | None = None
        self.log: LogClient | None = None
        self.services: Services | None = None
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        config = self.config
        config.data_path.mkdir(parents=True, exist_ok=True)
        urls = list(config.log.nats_urls)
        if config.embedded_nats:
            self.node = embedded_node(
                config.data_path, config.log.nats_port, config.log.sync_always
            )
            self.node.start()
            await self.node.wait_ready()
            urls = [self.node.url]
        self.log = LogClient(
            urls,
            name=f"outlast-{config.server.site}",
            publish_timeout=config.log.publish_timeout_seconds,
        )
        await self.log.connect()
        streams = all_streams(config.log.partitions)
        await self._ensure_streams([*streams, *control_streams()])
        conn = open_db(config.view_path, [s.name for s in streams])
        positions = Positions(conn)
        notifier = Notifier()
        state_cache = StateCache(conn)
        ctx = SiteContext(config, self.log, conn, positions, notifier, state_cache=state_cache)
        projector = Projector(conn, self.log, streams, positions, notifier, state_cache)
        await self._start_projector(projector)
        writer = RoomWriter(ctx)
        self.services = Services(
            ctx=ctx,
            projector=projector,
            accounts=Accounts(ctx, Passwords(config.auth)),
            creator=RoomCreator(ctx, writer),
            memberships=Memberships(ctx, writer),
            messages=Messages(ctx, writer),
            sync=Sync(ctx),
            filters=Filters(ctx),
        )
        self.services.health_check = Health(ctx, projector)
        self.services.writer = writer
        from outlast.features import INSTALLERS

        for install in INSTALLERS:
            install(self.services)
        for hook in ctx.extensions.on_start:
            await hook()
        await self._catch_up(streams)
        limits = RateLimits(config)
        app = build_app(
            self.services,
            max_request_bytes=config.limits.max_request_bytes,
            limits=limits,
        )
        # Long request lines get a Matrix 400 from our handlers rather than
        # aiohttp's plain-text rejection for anything up to 64 KiB.
        handler_args: dict[str, Any] = {
            "access_log": None,
            "max_line_size": 65536,
            "max_field_size": 65536,
            "keepalive_timeout": config.limits.keepalive_timeout_seconds,
            # After answering a request whose body is still coming (a 408 for a
            # stalled body, a 413, a 401 before reading), aiohttp drains the rest
            # for this long before closing; a stalled body gets no longer than it
            # got in the first place.
            "lingering_time": min(10.0, config.limits.body_timeout_seconds),
        }
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0, **handler_args)
        await self.runner.setup()
        host, port = listen_address(config)
        site = GuardedSite(
            self.runner,
            host,
            port,
            ConnectionGuard(config.limits, limits.addresses),
            handler_args,
            reuse_port=config.server.reuse_port,
            backlog=LISTEN_BACKLOG,
        )
        await site.start()
        self.port = site.port
        log.info("outlast site %s listening on http://%s:%s", config.server.site, host, self.port)

    async def _ensure_streams(self, streams: Any) -> None:
        assert self.log is not None
        deadline = time.monotonic() + 60
        while True:
            try:
                await self.log.ensure_streams(
                    streams,
                    replicas=self.config.log.replicas,
                    duplicate_window=float(self.config.log.duplicate_window_seconds),
                )
                return
            except Exception as exc:  # noqa: BLE001 - JetStream may still be electing
                if time.monotonic() > deadline:
                    raise
                log.info("waiting for JetStream to accept stream setup: %s", exc)
                await asyncio.sleep(0.5)

    async def _start_projector(self, projector: Projector) -> None:
        """Create the view's consumers, retrying while JetStream is still settling.

        Right after a cluster's streams are created (or while a stream leader is
        being elected) a consumer request can time out; that is a reason to wait,
        not to exit.
        """
        deadline = time.monotonic() + 60
        while True:
            try:
                await projector.start()
                return
            except Exception as exc:  # noqa: BLE001 - JetStream may still be electing
                if time.monotonic() > deadline:
                    raise
                log.info("waiting for JetStream to accept the view's consumers: %s", exc)
                await asyncio.sleep(0.5)

    async def _catch_up(self, streams: Any) -> None:
        """Start serving only once the view has applied what the log held at start."""
        assert self.services is not None
        ctx = self.services.ctx
        for spec in streams:
            with contextlib.suppress(Exception):
                last = await ctx.log.last_seq(spec.name)
                await ctx.positions.wait_for(spec.name, last, 300)

    async def stop(self) -> None:
        if self.services is not None:
            # Parked /sync long-polls answer at once (clients resume elsewhere)
            # instead of holding the shutdown for up to their timeout.
            self.services.ctx.notifier.close()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self.services is not None:
            for hook in self.services.ctx.extensions.on_stop:
                try:
                    await hook()
                except Exception:  # noqa: BLE001 - stopping is best effort
                    log.exception("stop hook failed")
            await self.services.projector.stop()
            self.services.ctx.conn.close()
            self.services = None
        if self.log is not None:
            await self.log.close()
            self.log = None
        if self.node is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.node.stop)
            self.node = None
