"""The ``outlast`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from outlast import __version__
from outlast.config import Config, ConfigError, resolve_config
from outlast.runtime import run

if TYPE_CHECKING:
    from outlast.log.client import LogClient
    from outlast.site import Site


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run a site (with no options: the embedded single-site default)",
        description="Run an Outlast worker. With no configuration it starts one site: a "
        "nats-server child process with JetStream under the data directory, the SQLite "
        "view beside it, and the Client-Server API on 127.0.0.1:8008.",
    )
    _common(p)
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="address of the HTTP API (default 127.0.0.1:8008; port 0 picks a free one)",
    )
    p.add_argument(
        "--server-name",
        metavar="NAME",
        help="the Matrix server name in user and room ids (default localhost)",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes sharing the port, one per core (default 1)",
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML configuration file (see docs/config.md)")
    p.add_argument("--data-dir", metavar="DIR", help="data directory (default ./outlast-data)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="outlast",
        description="Outlast: a Matrix homeserver that keeps serving when a datacenter is lost.",
    )
    parser.add_argument("--version", action="version", version=f"outlast {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _serve_parser(sub)
    view = sub.add_parser("view", help="manage this site's read model (the SQLite view)")
    view_sub = view.add_subparsers(dest="view_command", metavar="ACTION")
    rebuild = view_sub.add_parser(
        "rebuild",
        help="delete the view and rebuild it from the log",
        description="Delete the SQLite view. The next `outlast serve` (or this command, "
        "which runs one catch-up) rebuilds it from the log; it then answers exactly as before.",
    )
    _common(rebuild)
    rebuild.add_argument(
        "--from-snapshot",
        action="store_true",
        help="seed the view from the newest usable snapshot in the log's object store "
        "(same schema version, checksum verified) and replay only the log after it; "
        "with none, replay the whole log",
    )
    snap = view_sub.add_parser(
        "snapshot",
        help="store a snapshot of the view in the log's object store",
        description="Catch the view up with the log and store a consistent copy of it, "
        "with a manifest of its positions, in the deployment's VIEWS object store bucket "
        "(keeping view.snapshot_keep). Like `view rebuild`, it opens the view itself: stop "
        "the server first, or let a running one take them with "
        "view.snapshot_interval_seconds.",
    )
    _common(snap)
    from outlast.cluster.commands import add_parsers
    from outlast.drill import commands as drill_commands

    add_parsers(sub)
    drill_commands.add_parsers(sub)
    from outlast import admin_commands

    admin_commands.add_parsers(sub)
    from outlast.backup import commands as backup_commands

    backup_commands.add_parsers(sub)
    return parser


async def _serve(config: Config) -> int:
    from outlast.site import Site

    site = Site(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await site.start()
        if site.services is not None:
            # `outlast site drain`: out of every load balancer before a planned stop.
            loop.add_signal_handler(signal.SIGUSR1, site.services.health.drain)
        print(
            f"outlast: serving http://{config.server.listen.rsplit(':', 1)[0]}:{site.port} "
            f"(server name {config.server.server_name}, data in {config.data_path})",
            flush=True,
        )
        await stop.wait()
        print("outlast: stopping", flush=True)
    finally:
        await site.stop()
    return 0


def _say(message: str) -> None:
    print(f"outlast: {message}", file=sys.stderr, flush=True)


async def _rebuild_view(config: Config, from_snapshot: bool = False) -> int:
    from outlast.log.names import Names
    from outlast.site import Site
    from outlast.view.snapshot import Manifest, seed_view

    if config.view_dsn is not None:
        from outlast.view.pg.lock import AdvisoryLock, drop_view

        if from_snapshot:
            _say(
                "--from-snapshot is for SQLite views; a PostgreSQL view is seeded from another "
                "site's database by `outlast site rebuild` (docs/scale.md#postgresql-views)"
            )
            return 2
        if AdvisoryLock(config.view_dsn).holder() is not None:
            _say("the view's database is in use by a running server (it holds its lock)")
            return 1
        drop_view(config.view_dsn)
    for suffix in ("", "-wal", "-shm"):
        Path(str(config.view_path) + suffix).unlink(missing_ok=True)
    config.server.listen = "127.0.0.1:0"
    seeded: list[Manifest] = []
    marks: dict[str, float] = {"start": time.monotonic()}

    targets: dict[str, int] = {}

    async def seed(log_client: LogClient, names: Names) -> None:
        marks["log ready"] = time.monotonic()
        # How far to replay, asked before the projector starts: during a big replay the
        # local nats-server answered no stream info for minutes (1 M messages).
        targets.update(await _last_seqs(log_client, [s.name for s in names.streams()]))
        if from_snapshot:
            manifest = await seed_view(log_client, names, config.view_path, _say)
            if manifest is not None:
                seeded.append(manifest)
        marks["view seeded"] = time.monotonic()

    site = Site(config, seed=seed)
    try:
        await site.start()  # start() waits a bounded time for the view to catch up
        assert site.ctx is not None and site.projector is not None
        if not await _replayed_all(site, targets):
            return 1
        marks["caught up"] = time.monotonic()
        applied = site.ctx.positions.snapshot(site.ctx.stream_names)
        source = "a snapshot and the log after it" if seeded else "the whole log"
        steps = ", ".join(
            f"{name} {marks[name] - marks['start']:.1f}s"
            for name in ("log ready", "view seeded", "caught up")
        )
        print(
            f"outlast: view rebuilt from {source} in {marks['caught up'] - marks['start']:.1f}s "
            f"({steps}): {site.projector.applied_count} log messages replayed "
            f"(positions {list(applied)})",
            flush=True,
        )
    finally:
        await site.stop()
    return 0


async def _replayed_all(site: Site, targets: dict[str, int], stalled_after: float = 120.0) -> bool:
    """Wait until the view has applied ``targets`` (every stream's last sequence when the
    rebuild began), however long a big history takes (the server's own start gives up
    after a bound and serves), saying how far it is every 10 s; False when nothing moved
    for ``stalled_after`` s."""
    ctx = site.ctx
    assert ctx is not None
    last_move, last_total = time.monotonic(), -1
    while True:
        behind = {n: t - ctx.positions.applied(n) for n, t in targets.items()}
        left = sum(max(0, b) for b in behind.values())
        if left == 0:
            return True
        if left != last_total:
            last_move, last_total = time.monotonic(), left
        elif time.monotonic() - last_move > stalled_after:
            _say(f"the view stopped catching up with {left} log messages left; see the log")
            return False
        _say(f"replaying: {left} log messages left")
        await asyncio.sleep(10.0)


async def _last_seqs(
    log_client: LogClient, streams: list[str], within: float = 120.0
) -> dict[str, int]:
    """Every stream's last sequence, asked again for up to ``within`` s: a busy local
    nats-server (a big history replaying, seen at 1 M messages) can be slow to answer
    a stream info, which is no reason to fail."""
    from outlast.log.client import LogUnavailable

    deadline = time.monotonic() + within
    while True:
        try:
            return {name: await log_client.last_seq(name) for name in streams}
        except LogUnavailable as exc:
            if time.monotonic() > deadline:
                raise
            _say(f"the log's positions are not answered yet ({exc}); asking again")
            await asyncio.sleep(5.0)


def _view_in_use(path: Path) -> bool:
    """Whether a running worker holds the view file (a single worker keeps an exclusive
    lock on it; workers sharing it hold the lock file beside it)."""
    import sqlite3

    from outlast.view.ownership import held_elsewhere

    if not path.exists():
        return False
    if held_elsewhere(path):
        return True
    conn = sqlite3.connect(str(path), timeout=0.5)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


async def _snapshot_view(config: Config) -> int:
    from outlast.site import Site

    if _view_in_use(config.view_path):
        _say(
            f"the view {config.view_path} is in use by a running server: stop it first, or "
            "let it take snapshots itself ([view] snapshot_interval_seconds)"
        )
        return 1
    config.server.listen = "127.0.0.1:0"
    site = Site(config)
    try:
        await site.start()
        manifest = await site.snapshot(_say)
        print(
            f"outlast: view snapshot stored ({manifest.size} bytes, {manifest.compression}, "
            f"sha256 of the stored bytes {manifest.sha256}, "
            f"positions {manifest.positions})",
            flush=True,
        )
    finally:
        await site.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("nats").setLevel(logging.WARNING)
    try:
        if args.command == "serve":
            config = resolve_config(args)
            if config.server.workers > 1:
                from outlast.workers import serve_workers

                return asyncio.run(serve_workers(config))
            return run(_serve(config))
        if args.command == "view" and args.view_command == "rebuild":
            return asyncio.run(_rebuild_view(resolve_config(args), args.from_snapshot))
        if args.command == "view" and args.view_command == "snapshot":
            return asyncio.run(_snapshot_view(resolve_config(args)))
        from outlast.cluster.commands import dispatch
        from outlast.drill.commands import dispatch as drill_dispatch

        result = dispatch(args)
        if result is None:
            result = drill_dispatch(args)
        if result is None:
            from outlast.admin_commands import dispatch as admin_dispatch

            result = admin_dispatch(args)
        if result is None:
            from outlast.backup.commands import dispatch as backup_dispatch

            result = backup_dispatch(args)
        if result is not None:
            return result
    except ConfigError as exc:
        print(f"outlast: configuration error: {exc}", file=sys.stderr)
        return 2
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
