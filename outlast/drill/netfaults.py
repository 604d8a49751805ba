"""Drill faults of the WAN rather than of a site: loss, spike, rebuild-partitioned.

- ``loss``: a share of the site's route packets (10% by default) dropped at
  random by the kernel, in both directions (`cluster up --netns` only).
- ``spike``: extra delay (200 ms by default) on every link to and from the site.
- ``rebuild-partitioned``: the site burns (kill -9, data deleted) and at the same
  moment another site is cut off; the burned site's rebuild starts at once. With
  one replica of three burned and one cut off, the streams have no quorum: the
  rebuild can only wait for the partition to heal, then finish.

Each is inflicted and undone through the cluster's control endpoints; how long a
rebuild took and when it ended relative to the heal is part of the report.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from outlast.drill.control import rebuild, signal_all
from outlast.drill.verdict import Send

KINDS = ("loss", "spike", "rebuild-partitioned")
DEFAULT_LOSS_PERCENT = 10
DEFAULT_SPIKE_MS = 200.0
# How long `recover` waits for a rebuild started under the partition to finish after
# the heal (the rebuild's own steps are bounded; this bounds the drill on top).
REBUILD_WAIT_SECONDS = 600.0


def _post(description: dict[str, Any], path: str, timeout: float = 30) -> dict[str, Any]:
    """A JSON control call; the supervisor's refusal is raised with its reason."""
    req = urllib.request.Request(description["control_url"] + path, method="POST", data=b"")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # loopback
            data: dict[str, Any] = json.loads(resp.read())
            return data
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("error", str(exc))
        except ValueError:
            reason = str(exc)
        raise RuntimeError(f"the cluster refused {path}: {reason}") from exc


@dataclass
class _Rebuild:
    """A rebuild running in a thread while the drill goes on."""

    site: str
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    thread: threading.Thread | None = None


_REBUILDS: dict[str, _Rebuild] = {}


def inflict(
    description: dict[str, Any], site: dict[str, Any], fault: str, params: dict[str, Any]
) -> dict[str, Any]:
    name = site["name"]
    if fault == "loss":
        percent = int(params.get("loss_percent", DEFAULT_LOSS_PERCENT))
        _post(description, f"/sites/{name}/loss?percent={percent}")
        return {"site": name, "loss_percent": percent}
    if fault == "spike":
        ms = float(params.get("spike_ms", DEFAULT_SPIKE_MS))
        return _post(description, f"/sites/{name}/delay?ms={urllib.parse.quote(str(ms))}")
    if fault == "rebuild-partitioned":
        return _burn_and_partition(description, site)
    raise ValueError(f"unknown network fault {fault!r}")


def _burn_and_partition(description: dict[str, Any], site: dict[str, Any]) -> dict[str, Any]:
    other = next(s for s in description["sites"] if s["name"] != site["name"])
    signal_all(site["pids"], signal.SIGKILL)
    shutil.rmtree(site["data_dir"], ignore_errors=True)
    _post(description, f"/sites/{other['name']}/isolate")
    job = _Rebuild(site["name"])

    def run() -> None:
        try:
            job.result = rebuild(description, site["name"])
        except Exception as exc:  # noqa: BLE001 - reported with the verdict
            job.error = str(exc)
        job.finished = time.monotonic()

    job.thread = threading.Thread(target=run, name=f"rebuild-{site['name']}", daemon=True)
    _REBUILDS[site["name"]] = job
    job.thread.start()
    return {"burned": site["name"], "partitioned": other["name"], "rebuild_started": True}


def recover(
    description: dict[str, Any],
    site: dict[str, Any],
    fault: str,
    inflicted: dict[str, Any] | None = None,
) -> dict[str, Any]:
    name = site["name"]
    if fault == "loss":
        done = _post(description, f"/sites/{name}/loss?percent=0")
        return {"packets_dropped": done.get("dropped", 0)}
    if fault == "spike":
        _post(description, f"/sites/{name}/delay?ms=0")
        return {}
    if fault == "rebuild-partitioned":
        partitioned = (inflicted or {}).get("partitioned")
        healed_at = time.monotonic()
        if partitioned:
            _post(description, f"/sites/{partitioned}/heal")
        return wait_rebuild(name, healed_at)
    raise ValueError(f"unknown network fault {fault!r}")


def wait_rebuild(
    name: str, healed_at: float, timeout: float = REBUILD_WAIT_SECONDS
) -> dict[str, Any]:
    """Wait for the rebuild started at the fault; when it ended relative to the heal."""
    job = _REBUILDS.pop(name, None)
    if job is None or job.thread is None:
        return {"rebuild": {"error": "no rebuild was started"}}
    job.thread.join(timeout)
    out: dict[str, Any] = {
        "rebuild": {
            **job.result,
            "ended": job.finished is not None,
            "ok": job.finished is not None and job.error is None,
            "error": job.error,
            "waited_s": round(time.monotonic() - job.started, 1),
        }
    }
    if job.finished is not None:
        out["rebuild"]["total_s"] = round(job.finished - job.started, 1)
        out["rebuild"]["finished_after_heal_s"] = round(job.finished - healed_at, 1)
    else:
        out["rebuild"]["error"] = f"rebuild still running {timeout:.0f}s after the heal"
    return out


def send_latency(sends: Sequence[Send], start: float, end: float) -> dict[str, Any]:
    """Milliseconds from a client's send to its acknowledgement (retries included), for
    the sends begun in [start, end): the latency clients saw while a link misbehaved."""
    times = sorted(
        (s.acked_at - s.sent_at) * 1000
        for s in sends
        if s.acked and s.acked_at is not None and start <= s.sent_at < end
    )
    if not times:
        return {"sends": 0}

    def pct(p: float) -> float:
        return round(times[min(len(times) - 1, int(round(p * (len(times) - 1))))], 1)

    return {
        "sends": len(times),
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "max_ms": round(times[-1], 1),
    }


def write_outage(ack_times: Sequence[float], fault_at: float, until: float) -> float:
    """The longest time after the fault with no write acknowledged to any client."""
    points = [fault_at, *sorted(t for t in ack_times if fault_at <= t <= until), until]
    return round(max(b - a for a, b in zip(points, points[1:], strict=False)), 3)
