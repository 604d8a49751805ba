"""The faults a drill can inflict on a running cluster.

- ``fire``: kill -9 every process of the site and delete its data (the default).
- ``power``: kill -9 only; later the site is powered on with the same disks.
- ``partition``: cut the site's links to the other sites; later heal them.
- ``freeze``: SIGSTOP every process (a grey failure); later SIGCONT.
- ``maintenance``: not a fault but planned work: a rolling restart of every
  site (`outlast cluster roll`), each drained before it stops; the drill
  measures what clients notice of it.
- ``power-all``: a coordinated power loss: kill -9 every process of every
  site at once, later power every site on (all at the same time, each on its
  own disks). Only ``sync_interval: always`` makes this survivable: an
  acknowledged message was fsynced on a quorum before the ack, so it must be
  there after power-on. The report counts what was acknowledged before the
  loss and how much of that is missing anywhere.
- ``corrupt``: kill -9 one site (a minority node), then, while it is down,
  damage the last message block of every stream it holds (bytes flipped
  mid-file, the tail truncated), and power it on. nats-server checks each
  record's checksum when it rebuilds a block, truncates at the first bad one
  and marks the rest lost; the raft layer should then catch the replica up
  from the leader. The report lists the damage done, the node's own warnings
  about it and whether its replicas caught up with the leaders'.
- ``freeze-partition``: SIGSTOP the site (the one leading the most streams by
  default) and at the same moment cut another site's links: the third site
  alone has no quorum, so writes stop until the fault is undone (links
  healed, then SIGCONT).
- ``loss``, ``spike``, ``rebuild-partitioned``: faults of the WAN, see netfaults.py.
- ``disk-full``: fill the filesystem under the site's data (outlast/drill/disk.py;
  the cluster needs `cluster up --disk-mb N`), later delete the filler.
- ``skew``: restart the site's workers with their wall clock off (+300 s by
  default; outlast/drill/skew.py), later set it right again.
"""

from __future__ import annotations

import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from outlast.drill import disk, netfaults
from outlast.drill.control import control, result, signal_all

FAULTS = (
    "fire",
    "power",
    "partition",
    "freeze",
    "maintenance",
    "power-all",
    "corrupt",
    "freeze-partition",
    *netfaults.KINDS,
    "disk-full",
    "skew",
)
# Faults that act on every site rather than on one.
WHOLE_CLUSTER = ("maintenance", "power-all")
# What `corrupt` does to the last block of each stream: bytes flipped at its middle,
# and this many bytes cut off its end (a torn last write).
FLIP_BYTES = 16
TRUNCATE_BYTES = 64


def inflict(
    description: dict[str, Any],
    site: dict[str, Any],
    fault: str,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Do the damage; returns what was done (reported, and handed to ``recover``)."""
    if fault in netfaults.KINDS:
        return netfaults.inflict(description, site, fault, params or {})
    if fault in ("fire", "power", "corrupt"):
        signal_all(site["pids"], signal.SIGKILL)
        if fault == "fire":
            shutil.rmtree(site["data_dir"], ignore_errors=True)
        if fault == "corrupt":
            _wait_dead(site["pids"])
            return {"site": site["name"], "damaged": corrupt_streams(Path(site["data_dir"]))}
    elif fault == "power-all":
        for each in description["sites"]:
            signal_all(each["pids"], signal.SIGKILL)
        return {"sites": [s["name"] for s in description["sites"]]}
    elif fault == "partition":
        control(description, f"/sites/{site['name']}/isolate", timeout=30)
    elif fault == "freeze":
        signal_all(site["pids"], signal.SIGSTOP)
    elif fault == "freeze-partition":
        other = next(s for s in description["sites"] if s["name"] != site["name"])
        signal_all(site["pids"], signal.SIGSTOP)
        control(description, f"/sites/{other['name']}/isolate", timeout=30)
        return {"frozen": site["name"], "partitioned": other["name"]}
    elif fault == "disk-full":
        return disk.fill(site)
    elif fault == "skew":
        return result(control(description, _skew_path(site, site.get("skew_s", 300.0))))
    else:
        raise ValueError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")
    return {}


def recover(
    description: dict[str, Any],
    site: dict[str, Any],
    fault: str,
    inflicted: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Undo a temporary fault (not fire: a fire is undone only by a rebuild)."""
    if fault in netfaults.KINDS:
        return netfaults.recover(description, site, fault, inflicted)
    if fault in ("power", "corrupt"):
        return result(control(description, f"/sites/{site['name']}/power-on"))
    if fault == "power-all":
        return power_on_all(description)
    if fault == "partition":
        control(description, f"/sites/{site['name']}/heal", timeout=30)
    elif fault == "freeze":
        signal_all(site["pids"], signal.SIGCONT)
    elif fault == "disk-full":
        return _free_disk(description, site, inflicted or {})
    elif fault == "skew":
        return result(control(description, _skew_path(site, 0.0)))
    elif fault == "freeze-partition":
        partitioned = (inflicted or {}).get("partitioned")
        if partitioned:
            control(description, f"/sites/{partitioned}/heal", timeout=30)
        signal_all(site["pids"], signal.SIGCONT)
    return {}


def _skew_path(site: dict[str, Any], seconds: float) -> str:
    return f"/sites/{site['name']}/skew?seconds={seconds:g}"


def _free_disk(
    description: dict[str, Any], site: dict[str, Any], inflicted: dict[str, Any]
) -> dict[str, Any]:
    """Free the disk; power the site on again if its node turned JetStream off or a
    worker exited (nats-server never re-enables JetStream by itself)."""
    freed = disk.free(site, inflicted)
    if freed["restart"]:
        freed["power_on"] = result(control(description, f"/sites/{site['name']}/power-on"))
    return freed


def power_on_all(description: dict[str, Any]) -> dict[str, Any]:
    """Power every site on at once: one alone has no quorum and never becomes healthy,
    so they are started in parallel (one control request each)."""
    names = [s["name"] for s in description["sites"]]
    started = time.monotonic()

    def one(name: str) -> dict[str, Any]:
        return result(control(description, f"/sites/{name}/power-on"))

    with ThreadPoolExecutor(len(names)) as pool:
        results = list(pool.map(one, names))
    return {"sites": results, "seconds": round(time.monotonic() - started, 1)}


def corrupt_streams(data_dir: Path) -> list[dict[str, Any]]:
    """Damage the last message block of every stream stored under ``data_dir``.

    Only the application's streams (``<store_dir>/jetstream/<account>/streams/
    <name>/msgs/<n>.blk``), not the raft logs under ``$SYS``: the fault is a bad
    disk under the data, and the drill asks what JetStream does with that replica.
    """
    damaged = []
    for msgs in sorted(data_dir.glob("nats-*/**/streams/*/msgs")):
        if "$SYS" in msgs.parts:
            continue
        blocks = sorted(
            (b for b in msgs.glob("*.blk") if b.stat().st_size > 0),
            key=lambda b: int(b.stem) if b.stem.isdigit() else -1,
        )
        if not blocks:
            continue
        damaged.append({"stream": msgs.parent.name, **damage_block(blocks[-1])})
    return damaged


def damage_block(path: Path) -> dict[str, Any]:
    """Flip FLIP_BYTES bytes at the middle of the file, then cut TRUNCATE_BYTES off its end."""
    data = bytearray(path.read_bytes())
    size = len(data)
    middle = size // 2
    flipped = min(FLIP_BYTES, max(0, size - middle))
    for i in range(middle, middle + flipped):
        data[i] ^= 0xFF
    cut = min(TRUNCATE_BYTES, size // 4)
    path.write_bytes(bytes(data[: size - cut]))
    return {"file": path.name, "bytes": size, "flipped_at": middle, "flipped": flipped, "cut": cut}


def _wait_dead(pids: list[int], timeout: float = 10.0) -> None:
    """A killed node may still hold its files for a moment; damage them only after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = False
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            alive = alive or state != "Z"
        if not alive:
            return
        time.sleep(0.05)
