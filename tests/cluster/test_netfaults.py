"""The nftables script for random packet loss, and reading back what it dropped."""

from __future__ import annotations

import pytest

from outlast.cluster.netfaults import LOSS_TABLE, dropped_packets, loss_rules


def test_loss_rules_drop_a_share_of_route_packets_both_ways() -> None:
    script = loss_rules(6222, [7001, 7000], 10)
    assert script.startswith(f"table inet {LOSS_TABLE} {{")
    drop = "numgen random mod 100 < 10 counter drop"
    for rule in (
        f"tcp dport 6222 {drop}",
        f"tcp sport {{ 7000, 7001 }} {drop}",
        f"tcp sport 6222 {drop}",
        f"tcp dport {{ 7000, 7001 }} {drop}",
    ):
        assert rule in script, rule
    assert "hook input" in script and "hook output" in script


@pytest.mark.parametrize("percent", [0, 51, -3])
def test_loss_outside_the_range_is_refused(percent: int) -> None:
    with pytest.raises(ValueError, match="percent"):
        loss_rules(6222, [7000], percent)


def test_dropped_packets_sums_the_rule_counters() -> None:
    listing = """table inet outlast_loss {
	chain inbound {
		tcp dport 6222 numgen random mod 100 < 10 counter packets 12 bytes 900 drop
		tcp sport { 7000, 7001 } numgen random mod 100 < 10 counter packets 3 bytes 200 drop
	}
	chain outbound {
		tcp sport 6222 numgen random mod 100 < 10 counter packets 0 bytes 0 drop
	}
}"""
    assert dropped_packets(listing) == 15
    assert dropped_packets("") == 0
