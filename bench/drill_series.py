"""Run a series of drills against one local three-site cluster, unattended, and tabulate them.

    python -m bench.drill_series --count fire=20 --count partition=20 \\
        --count maintenance=20 --count power-all=5 --netns --latency-ms 10 \\
        --out bench/results/drills/series-netns

Kinds are interleaved (fire, partition, maintenance, fire, ...) so that a
machine whose load drifts over hours treats every kind alike. Every fire is
followed by a rebuild, so the next drill again has three sites; the other
faults are undone by the drill itself. After every drill the per-drill JSON
(``NNN-KIND.json``), ``summary.json`` and ``table.md`` in ``--out`` are
brought up to date, so a series stopped half-way still leaves its results,
and running the same command again resumes it: drills already in ``--out``
(reports, and ``NNN-KIND.failed.txt`` for those that left none) count
towards the plan. A drill that leaves no report (the cluster did not come
back) gets a fresh cluster for the next one. ``--hours`` bounds this run.

The table has one row per kind: drills, acknowledged messages, lost /
duplicated / reordered (must all be 0), and the write gap — each drill
reports every client's longest wait between acknowledged sends; p50 is the
median over drills of the clients' median, p99 the 99th percentile over
drills of the clients' p99, max the longest anyone waited.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.run import LocalCluster


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def summarize(reports: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fault in sorted({r["fault"] for r in reports}):
        mine = [r for r in reports if r["fault"] == fault]
        gaps = [r["write_gap"] for r in mine if r.get("write_gap")]
        out[fault] = {
            "drills": len(mine),
            "acknowledged": sum(r["verdict"]["acknowledged"] for r in mine),
            "lost": sum(r["verdict"]["lost"] for r in mine),
            "duplicated": sum(r["verdict"]["duplicated"] for r in mine),
            "reordered": sum(r["verdict"]["reordered"] for r in mine),
            "in_doubt_resolved": sum(r["verdict"]["in_doubt_resolved"] for r in mine),
            "gap_p50_s": round(statistics.median(g["median"] for g in gaps), 3) if gaps else None,
            "gap_p99_s": round(percentile([g.get("p99", g["max"]) for g in gaps], 0.99), 3)
            if gaps
            else None,
            "gap_max_s": max(g["max"] for g in gaps) if gaps else None,
            "rebuild_seconds": [r["rebuild"]["seconds"] for r in mine if r.get("rebuild")],
            "all_passed": all(r["verdict"]["ok"] for r in mine),
        }
    return out


def table(summary: dict[str, Any], failed_to_run: Mapping[str, int]) -> str:
    """The per-kind Markdown table for bench/RESULTS.md."""
    lines = [
        "| fault | drills | acknowledged | lost | dup | reordered | write gap p50 | p99 | max "
        "| all passed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fault, s in summary.items():
        gap = [s["gap_p50_s"], s["gap_p99_s"], s["gap_max_s"]]
        shown = " | ".join("—" if g is None else f"{g:.2f} s" for g in gap)
        extra = f" ({failed_to_run[fault]} left no report)" if failed_to_run.get(fault) else ""
        lines.append(
            f"| {fault} | {s['drills']}{extra} | {s['acknowledged']:,} | {s['lost']} | "
            f"{s['duplicated']} | {s['reordered']} | {shown} | "
            f"{'yes' if s['all_passed'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def interleave(counts: dict[str, int]) -> list[str]:
    """fire, partition, fire, partition, fire, ... until each kind has its count."""
    plan: list[str] = []
    left = dict(counts)
    while any(left.values()):
        for kind in counts:
            if left[kind]:
                plan.append(kind)
                left[kind] -= 1
    return plan


def parse_count(text: str) -> tuple[str, int]:
    kind, _, number = text.partition("=")
    if not kind or not number.isdigit():
        raise argparse.ArgumentTypeError(f"expected KIND=N, got {text!r}")
    return kind, int(number)


def drill_command(cluster: str, fault: str, target: Path, args: argparse.Namespace) -> list[str]:
    cmd = [
        sys.executable, "-m", "outlast", "drill", "fire",
        "--cluster", cluster,
        "--users", str(args.users),
        "--rooms", str(args.rooms),
        "--rate", str(args.rate),
        "--duration", str(args.duration),
        "--at", str(args.at),
        "--fault", fault,
        "--heal-after", str(args.heal_after),
        "--json-out", str(target),
        "--quiet",
    ]  # fmt: skip
    if fault == "fire":
        cmd.append("--rebuild")
    return cmd


def cluster_args(args: argparse.Namespace) -> list[str]:
    """`cluster up` options: the namespaces and WAN delay, and the per-site tmpfs that the
    disk-full drill refuses to run without (filling the host's own disk would hurt others)."""
    disk = ["--disk-mb", str(args.disk_mb)] if args.disk_mb else []
    if not args.netns:
        return disk
    return [
        "--netns", "--latency-ms", str(args.latency_ms), "--jitter-ms", str(args.jitter_ms), *disk
    ]  # fmt: skip


def earlier(out: Path) -> tuple[list[dict[str, Any]], Counter[str], int]:
    """Drills a previous run of this series left in ``out``: reports, kinds that left no
    report, and the next drill number."""
    reports = [json.loads(p.read_text()) for p in sorted(out.glob("[0-9][0-9][0-9]-*.json"))]
    failed = sorted(out.glob("[0-9][0-9][0-9]-*.failed.txt"))
    no_report = Counter(p.name[4:].removesuffix(".failed.txt") for p in failed)
    numbers = [int(p.name[:3]) for p in [*out.glob("[0-9][0-9][0-9]-*.json"), *failed]]
    return reports, no_report, max(numbers, default=-1) + 1


def main() -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.drill_series",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--count",
        type=parse_count,
        action="append",
        metavar="KIND=N",
        help="drills of one fault kind (repeat per kind; default fire=10)",
    )
    p.add_argument("--rate", type=float, default=200)
    p.add_argument("--rooms", type=int, default=50)
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--duration", type=float, default=30)
    p.add_argument("--at", type=float, default=8)
    p.add_argument("--heal-after", type=float, default=10)
    p.add_argument("--netns", action="store_true", help="sites in network namespaces (root)")
    p.add_argument("--latency-ms", type=float, default=10.0, help="one-way, with --netns")
    p.add_argument("--jitter-ms", type=float, default=2.0, help="with --netns")
    p.add_argument(
        "--disk-mb",
        type=int,
        default=None,
        help="each site's data on a tmpfs of this many MiB (root; default 512 when the plan "
        "has disk-full drills, else none)",
    )
    p.add_argument("--hours", type=float, default=24.0, help="start no drill after this long")
    p.add_argument("--out", default="bench/results/drills/series")
    args = p.parse_args()
    counts = dict(args.count or [("fire", 10)])
    if args.disk_mb is None:
        args.disk_mb = 512 if counts.get("disk-full") else 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reports, no_report, first = earlier(out)
    for fault, done in Counter([r["fault"] for r in reports] + list(no_report.elements())).items():
        counts[fault] = max(0, counts.get(fault, 0) - done)
    plan = interleave(counts)
    if first:
        print(f"resuming: {first} drills already in {out}, {len(plan)} to go", flush=True)
    deadline = time.monotonic() + args.hours * 3600
    local: LocalCluster | None = None
    try:
        for i, fault in enumerate(plan, first):
            if time.monotonic() > deadline:
                print(f"--hours reached: {i - first} of {len(plan)} drills run", flush=True)
                break
            if local is None:
                local = LocalCluster(up_args=cluster_args(args))
            target = out / f"{i:03d}-{fault}.json"
            cmd = drill_command(str(local.dir / "c" / "cluster.json"), fault, target, args)
            started = time.monotonic()
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
            last = result.stdout.strip().splitlines()[-1:] or [result.stderr[-500:]]
            print(
                f"[{i + 1}/{first + len(plan)}] {fault}: exit {result.returncode} in "
                f"{time.monotonic() - started:.0f} s, load {os.getloadavg()[0]:.1f}: {last[0]}",
                flush=True,
            )
            if target.exists():
                report = json.loads(target.read_text())
                report.setdefault("series", {})["load_average_after"] = os.getloadavg()[0]
                target.write_text(json.dumps(report, indent=2))
                reports.append(report)
            else:
                no_report[fault] += 1
                (out / f"{i:03d}-{fault}.failed.txt").write_text(result.stdout + result.stderr)
                # The cluster's directory goes with it: keep the supervisor's log (guard,
                # rebuild and repair steps) to find out why the drill left no report.
                log = local.dir / "c" / "supervisor.log"
                if log.exists():
                    shutil.copyfile(log, out / f"{i:03d}-{fault}.supervisor.log")
                local.stop()
                local = None
            summary = summarize(reports)
            (out / "summary.json").write_text(
                json.dumps({"settings": vars(args), "kinds": summary, "no_report": no_report},
                           indent=2, default=str)
            )  # fmt: skip
            (out / "table.md").write_text(table(summary, no_report))
    finally:
        if local is not None:
            local.stop()
    print(table(summarize(reports), no_report))
    return 0 if reports and all(r["verdict"]["ok"] for r in reports) and not no_report else 1


if __name__ == "__main__":
    sys.exit(main())
