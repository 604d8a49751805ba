"""A real local three-site cluster for tests: `outlast cluster up --detach` and down."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAST_HASH = """
[auth]
argon2_time_cost = 1
argon2_memory_kib = 8192
argon2_parallelism = 1
"""


@dataclass
class Cluster:
    dir: Path

    @property
    def description(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.dir / "cluster.json").read_text())
        return data

    @property
    def front_door(self) -> str:
        return str(self.description["front_door"])

    def site(self, name: str) -> dict[str, Any]:
        for site in self.description["sites"]:
            if site["name"] == name:
                return dict(site)
        raise KeyError(name)

    def site_url(self, name: str) -> str:
        return str(self.site(name)["url"])

    @property
    def names(self) -> list[str]:
        return [s["name"] for s in self.description["sites"]]

    def control(self, path: str, timeout: float = 300) -> str:
        req = urllib.request.Request(self.description["control_url"] + path, method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return str(resp.read().decode())

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.description["control_url"] + "/status", timeout=10) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data

    def burn(self, name: str) -> None:
        """A fire: kill -9 every process of the site and delete its data."""
        site = self.site(name)
        for pid in site["pids"]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(site["data_dir"], ignore_errors=True)

    def rebuild(self, name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "outlast", "site", "rebuild", name, "--cluster",
             str(self.dir / "cluster.json")],
            capture_output=True, text=True, timeout=400,
        )

    def down(self) -> None:
        subprocess.run([sys.executable, "-m", "outlast", "cluster", "down", "--dir", str(self.dir)],
                       capture_output=True, timeout=120)


def leader_site(cluster: Cluster) -> str:
    """The site whose node leads the most streams (the worst one to lose)."""
    counts: dict[str, int] = {}
    for site in cluster.description["sites"]:
        try:
            with urllib.request.urlopen(site["monitor_url"] + "/jsz?streams=true&accounts=true",
                                        timeout=5) as resp:
                jsz = json.loads(resp.read())
        except OSError:
            continue
        for account in jsz.get("account_details", []):
            for stream in account.get("stream_detail", []):
                leader = (stream.get("cluster") or {}).get("leader", "")
                if leader:
                    name = leader.rsplit("-", 1)[0]
                    counts[name] = counts.get(name, 0) + 1
        break
    return max(counts, key=lambda k: counts[k]) if counts else cluster.names[0]


def start_cluster(directory: Path, sites: int = 3, partitions: int = 2) -> Cluster:
    directory.mkdir(parents=True, exist_ok=True)
    extra = directory.parent / f"{directory.name}-site.toml"
    extra.write_text(FAST_HASH)
    result = subprocess.run(
        [sys.executable, "-m", "outlast", "cluster", "up", "--sites", str(sites), "--dir",
         str(directory), "--detach", "--partitions", str(partitions), "--site-config", str(extra)],
        capture_output=True, text=True, timeout=240,
    )
    cluster = Cluster(directory)
    if result.returncode != 0:
        cluster.down()
        log = (directory / "supervisor.log")
        raise RuntimeError(f"cluster up failed: {result.stderr}\n{log.read_text() if log.exists() else ''}")
    return cluster


def wait_until(predicate: Any, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
