"""Run a series of fire drills against one local three-site cluster and summarize them.

    python -m bench.drill_series --fires 10 --others 5 --rate 200 --rooms 50 \
        --out bench/results/drills

Every fire is followed by a rebuild (so the next drill again has three sites);
power, partition and freeze are undone by the drill itself. The summary lists,
per fault kind, the lost / duplicated / reordered totals and the write gap
(min / median / p99 / max over all clients of all drills of that kind).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.run import LocalCluster


def run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def summarize(reports: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fault in sorted({r["fault"] for r in reports}):
        mine = [r for r in reports if r["fault"] == fault]
        maxes = [r["write_gap"]["max"] for r in mine if r.get("write_gap")]
        medians = [r["write_gap"]["median"] for r in mine if r.get("write_gap")]
        out[fault] = {
            "drills": len(mine),
            "acknowledged": sum(r["verdict"]["acknowledged"] for r in mine),
            "lost": sum(r["verdict"]["lost"] for r in mine),
            "duplicated": sum(r["verdict"]["duplicated"] for r in mine),
            "reordered": sum(r["verdict"]["reordered"] for r in mine),
            "in_doubt_resolved": sum(r["verdict"]["in_doubt_resolved"] for r in mine),
            "gap_min_s": min(r["write_gap"]["min"] for r in mine if r.get("write_gap")),
            "gap_median_of_medians_s": round(statistics.median(medians), 3) if medians else None,
            "gap_p99_s": round(sorted(maxes)[min(len(maxes) - 1, int(0.99 * (len(maxes) - 1)))], 3)
            if maxes
            else None,
            "gap_max_s": max(maxes) if maxes else None,
            "rebuild_seconds": [r["rebuild"]["seconds"] for r in mine if r.get("rebuild")],
            "all_passed": all(r["verdict"]["ok"] for r in mine),
        }
    return out


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--fires", type=int, default=10)
    p.add_argument("--others", type=int, default=5)
    p.add_argument("--rate", type=float, default=200)
    p.add_argument("--rooms", type=int, default=50)
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--duration", type=float, default=30)
    p.add_argument("--at", type=float, default=8)
    p.add_argument("--heal-after", type=float, default=10)
    p.add_argument("--out", default="bench/results/drills")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        local = LocalCluster()
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    cluster = str(local.dir / "c" / "cluster.json")
    plan = ["fire"] * args.fires + [
        f for f in ("power", "partition", "freeze") for _ in range(args.others)
    ]
    reports = []
    try:
        for i, fault in enumerate(plan):
            target = out / f"{i:02d}-{fault}.json"
            cmd = [
                sys.executable,
                "-m",
                "outlast",
                "drill",
                "fire",
                "--cluster",
                cluster,
                "--users",
                str(args.users),
                "--rooms",
                str(args.rooms),
                "--rate",
                str(args.rate),
                "--duration",
                str(args.duration),
                "--at",
                str(args.at),
                "--fault",
                fault,
                "--heal-after",
                str(args.heal_after),
                "--json-out",
                str(target),
                "--quiet",
            ]
            if fault == "fire":
                cmd.append("--rebuild")
            if i == 0:
                cmd += ["--plot", str(out / "first-fire.png")]
            result = run(cmd, 900)
            print(
                result.stdout.strip().splitlines()[-1]
                if result.stdout.strip()
                else result.stderr[-500:],
                flush=True,
            )
            if target.exists():
                reports.append(json.loads(target.read_text()))
            print(f"[{i + 1}/{len(plan)}] {fault}: exit {result.returncode}", flush=True)
    finally:
        local.stop()
    summary = summarize(reports)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0 if all(v["all_passed"] for v in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
