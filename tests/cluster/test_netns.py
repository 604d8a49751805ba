"""The pure half of `cluster up --netns`: names, addresses and the kernel cut rules."""

from __future__ import annotations

import random

import pytest

from outlast.cluster.netns import cut_rules, pick_octet, plan_nets, used_octets


def test_each_site_gets_its_own_slash_30_and_short_interface_names() -> None:
    nets = plan_nets(["a", "b", "c"], "1f2e", 42)
    assert [(n.host_addr, n.site_addr) for n in nets] == [
        ("10.77.42.1", "10.77.42.2"),
        ("10.77.42.5", "10.77.42.6"),
        ("10.77.42.9", "10.77.42.10"),
    ]
    assert len({n.namespace for n in nets}) == 3
    for net in nets:
        assert len(net.host_veth) < 16 and len(net.site_veth) < 16  # IFNAMSIZ
        assert net.host_veth != net.site_veth


def test_an_octet_in_use_on_the_machine_is_never_picked() -> None:
    output = (
        "7: olx    inet 10.77.10.1/30 scope global olx\n"
        "8: oly    inet 10.77.11.5/30 scope global oly\n"
        "1: lo    inet 127.0.0.1/8 scope host lo\n"
    )
    assert used_octets(output) == {10, 11}
    rng = random.Random(1)
    picks = {pick_octet(output, rng) for _ in range(500)}
    assert picks and not picks & {0, 10, 11, 255}


def test_every_octet_taken_is_an_error_not_a_collision() -> None:
    output = "".join(f"inet 10.77.{i}.1/30\n" for i in range(256))
    with pytest.raises(OSError):
        pick_octet(output)


def test_cut_rules_drop_route_packets_in_the_directions_asked() -> None:
    both = cut_rules(7000, [7101, 7102], "both")
    assert "hook input" in both and "hook output" in both
    inbound = cut_rules(7000, [7101, 7102], "in")
    assert "hook input" in inbound and "hook output" not in inbound
    assert "tcp dport 7000 drop" in inbound and "tcp sport { 7101, 7102 } drop" in inbound
    outbound = cut_rules(7000, [7101, 7102], "out")
    assert "hook output" in outbound and "hook input" not in outbound
    assert "tcp sport 7000 drop" in outbound and "tcp dport { 7101, 7102 } drop" in outbound
    with pytest.raises(ValueError):
        cut_rules(7000, [7101], "sideways")
