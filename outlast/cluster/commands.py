"""`outlast cluster up|down|status` and `outlast site rebuild|isolate|heal`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from outlast.cluster.plan import VIEWS, ClusterPlan, load_description
from outlast.runtime import run


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = sub.add_parser("cluster", help="run a local multi-site cluster on loopback")
    csub = cluster.add_subparsers(dest="cluster_command", metavar="ACTION")
    up = csub.add_parser(
        "up",
        help="start every site, the inter-site links and a front door",
        description="Start a local active-active cluster: per site one nats-server node "
        "(tagged site:NAME, one replica of every stream per site) and Outlast worker(s), "
        "plus an HAProxy front door. Prints a JSON description and writes it to "
        "DIR/cluster.json. Runs until Ctrl-C/SIGTERM unless --detach.",
    )
    up.add_argument("--sites", type=int, default=3, help="number of sites (default 3; at least 3)")
    up.add_argument("--dir", required=True, help="directory for every site's data and cluster.json")
    up.add_argument(
        "--detach",
        action="store_true",
        help="return once every site is healthy, leaving the cluster running",
    )
    up.add_argument("--partitions", type=int, default=4, help="room partition streams (default 4)")
    up.add_argument(
        "--workers",
        "--workers-per-site",
        dest="workers",
        type=int,
        default=None,
        help="Outlast workers per site (default 1; 2 with --view postgresql)",
    )
    up.add_argument(
        "--view",
        choices=VIEWS,
        default="sqlite",
        help="each site's view: a SQLite file per worker (default), or a PostgreSQL server "
        "per site whose database all the site's workers share (one projects, the others "
        "follow; docs/scale.md). Needs Debian's postgresql package (./run setup)",
    )
    up.add_argument(
        "--tls",
        action="store_true",
        help="TLS on every link: a CA for this cluster in DIR/tls, mutual TLS between "
        "nodes, verified TLS from workers and tools (needs the cryptography package)",
    )
    up.add_argument(
        "--site-config",
        metavar="FILE",
        help="TOML appended to every site's worker config (e.g. [auth] settings)",
    )
    up.add_argument(
        "--netns",
        action="store_true",
        help="root only: run each site in a Linux network namespace of its own, joined to "
        "the host by a veth pair; traffic between sites crosses a relay that delays it "
        "(--latency-ms) and partitions are cut by the kernel (nftables)",
    )
    up.add_argument(
        "--latency-ms",
        type=float,
        default=None,
        help="one-way delay the relays add between sites (default 10 with --netns, else 0)",
    )
    up.add_argument(
        "--jitter-ms",
        type=float,
        default=0.0,
        help="up to this much more delay, at random per chunk (order is kept; default 0)",
    )
    up.add_argument(
        "--disk-mb",
        type=int,
        default=0,
        help="root only: put each site's data directory on a tmpfs of this many MiB "
        "(for the disk-full drill; default: the directory's own filesystem)",
    )
    down = csub.add_parser("down", help="stop a cluster started with --detach")
    down.add_argument("--dir", required=True)
    status = csub.add_parser("status", help="print the cluster description with live site status")
    status.add_argument("--dir", required=True)
    roll = csub.add_parser(
        "roll",
        help="restart every site, one after the other (`outlast site restart` each)",
        description="A rolling restart: each site in turn is drained, restarted on its "
        "disks and put back into the front door; returns when all are back and healthy.",
    )
    roll.add_argument("--cluster", required=True, metavar="FILE", help="the cluster.json")

    site = sub.add_parser("site", help="act on one site of a running cluster")
    ssub = site.add_subparsers(dest="site_command", metavar="ACTION")
    for name, text in (
        (
            "rebuild",
            "bring up a fresh, empty site with this name, remove the dead peer, "
            "re-replicate every stream and rebuild the view; returns when healthy",
        ),
        ("isolate", "cut the site's links to every other site (a network partition)"),
        ("heal", "restore the site's links"),
        ("power-on", "restart a powered-off site on its existing disks"),
        (
            "drain",
            "planned stop: take the site out of the front door, hand every stream "
            "leader to another site, then stop its workers and its node (lame duck)",
        ),
        (
            "restart",
            "drain the site, restart it on the same disks, wait until it is healthy "
            "and caught up, and put it back into the front door",
        ),
    ):
        p = ssub.add_parser(name, help=text, description=text)
        p.add_argument("name", help="site name, e.g. a")
        p.add_argument("--cluster", required=True, metavar="FILE", help="the cluster.json")
        if name == "isolate":
            p.add_argument(
                "--direction",
                choices=("both", "in", "out"),
                default="both",
                help="cut only what arrives from the other sites (in) or only what "
                "leaves for them (out); one way needs a cluster started with --netns",
            )


def _control(description: dict[str, Any], method: str, path: str, timeout: float = 600) -> Any:
    req = urllib.request.Request(description["control_url"] + path, method=method, data=b"")
    return urllib.request.urlopen(req, timeout=timeout)  # loopback control API


def run_site_action(action: str, name: str, cluster_file: str, direction: str = "both") -> int:
    query = f"?direction={direction}" if direction != "both" else ""
    return _run_action(action, f"/sites/{name}/{action}{query}", cluster_file)


def _run_action(action: str, path: str, cluster_file: str) -> int:
    """A control API action; its progress lines go to stderr as they come."""
    description = load_description(Path(cluster_file))
    try:
        with _control(description, "POST", path, timeout=1800) as resp:
            result = 0
            for raw in resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("RESULT "):
                    print(json.dumps(json.loads(line[7:]), indent=2))
                elif line.startswith("ERROR "):
                    print(
                        f"outlast: {action} failed: {json.loads(line[6:])['error']}",
                        file=sys.stderr,
                    )
                    result = 1
                elif line.startswith("{"):
                    print(line)
                else:
                    print(f"{action}: {line}", file=sys.stderr, flush=True)
            return result
    except urllib.error.HTTPError as exc:  # refused, e.g. a one-way cut of a loopback cluster
        try:
            reason = json.loads(exc.read())["error"]
        except (ValueError, KeyError, TypeError, OSError):
            reason = str(exc)
        print(f"outlast: {action} refused: {reason}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"outlast: cluster control API unreachable: {exc}", file=sys.stderr)
        return 1


def cluster_up(args: argparse.Namespace) -> int:
    if args.sites < 3:
        print(
            "outlast: a cluster needs at least 3 sites to survive the loss of one", file=sys.stderr
        )
        return 2
    directory = Path(args.dir).resolve()
    existing = directory / "cluster.json"
    if existing.exists() and not json.loads(existing.read_text()).get("stopped"):
        print(
            f"outlast: {existing} describes a running cluster; `outlast cluster down --dir "
            f"{args.dir}` first",
            file=sys.stderr,
        )
        return 2
    if args.netns:
        from outlast.cluster import netns

        problem = netns.available() or (
            "--netns and --tls do not go together yet (node certificates name 127.0.0.1)"
            if args.tls
            else ""
        )
        if problem:
            print(f"outlast: {problem}", file=sys.stderr)
            return 2
    if args.workers is None:
        args.workers = 2 if args.view == "postgresql" else 1
    if args.workers < 1:
        print("outlast: a site needs at least one worker", file=sys.stderr)
        return 2
    if args.latency_ms is None:
        args.latency_ms = 10.0 if args.netns else 0.0
    if args.latency_ms < 0 or args.jitter_ms < 0:
        print("outlast: --latency-ms and --jitter-ms cannot be negative", file=sys.stderr)
        return 2
    extra = Path(args.site_config).read_text() if args.site_config else ""
    server_name = "localhost"
    restored = directory / "restored.json"  # written by `outlast backup restore --cluster-dir`
    if restored.exists():
        info = json.loads(restored.read_text())
        args.partitions, server_name = int(info["partitions"]), str(info["server_name"])
        if args.sites != int(info["sites"]):
            print(f"outlast: {restored} holds {info['sites']} sites", file=sys.stderr)
            return 2
    if args.detach:
        return _detach(args, directory)
    from outlast.cluster.supervisor import run_cluster

    plan = ClusterPlan.new(
        directory, args.sites, args.partitions, args.workers, extra, tls=args.tls, view=args.view
    )
    plan.server_name = server_name
    plan.latency_ms, plan.jitter_ms = args.latency_ms, args.jitter_ms
    plan.disk_mb = args.disk_mb
    if args.netns:
        from outlast.cluster import netns

        directory.mkdir(parents=True, exist_ok=True)
        netns.remove(directory)  # what an earlier run here left behind
        nets = netns.plan_nets(
            [s.name for s in plan.sites], netns.new_tag(), netns.pick_octet(netns.ip_addrs())
        )
        netns.record(directory, nets)  # written down before anything is made
        plan.use_namespaces(nets, args.latency_ms, args.jitter_ms)
    ready_fd = int(os.environ.pop("OUTLAST_READY_FD", "-1"))
    return run(run_cluster(plan, ready_fd=ready_fd if ready_fd >= 0 else None))


def _detach(args: argparse.Namespace, directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    argv = [
        sys.executable,
        "-m",
        "outlast",
        "cluster",
        "up",
        "--sites",
        str(args.sites),
        "--dir",
        str(directory),
        "--partitions",
        str(args.partitions),
        "--workers",
        str(args.workers),
        "--view",
        args.view,
    ]
    if args.site_config:
        argv += ["--site-config", str(Path(args.site_config).resolve())]
    if args.tls:
        argv.append("--tls")
    if args.netns:
        argv.append("--netns")
    if args.disk_mb:
        argv += ["--disk-mb", str(args.disk_mb)]
    argv += ["--latency-ms", str(args.latency_ms), "--jitter-ms", str(args.jitter_ms)]
    with open(directory / "supervisor.log", "ab") as log:
        subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
            pass_fds=(write_fd,),
            start_new_session=True,
            env={**os.environ, "OUTLAST_READY_FD": str(write_fd)},
        )
    os.close(write_fd)
    with os.fdopen(read_fd) as ready:
        line = ready.readline().strip()
    if line != "ready":
        print(
            f"outlast: cluster failed to start ({line or 'no answer'}); see "
            f"{directory / 'supervisor.log'}",
            file=sys.stderr,
        )
        return 1
    print((directory / "cluster.json").read_text())
    return 0


def cluster_down(args: argparse.Namespace) -> int:
    path = Path(args.dir) / "cluster.json"
    if not path.exists() and (Path(args.dir) / "netns.json").exists():
        _remove_namespaces(Path(args.dir))  # a --netns run that died before cluster.json
        return 0
    description = load_description(path)
    if description.get("stopped"):
        _remove_namespaces(Path(args.dir))
        print("outlast: cluster already stopped", file=sys.stderr)
        return 0
    pid = int(description["supervisor_pid"])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    # Whatever the supervisor could not stop (it may itself have been killed) goes now.
    for site in description["sites"]:
        for site_pid in site["pids"]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(site_pid, signal.SIGKILL)
        _stop_postgres(site.get("postgres"))
    _remove_namespaces(Path(args.dir))
    print("outlast: cluster stopped", file=sys.stderr)
    return 0


def _stop_postgres(postgres: dict[str, Any] | None) -> None:
    """A site's PostgreSQL server the supervisor left running (it was killed itself)."""
    if not postgres:
        return
    from outlast.view.pg import private

    pg = private.PrivateCluster(Path(postgres["dir"]), int(postgres["port"]))  # stop: no host
    with contextlib.suppress(RuntimeError, OSError):
        pg.stop("fast")


def _remove_namespaces(directory: Path) -> None:
    """`--netns`: the namespaces and veths recorded in DIR go (idempotent, also after a crash)."""
    if not (directory / "netns.json").exists():
        return
    from outlast.cluster import netns

    removed = netns.remove(directory)
    if removed:
        print(f"outlast: removed {' '.join(removed)}", file=sys.stderr)


def cluster_status(args: argparse.Namespace) -> int:
    description = load_description(Path(args.dir) / "cluster.json")
    try:
        with _control(description, "GET", "/status", timeout=10) as resp:
            print(json.dumps(json.loads(resp.read()), indent=2))
            return 0
    except (urllib.error.URLError, OSError):
        print(json.dumps(description, indent=2))
        return 1


def dispatch(args: argparse.Namespace) -> int | None:
    if args.command == "cluster":
        if args.cluster_command == "up":
            return cluster_up(args)
        if args.cluster_command == "down":
            return cluster_down(args)
        if args.cluster_command == "status":
            return cluster_status(args)
        if args.cluster_command == "roll":
            return _run_action("roll", "/roll", args.cluster)
    if args.command == "site" and args.site_command:
        return run_site_action(
            args.site_command, args.name, args.cluster, getattr(args, "direction", "both")
        )
    return None
