"""The ``outlast backup restore`` command: pick and check the backup, then restore it into a
new single-site data directory (outlast/backup/restore.py) or a new local cluster
(outlast/backup/cluster_restore.py)."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from outlast.backup.cluster_restore import restore_cluster
from outlast.backup.manifest import Cut, Manifest, parse_time, parse_until_seq
from outlast.backup.restore import deployment_toml, restore_into, say, summarize
from outlast.backup.target import DirectoryTarget, backups_in
from outlast.backup.verify import read_manifest, verify
from outlast.config import DATA_DIR_CONFIG as DEPLOYMENT_FILE
from outlast.log.client import LogClient, LogUnavailable


def choose_backup(path: Path) -> Path:
    found = backups_in(path)
    if not found:
        raise ValueError(f"no finished backup in {path}")
    return found[-1]


def make_cut(args: argparse.Namespace, manifest: Manifest) -> Cut:
    if getattr(args, "until", None):
        return Cut(until_ns=parse_time(args.until))
    if getattr(args, "until_seq", None):
        return Cut(until_seq=parse_until_seq(args.until_seq, [s.name for s in manifest.streams]))
    return Cut()


async def run_restore(args: argparse.Namespace) -> int:
    from outlast.log.engine import embedded_node

    try:
        chosen = choose_backup(Path(args.source))
        target = DirectoryTarget(chosen)
        problems = verify(target)
        if problems:
            say(f"{chosen} does not verify: {'; '.join(problems)}")
            return 1
        manifest = read_manifest(target)
        cut = make_cut(args, manifest)
    except ValueError as exc:
        say(str(exc))
        return 2
    data_dir = Path(args.data_dir or args.cluster_dir)
    if data_dir.exists() and any(data_dir.iterdir()):
        say(f"{data_dir} is not empty: restore only into a new data directory")
        return 2
    if args.cluster_dir:
        return await restore_cluster(target, manifest, cut, data_dir, args.sites, str(chosen))
    started = time.monotonic()
    say(f"restoring {chosen} ({manifest.created}) into {data_dir}")
    node = embedded_node(data_dir, 0, sync_always=False)
    node.start()
    log = LogClient([node.url], name="outlast-restore", publish_timeout=30.0)
    try:
        await node.wait_ready()
        await log.connect()
        restored = await restore_into(log, target, manifest, cut, replicas=1)
    except (ValueError, LogUnavailable, OSError) as exc:
        say(f"restore FAILED: {exc!r}")
        return 1
    finally:
        await log.close()
        await asyncio.get_running_loop().run_in_executor(None, node.stop)
    (data_dir / DEPLOYMENT_FILE).write_text(
        deployment_toml(manifest, str(chosen)), encoding="utf-8"
    )
    summarize(restored, time.monotonic() - started, f"outlast serve --data-dir {data_dir}")
    print(data_dir / DEPLOYMENT_FILE, flush=True)
    return 0
