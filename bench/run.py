"""Run the benchmark suite and print a table; write JSON.

    python -m bench.run                      # floor + embedded (1 and 2 workers) + 3-site cluster
    python -m bench.run --no-cluster --workers 1,2,4 --idle 0   # CPU per message by workers
    python -m bench.run --base-url URL       # the same Matrix workload against another homeserver
    python -m bench.run --quick              # smaller numbers, for a smoke run
    python -m bench.run --no-cluster --workers 1,2,4 --views sqlite,postgresql --idle 0
                                             # the scale section: both view backends

Every phase is bounded in time. Figures are medians over --runs runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench import floor, workload
from bench.stats import median
from outlast.config import FAST_HASH_TOML, NO_LIMITS_TOML
from outlast.log.engine import free_port
from outlast.runtime import run as run_loop
from outlast.view.pg import private


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # loopback
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


class Embedded:
    """``outlast serve`` in a temp dir, on the benchmarks' settings plus ``extra_toml``."""

    def __init__(self, workers: int, extra_toml: str = "") -> None:
        self.workers = workers
        self.dir = Path(tempfile.mkdtemp(prefix="outlast-bench-"))
        self.port = free_port()
        (self.dir / "bench.toml").write_text(
            FAST_HASH_TOML + NO_LIMITS_TOML + extra_toml  # one load generator speaks for all
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "outlast",
                "serve",
                "--config",
                str(self.dir / "bench.toml"),
                "--data-dir",
                str(self.dir / "data"),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_http(self.url + "/_outlast/health")
        time.sleep(0.5 * self.workers)

    def restart(self) -> None:
        """Stop and start again on the same data (the view is rebuilt from what it kept)."""
        self._terminate()
        self.start()

    def pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-f", str(self.dir)], capture_output=True, text=True)
        # The serving process(es) and the nats-server: together, the server's memory.
        return [int(p) for p in out.stdout.split()]

    def _terminate(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return  # already stopped (``halt``)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def halt(self) -> None:
        """Stop the server, keeping its data to look at (``stop`` removes it)."""
        self._terminate()

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.dir, ignore_errors=True)


class LocalCluster:
    """A detached three-site ``outlast cluster up``; ``up_args`` are added to its command
    (e.g. ``--netns --latency-ms 10``)."""

    def __init__(self, extra_toml: str = "", up_args: list[str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="outlast-bench-cluster-"))
        (self.dir / "site.toml").write_text(FAST_HASH_TOML + NO_LIMITS_TOML + extra_toml)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "outlast",
                "cluster",
                "up",
                "--sites",
                "3",
                "--dir",
                str(self.dir / "c"),
                "--detach",
                "--site-config",
                str(self.dir / "site.toml"),
                *(up_args or []),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        self.description = json.loads(out.stdout)

    def pids(self) -> list[int]:
        """Every process of the cluster: workers, nats-servers, supervisor, front door."""
        out = subprocess.run(["pgrep", "-f", str(self.dir)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "outlast", "cluster", "down", "--dir", str(self.dir / "c")],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


async def run_workload(
    name: str,
    base: str,
    args: argparse.Namespace,
    server_pids: list[int],
    deliver_bases: list[str] | None = None,
    idle: int = 0,
) -> dict[str, Any]:
    prefix = "b" + uuid.uuid4().hex[:8]
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as session:
        clients, rooms = await workload.setup(session, base, args.users, args.rooms, prefix)
        result: dict[str, Any] = {"target": name, "base_url": base}
        result["send"] = await workload.phase_send(
            clients, rooms, args.senders, args.per_sender, server_pids
        )
        # One sender, each send waiting for the last: latency without queueing,
        # comparable with the floor's sequential publish-ack.
        result["send_sequential"] = await workload.phase_send(
            clients, rooms, 1, args.per_sender * 2
        )
        result["deliver"] = await workload.phase_deliver(
            clients, rooms[0], args.receivers, args.rate, args.deliver_seconds, deliver_bases
        )
        for c in clients:
            c.base = base.rstrip("/")
        result["history"] = await workload.phase_history(clients, rooms[:2])
        result["initial_sync"] = await workload.phase_initial_sync(
            session, base, args.sync_rooms, prefix
        )
    if idle:
        result["idle"] = await workload.phase_idle(base, idle, server_pids)
    return result


def cpu_row(r: dict[str, Any]) -> str:
    s = r["send"]
    parts = [f"{k} {v:.3f}" for k, v in s["server_cpu_ms_per_msg"].items()]
    parts.append(f"load generator {s['client_cpu_ms_per_msg']:.3f}")
    return f"{'':<24} send CPU ms/msg: " + ", ".join(parts)


def row(r: dict[str, Any]) -> str:
    s, d = r["send"], r["deliver"]
    return (
        f"{r['target']:<24} send p50 {s['p50_ms']:7.2f} ms p99 {s['p99_ms']:7.2f} ms "
        f"(1 sender p50 {r['send_sequential']['p50_ms']:.2f} ms) "
        f"{s['throughput_msgs_per_s']:7.0f} msg/s | deliver p50 {d['end_to_end']['p50_ms']:6.1f} "
        f"p99 {d['end_to_end']['p99_ms']:6.1f} ms once={d['exactly_once']} "
        f"order={d['same_order_all_receivers']} | history p50 {r['history']['p50_ms']:.1f} ms "
        f"| initial sync ({r['initial_sync']['rooms']} rooms) "
        f"p50 {r['initial_sync']['p50_ms']:.0f} ms"
        + (
            f" | idle {r['idle']['connections']} conns, {r['idle']['errors']} errors, "
            f"{r['idle']['kib_per_connection']} KiB/conn"
            if "idle" in r
            else ""
        )
    )


def versions() -> dict[str, str]:
    from outlast.log.engine import nats_server_binary

    nats_v = subprocess.run(
        [nats_server_binary(), "--version"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "nats_server": nats_v,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "nats_py": __import__("importlib.metadata").metadata.version("nats-py"),
    }


class BenchPostgres:
    """One private PostgreSQL server for the run's PostgreSQL targets, a database each."""

    def __init__(self) -> None:
        self._server: private.PrivateCluster | None = None
        self._made = 0

    def database(self) -> tuple[str, str]:
        if self._server is None:
            self._server = private.start(Path(tempfile.mkdtemp(prefix="outlast-bench-pg-")))
        self._made += 1
        name = f"bench{self._made}"
        return name, self._server.create_database(name)

    def pids(self) -> list[int]:
        """The server and its backends (one per connection): the view's share of the CPU."""
        if self._server is None:
            return []
        head = int((self._server.data / "postmaster.pid").read_text().split()[0])
        out = subprocess.run(["pgrep", "-P", str(head)], capture_output=True, text=True)
        return [head, *(int(p) for p in out.stdout.split())]

    def drop(self, name: str) -> None:
        if self._server is not None:
            self._server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            shutil.rmtree(self._server.directory, ignore_errors=True)


def embedded_on(view: str, workers: int, postgres: BenchPostgres) -> tuple[Embedded, str]:
    """An embedded site on the ``view`` backend; the database it uses ("" for SQLite)."""
    if view == "sqlite":
        return Embedded(workers), ""
    name, dsn = postgres.database()
    return Embedded(workers, f'[view]\nbackend = "postgresql"\ndsn = "{dsn}"\n'), name


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    postgres = BenchPostgres()
    try:
        return await _main_async(args, postgres)
    finally:
        postgres.stop()


async def _main_async(args: argparse.Namespace, postgres: BenchPostgres) -> dict[str, Any]:
    report: dict[str, Any] = {"versions": versions(), "settings": vars(args).copy(), "runs": []}
    for run in range(args.runs):
        print(f"== run {run + 1}/{args.runs}", flush=True)
        one: dict[str, Any] = {"floor": [], "targets": []}
        if not args.base_url_only:
            for replicas in (1, 3):
                f = await floor.measure(replicas)
                one["floor"].append(f)
                print(
                    f"floor R{replicas}: publish p50 {f['sequential']['p50_ms']} ms "
                    f"p99 {f['sequential']['p99_ms']} ms, with 8 publishers p50 "
                    f"{f['concurrent']['p50_ms']} ms; {f['throughput_msgs_per_s']} msg/s "
                    f"(client cpu {f['client_cpu_percent']}%)",
                    flush=True,
                )
            for view in args.views:
                for workers in args.workers:
                    target, database = embedded_on(view, workers, postgres)
                    try:
                        r = await run_workload(
                            f"embedded {workers} worker(s)"
                            + ("" if view == "sqlite" else f", {view}"),
                            target.url,
                            args,
                            target.pids() + (postgres.pids() if database else []),
                            idle=args.idle if workers == 1 and view == "sqlite" else 0,
                        )
                        one["targets"].append(r)
                        print(row(r), cpu_row(r), sep="\n", flush=True)
                    finally:
                        target.stop()
                        if database:
                            postgres.drop(database)
            if not args.no_cluster:
                cluster = LocalCluster()
                try:
                    d = cluster.description
                    sites = [s["url"] for s in d["sites"]]
                    r = await run_workload(
                        "3 sites via front door", d["front_door"], args, cluster.pids()
                    )
                    one["targets"].append(r)
                    print(row(r), cpu_row(r), sep="\n", flush=True)
                    r = await run_workload(
                        "3 sites direct", sites[0], args, cluster.pids(), deliver_bases=sites[1:]
                    )
                    one["targets"].append(r)
                    print(row(r), cpu_row(r), sep="\n", flush=True)
                finally:
                    cluster.stop()
        for url in args.base_url or []:
            r = await run_workload(f"other: {url}", url, args, [])
            one["targets"].append(r)
            print(row(r), flush=True)
        report["runs"].append(one)
    report["medians"] = medians(report["runs"])
    return report


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in runs[0]["floor"]:
        key = f"floor R{f['replicas']}"
        same = [x for r in runs for x in r["floor"] if x["replicas"] == f["replicas"]]
        out[key] = {
            "p50_ms": median([x["sequential"]["p50_ms"] for x in same]),
            "p50_ms_8_publishers": median([x["concurrent"]["p50_ms"] for x in same]),
            "throughput": median([x["throughput_msgs_per_s"] for x in same]),
        }
    for t in runs[0]["targets"]:
        same = [x for r in runs for x in r["targets"] if x["target"] == t["target"]]
        out[t["target"]] = {
            "send_p50_ms": median([x["send"]["p50_ms"] for x in same]),
            "send_p99_ms": median([x["send"]["p99_ms"] for x in same]),
            "send_1_sender_p50_ms": median([x["send_sequential"]["p50_ms"] for x in same]),
            "send_throughput": median([x["send"]["throughput_msgs_per_s"] for x in same]),
            "deliver_p50_ms": median([x["deliver"]["end_to_end"]["p50_ms"] for x in same]),
            "deliver_p99_ms": median([x["deliver"]["end_to_end"]["p99_ms"] for x in same]),
            "deliver_exactly_once": all(x["deliver"]["exactly_once"] for x in same),
            "history_p50_ms": median([x["history"]["p50_ms"] for x in same]),
            "initial_sync_p50_ms": median([x["initial_sync"]["p50_ms"] for x in same]),
            "client_cpu_percent_send": median([x["send"]["client_cpu_percent"] for x in same]),
            "send_cpu_ms_per_msg": {
                label: median([x["send"]["server_cpu_ms_per_msg"].get(label, 0.0) for x in same])
                for label in t["send"]["server_cpu_ms_per_msg"]
            }
            | {"load generator": median([x["send"]["client_cpu_ms_per_msg"] for x in same])},
        }
        if "idle" in t:
            out[t["target"]]["idle"] = [x.get("idle") for x in same]
    return out


def main() -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--users", type=int, default=16)
    p.add_argument("--rooms", type=int, default=8)
    p.add_argument("--senders", type=int, default=8)
    p.add_argument("--per-sender", type=int, default=250)
    p.add_argument("--receivers", type=int, default=4)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--deliver-seconds", type=float, default=10.0)
    p.add_argument("--sync-rooms", type=int, default=50)
    p.add_argument("--idle", type=int, default=10000, help="parked /sync connections (1 worker)")
    p.add_argument("--base-url", action="append", help="another homeserver to run the workload on")
    p.add_argument("--base-url-only", action="store_true", help="skip Outlast's own targets")
    p.add_argument("--no-cluster", action="store_true")
    p.add_argument(
        "--workers",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2],
        help="worker counts of the embedded targets, e.g. 1,2,4",
    )
    p.add_argument(
        "--views",
        type=lambda text: text.split(","),
        default=["sqlite"],
        help="view backends of the embedded targets: sqlite, postgresql or both "
        "(postgresql starts a private server from Debian's package)",
    )
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json-out", default="bench/results/latest.json")
    args = p.parse_args()
    unknown = set(args.views) - {"sqlite", "postgresql"}
    if unknown:
        p.error(f"--views: unknown backend(s) {', '.join(sorted(unknown))}")
    if args.quick:
        args.runs, args.per_sender, args.deliver_seconds, args.idle, args.sync_rooms = (
            1,
            50,
            4,
            500,
            10,
        )
    # The load generator runs on the same cores as the servers: keep it cheap.
    report = run_loop(main_async(args))
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(report, indent=2))
    print("\nmedians:", json.dumps(report["medians"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
