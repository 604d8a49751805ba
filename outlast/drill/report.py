"""How a drill is reported: a terminal summary, JSON, and a PNG chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def summary(report: dict[str, Any]) -> str:
    v = report["verdict"]
    gap = report.get("write_gap") or {}
    lines = [
        "",
        f"Fire drill {report['id']} — fault '{report['fault']}' on site {report['site']} "
        f"at t={report['fault_at_s']:.1f}s",
        f"  engine: {report['nats_server_version']}; settings: {report['settings']}",
        f"  load: {report['load']['users']} users, {report['load']['rooms']} rooms, "
        f"{report['load']['rate']} msg/s for {report['load']['duration']}s",
        f"  sent {report['counters']['sent']}, acknowledged {v['acknowledged']}, "
        f"client errors {report['counters']['errors']} (retried with the same txnId)",
        f"  LOST: {v['lost']}   DUPLICATED: {v['duplicated']}   REORDERED: {v['reordered']}",
        f"  in-doubt sends resolved by retry: {v['in_doubt_resolved']}; "
        f"never acknowledged: {v['unacknowledged']} "
        f"(of which stored: {v['unacknowledged_but_stored']})",
    ]
    if gap:
        lines.append(
            f"  client-visible write gap (s): min {gap['min']}  median {gap['median']}  "
            f"p99 {gap['p99']}  max {gap['max']}  over {int(gap['clients'])} clients"
        )
    phases = report.get("write_gap_by_phase") or {}
    if phases.get("during") or phases.get("after"):
        during, after = phases.get("during") or {}, phases.get("after") or {}
        lines.append(
            f"  the same split at the undoing: during the fault p99 {during.get('p99', '-')}"
            f"  max {during.get('max', '-')}; after it p99 {after.get('p99', '-')}"
            f"  max {after.get('max', '-')}"
        )
    calm = report.get("write_gap_before_fault") or {}
    if calm:
        lines.append(
            f"  the same before the fault (t=1s to t={report['fault_at_s']:.0f}s): "
            f"median {calm['median']}  p99 {calm['p99']}  max {calm['max']}"
        )
    own = report.get("own_write_reads")
    if own:
        lines.append(
            f"  own write read back at once at another survivor, first ack after the fault: "
            f"{own['clients']} clients, {own['reads']} reads: STALE: {own['stale']}, "
            f"fresh {own['fresh']}, unavailable {own['unavailable']} "
            f"(read p50 {own['read_ms_p50']} ms, max {own['read_ms_max']} ms)"
        )
    if report.get("views_settled_after_s") is not None:
        lines.append(
            f"  timelines read back {report['views_settled_after_s']}s after the load ended "
            "(re-read until every acknowledged message showed, at most 60 s)"
        )
    if report.get("recovered_at_s") is not None:
        lines.append(f"  fault undone at t={report['recovered_at_s']:.1f}s")
    if report.get("maintenance"):
        roll = report["maintenance"]
        each = ", ".join(f"{r['site']} {r['seconds']}s" for r in roll.get("sites", []))
        lines.append(f"  rolling restart of every site in {roll.get('seconds')}s ({each})")
    if report.get("inflicted"):
        lines.append(f"  inflicted: {_brief(report['inflicted'])}")
    durable = report.get("durability")
    if durable:
        lines.append(
            "  power loss of every site: acknowledged before it "
            f"{durable['acknowledged_before_fault']}, "
            f"MISSING after power-on: {durable['missing_after_power_on']}"
        )
    replica = report.get("replica")
    if replica:
        lines.append(
            f"  damaged replica: {replica.get('streams_damaged')} stream(s) damaged; "
            f"{replica.get('dropped_at_restore', 0)} message(s) dropped when the node "
            f"restored them from disk (detected: {replica.get('detected')}, warned in its "
            f"log: {replica.get('logged_a_warning')}); afterwards as complete as the "
            f"others: {replica.get('caught_up', 0)}, behind: {len(replica.get('behind', []))}, "
            f"missing: {len(replica.get('missing', []))}; repaired: {replica.get('repaired')}"
        )
        for stream, each in sorted((replica.get("streams") or {}).items()):
            lines.append(
                f"    {stream}: held {each['held_before']}, restored from disk "
                f"{each['restored_from_disk']}, catch-up logged: {each['catchup_logged']}"
            )
        for line in replica.get("node_log", [])[:5]:
            lines.append(f"    node log: {line[:160]}")
        audit = replica.get("audit") or {}
        if audit:
            repairs = (audit.get("cluster_audit") or {}).get("repairs") or []
            lines.append(
                f"    replica audit: holes left {len(audit.get('holes_left') or [])}; "
                f"repairs by the cluster's audit {len(repairs)}"
            )
            for repair in repairs:
                streams = ", ".join(h.get("stream", "?") for h in repair.get("holes", []))
                lines.append(
                    f"      {repair.get('node')}: {streams}: {repair.get('how', 'under way')}"
                )
    lines += _disk_and_skew(report)
    if report.get("rebuild", {}).get("error"):
        rb = report["rebuild"]
        lines.append(f"  rebuild: site {rb.get('site')} FAILED: {rb['error']}")
    elif report.get("rebuild"):
        rb = report["rebuild"]
        lines.append(
            f"  rebuild: site {rb.get('site')} as node {rb.get('node')} in {rb.get('seconds')}s; "
            f"timelines through it identical: {rb.get('identical')}"
            + ("; its views were seeded from a snapshot" if rb.get("seeded_from_snapshot") else "")
        )
    lines += _net_lines(report)
    push = report.get("push")
    if push:
        lines.append(
            f"  push: expected {push['expected']}, delivered {push['delivered']}: "
            f"LOST: {push['lost']}   DUPLICATED: {push['duplicated']}   "
            f"UNEXPECTED: {push['unexpected']}; in-doubt repeats (deduplicated by the "
            f"gateway on event_id): {push['in_doubt_duplicates']}; "
            f"send-to-gateway latency ms {push['latency_ms']}; "
            f"all arrived {push['settled_after_s']}s after the timelines settled"
        )
    lines.append(f"  verdict: {'PASS' if v['ok'] else 'FAIL'}")
    return "\n".join(lines)


def _net_lines(report: dict[str, Any]) -> list[str]:
    """The WAN faults' extra figures (outlast/drill/netfaults.py)."""
    lines = []
    latency = report.get("send_latency")
    if latency:
        before, during = latency.get("before_fault", {}), latency.get("during_fault", {})
        lines.append(
            f"  send latency ms during the fault: p50 {during.get('p50_ms')} p99 "
            f"{during.get('p99_ms')} over {during.get('sends', 0)} sends (before it: p50 "
            f"{before.get('p50_ms')} p99 {before.get('p99_ms')}); no client acknowledged "
            f"for {report.get('write_outage_s')}s at most"
        )
    recovery = report.get("recovery") or {}
    if "packets_dropped" in recovery:
        lines.append(f"  packets dropped by the loss rules: {recovery['packets_dropped']}")
    rb = recovery.get("rebuild")
    if rb:
        lines.append(
            f"  rebuild under the partition: done {rb.get('ok')} "
            f"(error: {rb.get('error')}), {rb.get('total_s')}s from the fault, "
            f"{rb.get('finished_after_heal_s')}s after the heal"
        )
    return lines


def _brief(inflicted: dict[str, Any]) -> str:
    """What a fault did, in a line: the damaged blocks listed by stream, not in full."""
    damaged = inflicted.get("damaged")
    if damaged is None:
        return ", ".join(f"{k} {v}" for k, v in inflicted.items())
    cut = sum(int(d.get("cut", 0)) for d in damaged)
    flipped = sum(int(d.get("flipped", 0)) for d in damaged)
    return (
        f"site {inflicted.get('site')}: the last block of {len(damaged)} stream(s) damaged "
        f"({flipped} bytes flipped, {cut} bytes cut off)"
    )


PLOT_NEEDS = (
    "the drill's chart (--plot) needs matplotlib, an optional extra: "
    "pip install 'outlast[plot]' (./run installs it)"
)


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed; the message says how to get it."""


def require_plotting() -> None:
    """Fail before a drill starts, not after it ran, when the chart cannot be drawn."""
    try:
        import matplotlib  # noqa: F401 - only whether it imports
    except ImportError:
        raise PlotUnavailable(PLOT_NEEDS) from None


def plot(report: dict[str, Any], path: Path) -> None:
    """Acknowledged writes per second, per answering site, with the fault and recovery marked."""
    require_plotting()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    series: dict[str, dict[str, int]] = report["acks_per_second_by_site"]
    horizon = int(report["load"]["duration"]) + 1
    seconds = list(range(horizon))
    bottom = [0] * horizon
    for site in sorted(series):
        values = [int(series[site].get(str(s), 0)) for s in seconds]
        ax.bar(seconds, values, bottom=bottom, label=f"site {site}", width=0.9)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.axvline(
        report["fault_at_s"],
        color="crimson",
        linestyle="--",
        linewidth=2,
        label=f"{report['fault']} at site {report['site']}",
    )
    if report.get("recovered_at_s") is not None:
        ax.axvline(
            report["recovered_at_s"],
            color="seagreen",
            linestyle=":",
            linewidth=2,
            label="fault undone",
        )
    gap = report.get("write_gap") or {}
    v = report["verdict"]
    ax.set_title(
        f"Outlast fire drill: {v['acknowledged']} acknowledged, lost {v['lost']}, "
        f"duplicated {v['duplicated']}, reordered {v['reordered']}"
        + (f"; write gap median {gap['median']}s" if gap else ""),
        fontsize=10,
    )
    ax.set_xlabel("seconds since load started")
    ax.set_ylabel("acknowledged writes / s")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _disk_and_skew(report: dict[str, Any]) -> list[str]:
    """The disk-full and skew drills' own findings."""
    lines = []
    full = report.get("disk_full")
    if full:
        rec = full.get("recovery") or {}
        lines.append(
            f"  full disk: writes straight to the site were told "
            f"{(full.get('direct_writes') or {}).get('answers')}; clients' failed attempts "
            f"{report['counters'].get('error_answers')}; 500s: {full.get('internal_errors')}"
        )
        lines.append(
            f"  node turned JetStream off: {rec.get('jetstream_disabled')}; processes that "
            f"exited: {rec.get('processes_exited')}; powered on again after freeing: "
            f"{'power_on' in rec}"
        )
    skew = report.get("skew")
    if skew:
        lines.append(
            f"  clock {skew.get('skew_s')}s off: {len(skew.get('checks', []))} checks, "
            f"failed: {skew.get('failed') or 'none'}; expiry: {skew.get('expiry')}"
        )
    return lines
