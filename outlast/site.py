"""The composition root: one Outlast worker of one site, wired from its configuration.

The embedded default and a site of a three-site cluster run this same code;
only where the log lives (a child nats-server or a cluster's URLs) and how
many replicas each stream has differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from outlast.account_data.service import AccountData, AccountDataSync
from outlast.accounts.admins import Admins
from outlast.accounts.devices import Devices
from outlast.accounts.openid import OpenId
from outlast.accounts.passwords import Passwords
from outlast.accounts.service import Accounts
from outlast.backup.manifest import Deployment
from outlast.backup.schedule import BackupScheduler
from outlast.clock import SYSTEM, Clock
from outlast.config import Config, listen_address
from outlast.context import SiteContext, names_of
from outlast.directory.hierarchy import Hierarchy
from outlast.directory.service import Directory
from outlast.e2ee.keys import E2eeSync, Keys
from outlast.e2ee.to_device import ToDevice
from outlast.http.app import build_app
from outlast.http.limits import RateLimits
from outlast.http.metrics import Metrics
from outlast.http.server import ConnectionGuard, GuardedSite
from outlast.log.client import LogClient
from outlast.log.engine import NatsNode, embedded_node
from outlast.log.lease import KeyBucket
from outlast.log.names import Names
from outlast.log.tls import client_context
from outlast.media.service import MediaRepository
from outlast.ops.dashboard import Dashboard
from outlast.ops.health import Health
from outlast.presence.service import Presence
from outlast.presence.typing import Typing
from outlast.profiles.service import Profiles
from outlast.push.delivery import Delivery
from outlast.push.service import Push
from outlast.receipts.service import Receipts
from outlast.room_keys.service import RoomKeys
from outlast.rooms.bundles import Bundler
from outlast.rooms.context import RoomContext
from outlast.rooms.create import RoomCreator
from outlast.rooms.membership import Memberships
from outlast.rooms.messages import Messages
from outlast.rooms.redactions import Redactions
from outlast.rooms.relations import Relations
from outlast.rooms.writer import RoomWriter
from outlast.services import Services
from outlast.sliding_sync.service import SlidingSync
from outlast.sync.filters import Filters
from outlast.sync.service import Sync
from outlast.sync.window import EphemeralCounter, chain
from outlast.view.notifier import Notifier
from outlast.view.ownership import ViewLock
from outlast.view.pg.lock import AdvisoryLock, schema_guard
from outlast.view.projector import Projector, Sharing
from outlast.view.snapshot import Manifest, Progress, SnapshotTimer, take_snapshot
from outlast.view.state_cache import StateCache
from outlast.view.store import Positions, open_db
from outlast.voip.service import Turn

log = logging.getLogger(__name__)

# Pending connections the kernel queues before the worker accepts them. When a
# site fails, its users reconnect to the others all at once; with aiohttp's
# default of 128, connections beyond it had their handshakes dropped and sat
# until the client gave up (bench: 10,000 parked /syncs opened at once).
# The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096

Hook = Callable[[], Awaitable[None]]
# Runs before the view is opened, with the log connected: may install a view file
# (outlast/view/snapshot.py::seed_view).
Seed = Callable[[LogClient, Names], Awaitable[object]]


def build_services(ctx: SiteContext, projector: Projector) -> Services:
    """Every service of one worker, each given what it needs. The order of /sync's
    sources is the order their parts appear in a response."""
    config = ctx.config
    writer = RoomWriter(ctx)
    counter = EphemeralCounter()
    receipts = Receipts(ctx)
    typing = Typing(ctx, counter)
    presence = Presence(ctx)
    keys = Keys(ctx)
    to_device = ToDevice(ctx)
    push = Push(ctx)
    # What every served room event gets in ``unsigned``: bundled relations, unread number.
    decorate = chain(Bundler(ctx).decorate, receipts.decorate)
    messages = Messages(ctx, writer, decorate=decorate)
    directory = Directory(ctx, writer)
    health = Health(ctx, projector)
    sources = (receipts, typing, presence, AccountDataSync(ctx), E2eeSync(keys, to_device), push)
    sync = Sync(ctx, sources, counter, health, decorate=decorate)
    sliding = SlidingSync(
        ctx, sync, keys, to_device, AccountDataSync(ctx), (receipts, typing, push)
    )
    return Services(
        config=config,
        accounts=Accounts(ctx, Passwords(config.auth)),
        devices=Devices(ctx),
        admins=Admins(ctx),
        openid=OpenId(ctx),
        creator=RoomCreator(ctx, writer, directory),
        memberships=Memberships(ctx, writer),
        messages=messages,
        redactions=Redactions(ctx, writer),
        room_context=RoomContext(ctx, messages),
        relations=Relations(ctx, messages, decorate=decorate),
        sync=sync,
        sliding_sync=sliding,
        filters=Filters(ctx),
        receipts=receipts,
        typing=typing,
        presence=presence,
        profiles=Profiles(ctx, writer),
        directory=directory,
        hierarchy=Hierarchy(ctx),
        account_data=AccountData(ctx),
        push=push,
        push_delivery=Delivery(ctx, push),
        keys=keys,
        to_device=to_device,
        room_keys=RoomKeys(ctx),
        media=MediaRepository(ctx),
        turn=Turn(config.voip, ctx.clock),
        health=health,
        dashboard=Dashboard(ctx, health),
    )


def start_hooks(services: Services) -> list[Hook]:
    """Background work a worker starts before it serves, in order."""
    return [
        services.typing.start,
        services.media.start,
        services.health.start_reports,
        services.push_delivery.start,
    ]


def stop_hooks(services: Services) -> list[Hook]:
    """What a worker stops after it stopped serving, in order."""
    return [
        services.push_delivery.stop,
        services.typing.stop,
        services.devices.stop,
        services.to_device.stop,
        services.media.stop,
        services.health.stop_reports,
    ]


class Site:
    """Start and stop one worker: log (and embedded node), view, projector, HTTP."""

    def __init__(self, config: Config, clock: Clock = SYSTEM, *, seed: Seed | None = None) -> None:
        self.config = config
        self.clock = clock
        self.seed = seed
        self.snapshots: SnapshotTimer | None = None
        self.node: NatsNode | None = None
        self.log: LogClient | None = None
        self.ctx: SiteContext | None = None
        self.projector: Projector | None = None
        self.services: Services | None = None
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        self.backups: BackupScheduler | None = None

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
            manage_streams=config.log.manage_streams,
            tls=client_context(config.log.tls_ca, config.log.tls_cert, config.log.tls_key),
        )
        await self.log.connect()
        names = names_of(config)
        streams = names.streams()
        await self._ensure_streams([*streams, *names.control_streams()])
        if config.backup.schedule_seconds:
            await KeyBucket(self.log, names.backup_bucket).ensure(config.log.replicas)
        if self.seed is not None:
            await self.seed(self.log, names)
        with contextlib.ExitStack() as setting_up:
            if config.view_dsn is not None:
                setting_up.enter_context(schema_guard(config.view_dsn))
            conn = open_db(
                config.view_path,
                [s.name for s in streams],
                shared=config.view.is_shared,
                dsn=config.view_dsn,
            )
        positions = Positions(conn)
        notifier = Notifier()
        state_cache = StateCache(conn)
        ctx = SiteContext(
            config, self.log, conn, positions, notifier, state_cache=state_cache, clock=self.clock
        )
        projector = Projector(
            conn,
            self.log,
            streams,
            positions,
            notifier,
            state_cache,
            clock=self.clock,
            sharing=self._sharing(names),
            push_prune=config.push.prune_policy(),
        )
        await self._start_projector(projector)
        self.ctx, self.projector = ctx, projector
        self.services = build_services(ctx, projector)
        for hook in start_hooks(self.services):
            await hook()
        await self._catch_up(streams)
        if config.view.snapshot_interval_seconds > 0:
            self.snapshots = SnapshotTimer(
                config.view.snapshot_interval_seconds, self._timed_snapshot
            )
            self.snapshots.start()
        limits = RateLimits(config)
        metrics = (
            Metrics(
                config.server.site,
                self.services.health,
                notifier.waiting,
                self.log,
                ctx.barrier.stats,
                self.services.media,
                limits,
            )
            if config.metrics.enabled
            else None
        )
        app = build_app(
            self.services,
            metrics=metrics,
            barrier=ctx.barrier,
            read_streams=ctx.read_streams,
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
        if config.backup.schedule_seconds:
            self.backups = self._backup_scheduler(names)
            self.backups.start()

    def _backup_scheduler(self, names: Names) -> BackupScheduler:
        """This worker's part in the backup schedule (docs/backup.md#scheduled-backups)."""
        assert self.log is not None
        config = self.config
        deployment = Deployment(
            config.server.server_name, names.prefix, names.partitions, names.media_bucket
        )
        holder = f"{config.server.site or 'site'}@{socket.gethostname()}:{os.getpid()}"
        return BackupScheduler(self.log, config.backup, deployment, names.backup_bucket, holder)

    def _sharing(self, names: Names) -> Sharing | None:
        """With ``--workers N``, or on PostgreSQL (any worker, any machine), workers share
        one view; one of them projects (docs/scale.md)."""
        view = self.config.view_path
        site = self.config.server.site
        if self.config.view.backend == "postgresql":
            lock = AdvisoryLock(self.config.view.dsn)
            subject = names.view_subject(site, lock.identity())
            return Sharing(lock, subject, backend="postgresql")
        if not self.config.view.shared:
            return None
        key = str(view.resolve())
        return Sharing(ViewLock(view), names.view_subject(site, key))

    async def _timed_snapshot(self) -> Manifest | None:
        """The periodic snapshot: of a shared view, only its projecting worker takes one."""
        if self.projector is not None and not self.projector.owns:
            return None
        if self.config.view_dsn is not None:
            return None  # a PostgreSQL view is copied with pg_dump instead (docs/scale.md)
        return await self.snapshot()

    async def snapshot(self, progress: Progress | None = None) -> Manifest:
        """Store a snapshot of this worker's view in the log's object store."""
        ctx = self.ctx
        assert ctx is not None, "the site is not running"
        config = self.config
        if config.view_dsn is not None:
            raise RuntimeError(
                "view snapshots are of SQLite views; a PostgreSQL view is seeded from another "
                "site's database with pg_dump (docs/scale.md#postgresql-views)"
            )
        return await take_snapshot(
            ctx.conn,
            ctx.log,
            ctx.names,
            replicas=config.log.replicas,
            server_name=config.server.server_name,
            site=config.server.site,
            keep=config.view.snapshot_keep,
            workdir=config.view_path.parent,
            progress=progress or log.info,
        )

    async def _ensure_streams(self, streams: Any) -> None:
        assert self.log is not None
        deadline = self.clock.monotonic() + 60
        while True:
            try:
                await self.log.ensure_streams(
                    streams,
                    replicas=self.config.log.replicas,
                    duplicate_window=float(self.config.log.duplicate_window_seconds),
                )
                return
            except Exception as exc:  # JetStream may still be electing
                if self.clock.monotonic() > deadline:
                    raise
                log.info("waiting for JetStream to accept stream setup: %s", exc)
                await self.clock.sleep(0.5)

    async def _start_projector(self, projector: Projector) -> None:
        """Create the view's consumers, retrying while JetStream is still settling.

        Right after a cluster's streams are created (or while a stream leader is
        being elected) a consumer request can time out; that is a reason to wait,
        not to exit.
        """
        deadline = self.clock.monotonic() + 60
        while True:
            try:
                await projector.start()
                return
            except Exception as exc:  # JetStream may still be electing
                if self.clock.monotonic() > deadline:
                    raise
                log.info("waiting for JetStream to accept the view's consumers: %s", exc)
                await self.clock.sleep(0.5)

    async def _catch_up(self, streams: Any) -> None:
        """Start serving only once the view has applied what the log held at start."""
        ctx = self.ctx
        assert ctx is not None
        for spec in streams:
            with contextlib.suppress(Exception):
                last = await ctx.log.last_seq(spec.name)
                await ctx.positions.wait_for(spec.name, last, 300)

    async def stop(self) -> None:
        if self.backups is not None:
            await self.backups.stop()
            self.backups = None
        if self.snapshots is not None:
            await self.snapshots.stop()
            self.snapshots = None
        if self.ctx is not None:
            # Parked /sync long-polls answer at once (clients resume elsewhere)
            # instead of holding the shutdown for up to their timeout.
            self.ctx.notifier.close()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self.services is not None:
            for hook in stop_hooks(self.services):
                try:
                    await hook()
                except Exception:  # stopping is best effort
                    log.exception("stop hook failed")
            self.services = None
        if self.projector is not None:
            await self.projector.stop()
            self.projector = None
        if self.ctx is not None:
            self.ctx.conn.close()
            self.ctx = None
        if self.log is not None:
            await self.log.close()
            self.log = None
        if self.node is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.node.stop)
            self.node = None
