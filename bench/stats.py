"""Small statistics helpers for latency samples."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass


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
