"""The ``outlast`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from outlast import __version__
from outlast.config import Config, ConfigError, resolve_config
from outlast.runtime import run


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
    from outlast.cluster.commands import add_parsers
    from outlast.drill import commands as drill_commands

    add_parsers(sub)
    drill_commands.add_parsers(sub)
    from outlast import admin_commands

    admin_commands.add_parsers(sub)
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


async def _rebuild_view(config: Config) -> int:
    from outlast.site import Site

    for suffix in ("", "-wal", "-shm"):
        Path(str(config.view_path) + suffix).unlink(missing_ok=True)
    config.server.listen = "127.0.0.1:0"
    site = Site(config)
    try:
        await site.start()  # start() returns once the view has caught up with the log
        assert site.ctx is not None
        applied = site.ctx.positions.snapshot(site.ctx.stream_names)
        print(f"outlast: view rebuilt from the log (positions {list(applied)})", flush=True)
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
            return asyncio.run(_rebuild_view(resolve_config(args)))
        from outlast.cluster.commands import dispatch
        from outlast.drill.commands import dispatch as drill_dispatch

        result = dispatch(args)
        if result is None:
            result = drill_dispatch(args)
        if result is None:
            from outlast.admin_commands import dispatch as admin_dispatch

            result = admin_dispatch(args)
        if result is not None:
            return result
    except ConfigError as exc:
        print(f"outlast: configuration error: {exc}", file=sys.stderr)
        return 2
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
