"""``outlast backup create|list|verify|restore``: the command-line contract of issue 14.

- ``create --to DIR [--config FILE | --data-dir DIR | --cluster CLUSTER.json]``
  writes ``DIR/backup-<UTC time>/`` from a running deployment; exits 0 only
  when the backup is complete and verified; prints the manifest path last.
- ``list DIR`` and ``verify DIR`` (a backup, or a directory of backups).
- ``restore --from DIR --data-dir NEWDIR [--until TIME | --until-seq S=N,...]``, or
  ``--cluster-dir NEWDIR --sites 3`` for a new local cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from outlast.backup.target import backups_in


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = sub.add_parser("backup", help="back up a deployment, list, verify and restore backups")
    bsub = backup.add_subparsers(dest="backup_command", metavar="ACTION")
    create = bsub.add_parser(
        "create",
        help="an online, consistent backup of every stream and the media bucket",
        description="Read every stream (users, directory, room partitions, drills) and the "
        "media bucket of a running deployment up to one backup point, through JetStream "
        "consumers, into a new directory under DIR; verify it; print the manifest path last.",
    )
    create.add_argument("--to", required=True, metavar="DIR", help="where backups are kept")
    where = create.add_mutually_exclusive_group()
    where.add_argument(
        "--cluster", metavar="FILE", help="cluster.json of a running `outlast cluster`"
    )
    where.add_argument("--config", metavar="FILE", help="the site's TOML configuration")
    create.add_argument("--data-dir", metavar="DIR", help="data directory of an embedded server")
    schedule = bsub.add_parser(
        "schedule",
        help="take backups on the schedule of the config's [backup] section until stopped",
        description="Compete for the backup lease of the deployment (a key with a TTL in "
        "the log) and, while holding it, take one verified backup per period into "
        "[backup] target, then apply retention (keep, max_age_seconds). Run it at "
        "every site: exactly one takes each backup; when it dies another takes over.",
    )
    schedule.add_argument("--config", required=True, metavar="FILE", help="the site's TOML")
    schedule.add_argument("--data-dir", metavar="DIR", help="data directory (embedded server)")
    for name, text in (
        ("list", "list the backups in a directory"),
        ("verify", "check a backup's files against its manifest (or every backup in DIR)"),
    ):
        p = bsub.add_parser(name, help=text, description=text + ".")
        p.add_argument("dir", metavar="DIR")
    restore = bsub.add_parser(
        "restore",
        help="restore a backup into a new data directory",
        description="Recreate every stream of a backup, message by message at its original "
        "sequence, in a new single-site data directory that `outlast serve --data-dir NEWDIR` "
        "then serves (sync and access tokens keep working). --until/--until-seq restore only "
        "what came before a moment (point in time).",
    )
    restore.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="DIR",
        help="a backup (or a directory of backups: the newest is used)",
    )
    into = restore.add_mutually_exclusive_group(required=True)
    into.add_argument(
        "--data-dir", metavar="NEWDIR", help="a new (absent or empty) single-site data directory"
    )
    into.add_argument(
        "--cluster-dir",
        metavar="NEWDIR",
        help="a new local cluster's directory (then: outlast cluster up --dir NEWDIR)",
    )
    restore.add_argument(
        "--sites", type=int, default=3, help="sites of the new cluster (default 3)"
    )
    cut = restore.add_mutually_exclusive_group()
    cut.add_argument(
        "--until",
        metavar="TIME",
        help="apply only messages stored at or before TIME (ISO 8601, UTC if no "
        "zone, or epoch seconds)",
    )
    cut.add_argument(
        "--until-seq",
        metavar="STREAM=SEQ,...",
        help="apply each named stream only up to SEQ (others whole)",
    )


def dispatch(args: argparse.Namespace) -> int | None:
    if args.command != "backup":
        return None
    action = getattr(args, "backup_command", None)
    if action == "create":
        return asyncio.run(_create(args))
    if action == "schedule":
        return asyncio.run(_schedule(args))
    if action == "list":
        return _list(Path(args.dir))
    if action == "verify":
        return _verify(Path(args.dir))
    if action == "restore":
        from outlast.backup.restore_command import run_restore

        return asyncio.run(run_restore(args))
    return None


def _say(line: str) -> None:
    print(f"outlast backup: {line}", file=sys.stderr, flush=True)


async def _create(args: argparse.Namespace) -> int:
    from outlast.backup.create import BackupFailed, create_backup
    from outlast.backup.source import SourceError, open_source
    from outlast.log.client import LogUnavailable, StreamMissing

    try:
        async with open_source(args) as source:
            path, manifest = await create_backup(source, Path(args.to))
    except SourceError as exc:
        _say(str(exc))
        return 2
    except (BackupFailed, LogUnavailable, StreamMissing, OSError) as exc:
        _say(f"backup FAILED: {exc!r}")
        return 1
    rate = (
        manifest.total_bytes / manifest.duration_seconds / 1e6 if manifest.duration_seconds else 0
    )
    _say(
        f"done: {len(manifest.streams)} streams, {manifest.total_messages} messages, "
        f"{manifest.total_bytes} bytes in {manifest.duration_seconds:.2f} s ({rate:.1f} MB/s); "
        "verified"
    )
    print(path, flush=True)
    return 0


async def _schedule(args: argparse.Namespace) -> int:
    import logging
    import os
    import signal
    import socket

    from outlast.backup.schedule import BackupScheduler
    from outlast.backup.source import SourceError, open_source
    from outlast.config import resolve_config
    from outlast.context import names_of

    logging.basicConfig(level=logging.INFO, format="outlast backup: %(message)s")
    config = resolve_config(args)
    if not config.backup.schedule_seconds:
        _say("no schedule: set [backup] schedule_seconds and target in the config")
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    holder = f"{config.server.site or 'site'}@{socket.gethostname()}:{os.getpid()}"
    try:
        async with open_source(args) as source:
            scheduler = BackupScheduler(
                source.log,
                config.backup,
                source.deployment,
                names_of(config).backup_bucket,
                holder,
            )
            scheduler.start()
            _say(
                f"{holder}: backups every {config.backup.schedule_seconds:g} s into "
                f"{config.backup.target}, keeping {config.backup.keep}"
            )
            await stop.wait()
            await scheduler.stop()
    except SourceError as exc:
        _say(str(exc))
        return 2
    return 0


def _list(directory: Path) -> int:
    from outlast.backup.target import DirectoryTarget
    from outlast.backup.verify import read_manifest

    found = backups_in(directory)
    if not found:
        _say(f"no backups in {directory}")
        return 1
    for path in found:
        try:
            m = read_manifest(DirectoryTarget(path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"{path}\tunreadable manifest: {exc}")
            continue
        print(
            f"{path}\t{m.created}\t{m.deployment.server_name}\t{len(m.streams)} streams\t"
            f"{m.total_messages} messages\t{m.total_bytes} bytes\t{m.source}"
        )
        for s in m.streams:  # the bounds a point-in-time restore chooses between
            print(
                f"  {s.name}\tsequences {s.first_seq}..{s.last_seq}\t{s.messages} messages\t"
                f"stored {_when(s.first_time_ns)} .. {_when(s.last_time_ns)}"
            )
    return 0


def _when(ns: int) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")


def _verify(directory: Path) -> int:
    from outlast.backup.target import DirectoryTarget
    from outlast.backup.verify import verify

    found = backups_in(directory)
    if not found:
        _say(f"no backups in {directory}")
        return 1
    failed = 0
    for path in found:
        problems = verify(DirectoryTarget(path))
        for problem in problems:
            print(f"{path}: {problem}")
        print(f"{path}: {'OK' if not problems else 'FAILED'}")
        failed += bool(problems)
    return 1 if failed else 0
