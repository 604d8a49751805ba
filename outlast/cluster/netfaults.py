"""Degraded WAN links for drills: random packet loss (kernel) and latency spikes (relays).

Loss needs `cluster up --netns`: nftables rules in the site's namespace drop a
random share of its route packets, so TCP retransmits as on a lossy WAN. The
user-space relays of a loopback cluster carry bytes over TCP and cannot lose a
packet; dropping whole connections instead would be a different fault (a flapping
partition), so loss is refused there rather than faked.

A spike adds delay to every relay to and from the site (links.py), which works in
both modes since every inter-site byte crosses a relay.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence

from outlast.cluster.netns import SiteNet, exec_prefix

LOSS_TABLE = "outlast_loss"
LOSS_RANGE = (1, 50)  # percent; drills use 5-20


def loss_rules(cluster_port: int, relay_ports: Sequence[int], percent: int) -> str:
    """An nft script for inside a site's namespace: drop ``percent``% of its route
    packets at random, in each direction (the other sites' connections to this
    node's cluster port and this node's connections to the relays)."""
    low, high = LOSS_RANGE
    if not low <= percent <= high:
        raise ValueError(f"loss must be {low}-{high} percent, not {percent}")
    ports = ", ".join(str(p) for p in sorted(relay_ports))
    drop = f"numgen random mod 100 < {percent} counter drop"
    return "\n".join(
        [
            f"table inet {LOSS_TABLE} {{",
            "  chain inbound {",
            "    type filter hook input priority 0; policy accept;",
            f"    tcp dport {cluster_port} {drop}",
            f"    tcp sport {{ {ports} }} {drop}",
            "  }",
            "  chain outbound {",
            "    type filter hook output priority 0; policy accept;",
            f"    tcp sport {cluster_port} {drop}",
            f"    tcp dport {{ {ports} }} {drop}",
            "  }",
            "}",
            "",
        ]
    )


def set_loss(net: SiteNet, cluster_port: int, relay_ports: Sequence[int], percent: int) -> int:
    """Start dropping (replacing any earlier loss), or stop with ``percent`` 0; how many
    packets the rules it replaced had dropped."""
    dropped = clear_loss(net)
    if percent == 0:
        return dropped
    result = subprocess.run(
        [*exec_prefix(net.namespace), "nft", "-f", "-"],
        input=loss_rules(cluster_port, relay_ports, percent),
        capture_output=True,
        text=True,
        timeout=20,
    )
    if result.returncode != 0:
        raise OSError(f"nft in {net.namespace}: {result.stderr.strip()}")
    return dropped


def dropped_packets(nft_listing: str) -> int:
    """The sum of the rule counters in `nft list table` output."""
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", nft_listing))


def clear_loss(net: SiteNet) -> int:
    """Remove the loss rules; how many packets they dropped (0 when there were none)."""
    listing = subprocess.run(
        [*exec_prefix(net.namespace), "nft", "list", "table", "inet", LOSS_TABLE],
        capture_output=True,
        text=True,
        timeout=20,
    )
    dropped = dropped_packets(listing.stdout) if listing.returncode == 0 else 0
    subprocess.run(
        [*exec_prefix(net.namespace), "nft", "delete", "table", "inet", LOSS_TABLE],
        capture_output=True,
        timeout=20,
    )
    return dropped
