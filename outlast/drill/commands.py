"""`outlast drill fire`, `outlast drill restore` and `outlast drill history`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from outlast.drill.faults import FAULTS


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    drill = sub.add_parser("drill", help="fire drills: burn a site under load and judge the result")
    dsub = drill.add_subparsers(dest="drill_command", metavar="ACTION")
    fire = dsub.add_parser(
        "fire",
        help="run a drill; exits non-zero if anything acknowledged was lost or duplicated",
        description="Simulated users send through the front door (each retrying with its own "
        "txnId) while one site suffers a fault. Afterwards every room is read back through "
        "every surviving site and compared with the clients' ledgers.",
    )
    fire.add_argument(
        "--cluster",
        metavar="FILE",
        help="cluster.json of a running cluster (default: start a local 3-site one)",
    )
    fire.add_argument("--users", type=int, default=20, help="simulated users (default 20)")
    fire.add_argument("--rooms", type=int, default=10, help="rooms they talk in (default 10)")
    fire.add_argument("--rate", type=float, default=100.0, help="messages/s in total (default 100)")
    fire.add_argument("--duration", type=float, default=30.0, help="seconds of load (default 30)")
    fire.add_argument("--at", type=float, default=10.0, help="seconds into the load (default 10)")
    fire.add_argument("--site", help="site to hit (default: the one leading the most streams)")
    fire.add_argument(
        "--fault",
        choices=FAULTS,
        default="fire",
        help="fire (kill -9 + delete data, default), power (kill -9, restart on "
        "the same disks), partition (cut its links, heal), freeze (SIGSTOP, SIGCONT), "
        "maintenance (a rolling restart of every site, each drained first; --site and "
        "--heal-after do not apply), power-all (kill -9 every site at once, power all on "
        "with the same disks; --site does not apply), corrupt (kill -9 the site, damage the "
        "last message block of each of its streams, power it on; reports what JetStream "
        "did with the bad replica), freeze-partition (SIGSTOP the site and cut another "
        "site's links at once: no quorum until both are undone), loss (drop a share of "
        "the site's inter-site packets at random; --netns clusters only), spike (extra "
        "delay on every link to and from the site), rebuild-partitioned (burn the site, "
        "cut another one off, rebuild the burned one at once; the cut heals after "
        "--heal-after), disk-full (fill the filesystem under the site's data; needs "
        "`cluster up --disk-mb N`), skew (restart the site's workers with their clock "
        "--skew-seconds off)",
    )
    fire.add_argument(
        "--loss-percent",
        type=int,
        default=10,
        help="with --fault loss: percent of packets dropped, 5-20 (default 10)",
    )
    fire.add_argument(
        "--spike-ms",
        type=float,
        default=200.0,
        help="with --fault spike: milliseconds added to each direction (default 200)",
    )
    fire.add_argument(
        "--skew-seconds",
        type=float,
        default=300.0,
        help="with --fault skew: how far the site's clock is off (default 300)",
    )
    fire.add_argument(
        "--heal-after",
        type=float,
        default=10.0,
        help="seconds until a temporary fault (all but fire and maintenance) is undone "
        "(default 10)",
    )
    fire.add_argument(
        "--rebuild",
        action="store_true",
        help="after a fire, rebuild the site and check it serves identical timelines",
    )
    fire.add_argument("--json-out", metavar="FILE", help="write the full report as JSON")
    fire.add_argument("--plot", metavar="FILE", help="write a PNG chart of acknowledged writes/s")
    fire.add_argument("--quiet", action="store_true", help="no progress lines")
    fire.add_argument(
        "--push",
        action="store_true",
        help="every user gets an http pusher at a push gateway the drill runs on 127.0.0.1 "
        "(the sites must reach it there); the verdict also counts lost and duplicated "
        "notifications",
    )
    restore = dsub.add_parser(
        "restore",
        help="back up under load, destroy every site, restore; exits non-zero if anything "
        "acknowledged before the backup point was lost",
        description="Simulated users send through the front door; `outlast backup create` "
        "runs against the cluster mid-load and the load goes on a few seconds more. Then "
        "every site is destroyed (kill -9, data directories deleted), the backup restored "
        "into a new cluster (WORK/restored) and started, and every room read back through "
        "every restored site. Messages acknowledged after the backup point are listed as "
        "expected lost; any acknowledged before it and missing fail the drill. This "
        "DESTROYS the cluster given with --cluster.",
    )
    restore.add_argument(
        "--cluster",
        metavar="FILE",
        help="cluster.json of a running local cluster to destroy (default: start one)",
    )
    restore.add_argument("--users", type=int, default=20, help="simulated users (default 20)")
    restore.add_argument("--rooms", type=int, default=10, help="rooms they talk in (default 10)")
    restore.add_argument(
        "--rate", type=float, default=100.0, help="messages/s in total (default 100)"
    )
    restore.add_argument(
        "--at", type=float, default=10.0, help="seconds into the load the backup starts (10)"
    )
    restore.add_argument(
        "--after",
        type=float,
        default=5.0,
        help="seconds the load goes on after the backup, before the destruction (default 5)",
    )
    restore.add_argument(
        "--work-dir",
        metavar="DIR",
        help="where the backup and the restored cluster go (default: a new temporary one)",
    )
    restore.add_argument("--site-config", metavar="FILE", help="extra TOML for every restored site")
    restore.add_argument("--json-out", metavar="FILE", help="write the full report as JSON")
    restore.add_argument("--quiet", action="store_true", help="no progress lines")
    hist = dsub.add_parser("history", help="list past drills (stored on the log) from any site")
    hist.add_argument("--cluster", required=True, metavar="FILE", help="the cluster.json")
    hist.add_argument("--json", action="store_true", help="print full records as JSON")


def dispatch(args: argparse.Namespace) -> int | None:
    if args.command != "drill":
        return None
    if args.drill_command == "fire":
        from outlast.drill.fire import DrillOptions, run_drill

        if not 5 <= args.loss_percent <= 20:
            print("outlast: --loss-percent must be 5-20", file=sys.stderr)
            return 2
        if args.fault == "loss" and not args.cluster:
            print(
                "outlast: --fault loss needs a cluster started with `outlast cluster up "
                "--netns` (pass it with --cluster); a drill's own cluster is a loopback one",
                file=sys.stderr,
            )
            return 2
        if args.at >= args.duration:
            print("outlast: --at must be inside --duration", file=sys.stderr)
            return 2
        if args.plot:
            from outlast.drill.report import PlotUnavailable, require_plotting

            try:
                require_plotting()
            except PlotUnavailable as exc:
                print(f"outlast: {exc}", file=sys.stderr)
                return 2
        options = DrillOptions(
            cluster_file=args.cluster,
            users=args.users,
            rooms=args.rooms,
            rate=args.rate,
            duration=args.duration,
            at=args.at,
            site=args.site,
            fault=args.fault,
            heal_after=args.heal_after,
            rebuild=args.rebuild,
            json_out=args.json_out,
            plot=args.plot,
            quiet=args.quiet,
            push=args.push,
            loss_percent=args.loss_percent,
            spike_ms=args.spike_ms,
            skew_s=args.skew_seconds,
        )
        return asyncio.run(run_drill(options))
    if args.drill_command == "restore":
        from outlast.drill.restore import RestoreOptions, run_restore_drill

        if args.at < 0 or args.after < 0:
            print("outlast: --at and --after cannot be negative", file=sys.stderr)
            return 2
        return asyncio.run(
            run_restore_drill(
                RestoreOptions(
                    cluster_file=args.cluster,
                    users=args.users,
                    rooms=args.rooms,
                    rate=args.rate,
                    at=args.at,
                    after=args.after,
                    work_dir=args.work_dir,
                    site_config=args.site_config,
                    json_out=args.json_out,
                    quiet=args.quiet,
                )
            )
        )
    if args.drill_command == "history":
        return asyncio.run(_history(args))
    return None


async def _history(args: argparse.Namespace) -> int:
    from outlast.cluster.plan import load_description
    from outlast.log.records import cluster_tls, history

    description = load_description(Path(args.cluster))
    for site in description["sites"]:
        try:
            tls = cluster_tls(description)
            records = await asyncio.wait_for(history(site["nats_url"], tls=tls), 20)
        except Exception:  # noqa: BLE001 - try the next site
            continue
        if args.json:
            print(json.dumps(records, indent=2))
            return 0
        print(f"{len(records)} drill(s), read through site {site['name']}:")
        for r in records:
            v = r["verdict"]
            gap = r.get("write_gap") or {}
            print(
                f"  {r['id']}  {r['fault']:9} site {r['site']}  acked {v['acknowledged']:6}  "
                f"lost {v['lost']}  dup {v['duplicated']}  reord {v['reordered']}  "
                f"gap median {gap.get('median', '-')}s  {'PASS' if v['ok'] else 'FAIL'}"
            )
        return 0
    print("outlast: no site answered", file=sys.stderr)
    return 1
