"""Small statistics helpers for latency samples."""

from __future__ import annotations

import json
import os
import resource
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def pct(samples: Sequence[float], p: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def summarize_ms(samples: Sequence[float]) -> dict[str, float]:
    """Latencies in seconds → p50/p95/p99/max in milliseconds."""
    return {
        "n": float(len(samples)),
        "p50_ms": round(pct(samples, 0.50) * 1000, 3),
        "p95_ms": round(pct(samples, 0.95) * 1000, 3),
        "p99_ms": round(pct(samples, 0.99) * 1000, 3),
        "max_ms": round(max(samples) * 1000, 3) if samples else float("nan"),
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class CpuMeter:
    """The benchmark client's own CPU use over a phase, to show it is not the bottleneck."""

    wall: float = 0.0
    cpu: float = 0.0

    def __enter__(self) -> CpuMeter:
        self._w = time.monotonic()
        r = resource.getrusage(resource.RUSAGE_SELF)
        self._c = r.ru_utime + r.ru_stime
        return self

    def __exit__(self, *exc: object) -> None:
        r = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu = r.ru_utime + r.ru_stime - self._c
        self.wall = time.monotonic() - self._w

    @property
    def client_cpu_percent(self) -> float:
        return round(100 * self.cpu / self.wall, 1) if self.wall else 0.0


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_label(pid: int) -> str:
    """A short name for a server process, from its command line."""
    try:
        with open(f"/proc/{pid}/cmdline") as fh:
            argv = fh.read().split("\0")
    except OSError:
        return "gone"
    joined = " ".join(argv)
    if "nats-server" in argv[0]:
        return "nats-server"
    if argv[0].startswith("postgres") or argv[0].endswith("/postgres"):
        return "postgresql"
    if "haproxy" in argv[0]:
        return "haproxy"
    if " cluster up" in joined:
        return "cluster supervisor (inter-site relays)"
    if " serve" in joined:
        return "outlast worker"
    return argv[0].rsplit("/", 1)[-1]


class ServerCpu:
    """CPU the server's processes spent over a phase, per message, summed per kind."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)

    def __enter__(self) -> ServerCpu:
        self._start = {p: cpu_seconds(p) for p in self.pids}
        return self

    def __exit__(self, *exc: object) -> None:
        self.used: dict[str, float] = {}
        for pid in self.pids:
            label = process_label(pid)
            spent = cpu_seconds(pid) - self._start[pid]
            self.used[label] = self.used.get(label, 0.0) + max(0.0, spent)

    def per_message_ms(self, messages: int) -> dict[str, float]:
        return {k: round(1000 * v / messages, 3) for k, v in sorted(self.used.items())}


def emit_json(result: object, out: Path | None) -> None:
    """Print a bench's figures as JSON, and write them to ``out`` too when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
