"""`outlast admin grant|revoke USER`: make an account a server administrator, or not.

The flag is a fact on the log (see outlast/accounts/admins.py), so it reaches
every site's view. Where the log is:

- ``--cluster FILE``: the cluster.json of ``outlast cluster up``; the command
  tries every site's node in turn, so it works while a site is down.
- ``--config FILE`` with ``log.nats_urls`` set: those URLs (a site of a
  multi-site deployment).
- ``--config FILE`` / ``--data-dir DIR`` of the embedded default: the running
  server's nats-server, whose port is in ``DATA_DIR/nats/nats.conf``. When no
  server is running there, the command starts the embedded nats-server on the
  data directory itself for the moment it needs it (start the server after,
  not during, that moment).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path
from typing import Any

CONNECT_TIMEOUT = 15.0
WRITE_TIMEOUT = 20.0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = sub.add_parser("admin", help="grant or revoke server administrator rights")
    asub = admin.add_subparsers(dest="admin_command", metavar="ACTION")
    for name, text in (
        ("grant", "make an account a server administrator (may use the site dashboard)"),
        ("revoke", "take server administrator rights away from an account"),
    ):
        p = asub.add_parser(
            name,
            help=text,
            description=text + ". The change is a fact on "
            "the log: every site sees it within moments.",
        )
        p.add_argument(
            "user", metavar="USER", help="full user id (@alice:example.org) or a localpart (alice)"
        )
        where = p.add_mutually_exclusive_group()
        where.add_argument(
            "--cluster", metavar="FILE", help="cluster.json of a running `outlast cluster`"
        )
        where.add_argument(
            "--config", metavar="FILE", help="the site's TOML configuration (see docs/config.md)"
        )
        p.add_argument(
            "--data-dir",
            metavar="DIR",
            help="data directory of an embedded server (default ./outlast-data)",
        )


def dispatch(args: argparse.Namespace) -> int | None:
    if args.command != "admin":
        return None
    if args.admin_command not in ("grant", "revoke"):
        return None
    return asyncio.run(_run(args, admin=args.admin_command == "grant"))


def _user_id(user: str, server_name: str) -> str:
    user = user.strip()
    if user.startswith("@"):
        return user
    return f"@{user}:{server_name}"


def embedded_port(data_dir: Path) -> int | None:
    conf = data_dir / "nats" / "nats.conf"
    try:
        text = conf.read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r'^listen:\s*"[^"]*:(\d+)"', text, re.MULTILINE)
    return int(match.group(1)) if match else None


async def reachable(url: str) -> bool:
    host, _, port = url.removeprefix("nats://").rpartition("@")[2].rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2.0)
    except (TimeoutError, OSError, ValueError):
        return False
    writer.close()
    return True


async def _run(args: argparse.Namespace, *, admin: bool) -> int:
    from outlast.accounts.admins import UnknownUser, set_admin
    from outlast.context import names_of
    from outlast.log.client import LogClient, LogUnavailable
    from outlast.log.engine import NatsNode, embedded_node
    from outlast.log.names import Names

    node: NatsNode | None = None
    urls: list[str]
    names = Names()  # a cluster from `outlast cluster` uses the default names
    tls_ca = ""
    if args.cluster:
        from outlast.cluster.plan import load_description

        description: dict[str, Any] = load_description(Path(args.cluster))
        server_name = str(description.get("server_name") or "localhost")
        urls = [str(s["nats_url"]) for s in description["sites"]]
        tls_ca = str(description.get("tls_ca") or "")
        # Try the reachable nodes first: a burned site's node refuses at once.
        live = [u for u in urls if await reachable(u)]
        urls = live + [u for u in urls if u not in live]
    else:
        from outlast.config import resolve_config

        config = resolve_config(args)
        server_name = config.server.server_name
        names = names_of(config)
        if config.log.nats_urls:
            urls = list(config.log.nats_urls)
            tls_ca = config.log.tls_ca
        else:
            port = embedded_port(config.data_path)
            url = f"nats://127.0.0.1:{port}" if port else ""
            if url and await reachable(url):
                urls = [url]
            else:
                if not (config.data_path / "nats").is_dir():
                    print(
                        f"outlast: no server data in {config.data_path} (wrong --data-dir?)",
                        file=sys.stderr,
                    )
                    return 2
                node = embedded_node(config.data_path, 0, config.log.sync_always)
                node.start()
                await node.wait_ready()
                urls = [node.url]
    user_id = _user_id(args.user, server_name)
    from outlast.log.tls import client_context

    log = LogClient(urls, name="outlast-admin", tls=client_context(tls_ca))
    try:
        try:
            await asyncio.wait_for(log.connect(), CONNECT_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - explained to the operator
            print(f"outlast: cannot reach the log at {', '.join(urls)}: {exc!r}", file=sys.stderr)
            return 2
        try:
            ack = await asyncio.wait_for(set_admin(log, names, user_id, admin), WRITE_TIMEOUT)
        except UnknownUser:
            print(f"outlast: no account {user_id} (register it first)", file=sys.stderr)
            return 1
        except (TimeoutError, LogUnavailable) as exc:
            print(f"outlast: the log could not commit the change: {exc!r}", file=sys.stderr)
            return 2
        verb = "is now" if admin else "is no longer"
        print(
            f"outlast: {user_id} {verb} a server administrator (log {ack.stream} "
            f"sequence {ack.seq})",
            flush=True,
        )
        return 0
    finally:
        await log.close()
        if node is not None:
            await asyncio.get_running_loop().run_in_executor(None, node.stop)
