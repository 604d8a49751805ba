"""Sites in Linux network namespaces (`outlast cluster up --netns`, root only).

Each site's nats-server and workers run in a namespace of their own, joined to
the host namespace by a veth pair with a /30 of 10.77.<octet>.0/24 (the octet
is picked at random among those no interface uses yet, so parallel clusters do
not collide). The namespace has no default route: the only way from one site
to another is a relay in the host namespace (links.py), which adds the WAN's
delay. A partition is cut by the kernel: nftables rules inside the site's
namespace drop its route packets, in one direction or both.

What a cluster made is recorded in DIR/netns.json before it is made, so that
`outlast cluster down` removes it even after the supervisor crashed.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

RECORD = "netns.json"
NFT_TABLE = "outlast_cut"
DIRECTIONS = ("both", "in", "out")


@dataclass(frozen=True)
class SiteNet:
    site: str
    namespace: str
    host_veth: str  # the host end of the pair
    site_veth: str  # the end inside the namespace
    host_addr: str  # host side: this site's relays listen here; HAProxy connects from here
    site_addr: str  # inside the namespace: the node and the workers listen here


def plan_nets(names: Sequence[str], tag: str, octet: int) -> list[SiteNet]:
    """Names and addresses for each site: site k gets 10.77.<octet>.<4k>/30."""
    if len(names) > 64:
        raise ValueError("at most 64 sites fit in one /24 of /30s")
    nets = []
    for k, name in enumerate(names):
        base = 4 * k
        nets.append(
            SiteNet(
                site=name,
                namespace=f"outlast-{tag}-{name}",
                host_veth=f"ol{tag}{name}h",  # interface names stay under 16 bytes
                site_veth=f"ol{tag}{name}s",
                host_addr=f"10.77.{octet}.{base + 1}",
                site_addr=f"10.77.{octet}.{base + 2}",
            )
        )
    return nets


def used_octets(ip_addr_output: str) -> set[int]:
    """The third octets of 10.77.x.y addresses in `ip -o addr` output."""
    return {int(m) for m in re.findall(r"inet 10\.77\.(\d+)\.\d+", ip_addr_output)}


def pick_octet(ip_addr_output: str, rng: random.Random | None = None) -> int:
    free = sorted(set(range(1, 255)) - used_octets(ip_addr_output))
    if not free:
        raise OSError("every 10.77.x.0/24 is in use on this machine")
    return (rng or random.Random()).choice(free)


def new_tag() -> str:
    """Four hex digits from the pid and a random part: short enough for interface names."""
    return f"{(os.getpid() ^ random.getrandbits(16)) & 0xFFFF:04x}"


def cut_rules(cluster_port: int, relay_ports: Sequence[int], direction: str) -> str:
    """An nft script for inside a site's namespace: drop its route packets.

    ``in``: nothing from the other sites arrives (connections they dial to this
    node's cluster port, and the answers on the connections this node dialled).
    ``out``: nothing this node sends to them leaves. ``both``: both.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    ports = ", ".join(str(p) for p in sorted(relay_ports))
    lines = [f"table inet {NFT_TABLE} {{"]
    if direction in ("both", "in"):
        lines += [
            "  chain inbound {",
            "    type filter hook input priority 0; policy accept;",
            f"    tcp dport {cluster_port} drop",
            f"    tcp sport {{ {ports} }} drop",
            "  }",
        ]
    if direction in ("both", "out"):
        lines += [
            "  chain outbound {",
            "    type filter hook output priority 0; policy accept;",
            f"    tcp sport {cluster_port} drop",
            f"    tcp dport {{ {ports} }} drop",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- I/O: ip and nft --


def available() -> str:
    """Why netns mode cannot run here ("" when it can)."""
    if os.geteuid() != 0:
        return "--netns needs root (it makes network namespaces and veth pairs)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"--netns needs '{tool}' (Debian package {package}; scripts/system-deps.sh)"
    return ""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def exec_prefix(namespace: str) -> list[str]:
    """Run a command inside the namespace (`ip netns exec` execs it: same pid)."""
    return ["ip", "netns", "exec", namespace]


def record(directory: Path, nets: Sequence[SiteNet]) -> None:
    """Write down what is about to be made, before making it."""
    path = directory / RECORD
    known = load_record(directory)
    names = {n.namespace for n in known}
    merged = [*known, *(n for n in nets if n.namespace not in names)]
    path.write_text(json.dumps([asdict(n) for n in merged], indent=2))


def load_record(directory: Path) -> list[SiteNet]:
    try:
        return [SiteNet(**item) for item in json.loads((directory / RECORD).read_text())]
    except (OSError, ValueError, TypeError):
        return []


def create(directory: Path, nets: Sequence[SiteNet]) -> None:
    record(directory, nets)
    for net in nets:
        _ip("netns", "add", net.namespace)
        _ip("link", "add", net.host_veth, "type", "veth", "peer", "name", net.site_veth,
            "netns", net.namespace)  # fmt: skip
        _ip("addr", "add", f"{net.host_addr}/30", "dev", net.host_veth)
        _ip("link", "set", net.host_veth, "up")
        _ip("-n", net.namespace, "addr", "add", f"{net.site_addr}/30", "dev", net.site_veth)
        _ip("-n", net.namespace, "link", "set", net.site_veth, "up")
        _ip("-n", net.namespace, "link", "set", "lo", "up")


def remove(directory: Path) -> list[str]:
    """Delete every namespace and veth recorded in DIR (idempotent); what was removed."""
    removed = []
    existing = set(namespaces())
    for net in load_record(directory):
        if net.namespace in existing:
            _ip("netns", "del", net.namespace, check=False)
            removed.append(net.namespace)
        # Deleting the namespace deletes its veth end and so the pair; a pair whose
        # namespace was never made (a crash halfway) is deleted here.
        if _ip("link", "show", net.host_veth, check=False).returncode == 0:
            _ip("link", "del", net.host_veth, check=False)
            removed.append(net.host_veth)
    (directory / RECORD).unlink(missing_ok=True)
    return removed


def namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def ip_addrs() -> str:
    return _ip("-o", "addr", check=False).stdout


def cut(net: SiteNet, cluster_port: int, relay_ports: Sequence[int], direction: str) -> None:
    """Drop the site's route packets in the kernel (replacing any earlier cut)."""
    script = cut_rules(cluster_port, relay_ports, direction)
    heal(net)
    result = subprocess.run(
        [*exec_prefix(net.namespace), "nft", "-f", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=20,
    )
    if result.returncode != 0:
        raise OSError(f"nft in {net.namespace}: {result.stderr.strip()}")


def heal(net: SiteNet) -> None:
    subprocess.run(
        [*exec_prefix(net.namespace), "nft", "delete", "table", "inet", NFT_TABLE],
        capture_output=True,
        timeout=20,
    )
