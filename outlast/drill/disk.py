"""The `disk-full` fault: fill the filesystem under one site's data, later free it.

The site's data directory must be a filesystem of its own (`cluster up
--disk-mb N` puts each on a small tmpfs): filling the host's disk would hurt
everything else on the machine. A filler file is written until the kernel
answers ENOSPC; then the node (nats-server) and the workers (view SQLite,
logs) meet a full disk on their next write. Freeing deletes the filler.

nats-server answers a write error "no space left" by shutting JetStream down
on that node ("JetStream out of resources, will be DISABLED",
server/jetstream.go handleOutOfSpace) and never turns it back on by itself;
the node stays in the cluster as a plain NATS server. So after freeing,
the site is powered on again (its processes restarted on the same disk)
when its node says JetStream is off or a worker has exited; the report says
which it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from outlast.cluster.disks import disk_usage
from outlast.drill.load import Load

FILLER = "drill-filler"
CHUNK = 1 << 20
DISABLED_LINE = "will be DISABLED"


def fill(site: dict[str, Any]) -> dict[str, Any]:
    """Write a filler file under the site's data directory until the disk is full."""
    data_dir = Path(site["data_dir"])
    if not os.path.ismount(data_dir):
        raise RuntimeError(
            f"disk-full needs site {site['name']}'s data directory on a filesystem of its "
            "own; start the cluster with `outlast cluster up --disk-mb N` (root)"
        )
    before = disk_usage(data_dir)
    logs = {str(p): p.stat().st_size for p in data_dir.glob("nats-*/nats.log")}
    written = 0
    chunk = b"\0" * CHUNK
    fd = os.open(data_dir / FILLER, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        size = CHUNK
        while size >= 512:
            try:
                written += os.write(fd, chunk[:size])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                size //= 2  # the last few blocks, in smaller pieces
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
    return {
        "site": site["name"],
        "disk_bytes": before["size"],
        "free_before": before["free"],
        "filler_bytes": written,
        "free_after": disk_usage(data_dir)["free"],
        "_logs": logs,
    }


def jetstream_enabled(monitor_url: str) -> bool | None:
    """What the node's monitoring endpoint says (None: it did not answer)."""
    try:
        with urllib.request.urlopen(monitor_url + "/jsz", timeout=5) as resp:  # loopback
            jsz = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    return not jsz.get("disabled", False) and bool(jsz.get("config"))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def probe_writes(load: Load, url: str, count: int = 5) -> dict[str, Any]:
    """Sends straight to the full site (not through the front door): what a client
    that reaches it is told. Each is a new txnId, sent once."""
    seen: dict[str, int] = {}
    user = load.users[0]
    room = load.rooms[0]
    for i in range(count):
        txn = f"diskfull{int(time.time() * 1000)}-{i}"
        path = f"/_matrix/client/v3/rooms/{quote(room)}/send/m.room.message/{txn}"
        try:
            status, data, _ = await load.request(
                "PUT", path, {"msgtype": "m.notice", "body": "disk-full probe"}, user.token, url
            )
            errcode = str(data.get("errcode", "")) if isinstance(data, dict) else "not JSON"
            key = f"{status} {errcode}".strip()
        except (TimeoutError, OSError, aiohttp.ClientError) as exc:
            key = f"no answer ({type(exc).__name__})"
        seen[key] = seen.get(key, 0) + 1
        await asyncio.sleep(0.5)
    # Refused with a Matrix error (503, never 500), or taken: a taken one is durable
    # on a quorum like any other acknowledged send.
    ok = all(k == "200" or (k.startswith("503 ") and k != "503 not JSON") for k in seen)
    return {"answers": seen, "ok": ok}


def free(site: dict[str, Any], inflicted: dict[str, Any]) -> dict[str, Any]:
    """Delete the filler; say what the node and the workers made of the full disk,
    and whether the site must be powered on again (``restart``)."""
    data_dir = Path(site["data_dir"])
    with contextlib.suppress(FileNotFoundError):
        (data_dir / FILLER).unlink()
    text = ""
    for path, offset in inflicted.get("_logs", {}).items():
        with contextlib.suppress(OSError), open(path, "rb") as f:
            f.seek(offset)
            text += f.read().decode(errors="replace")
    lines = [ln for ln in text.splitlines() if "[ERR]" in ln or "[WRN]" in ln]
    enabled = jetstream_enabled(site["monitor_url"])
    exited = [pid for pid in site["pids"] if not _alive(pid)]
    disabled = DISABLED_LINE in text or enabled is False
    return {
        "free_after_removal": disk_usage(data_dir)["free"],
        "jetstream_disabled": disabled,
        "jetstream_enabled_at_free": enabled,
        "node_errors": len(lines),
        "node_log": lines[:8],
        "processes_exited": exited,
        "restart": disabled or bool(exited),
    }
