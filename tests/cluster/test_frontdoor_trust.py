"""The local cluster's front door and sites agree on client addresses (no cluster started)."""

from __future__ import annotations

from pathlib import Path

from outlast import config
from outlast.cluster.frontdoor import Backend, render_haproxy
from outlast.cluster.plan import ClusterPlan
from outlast.config import FAST_HASH_TOML, NO_LIMITS_TOML


def test_the_front_door_forwards_the_client_address() -> None:
    text = render_haproxy(8000, [Backend("a", 8001)], 8002)
    assert "option forwardfor" in text
    assert "timeout http-request" in text  # slow clients are cut at the door too


def test_sites_trust_the_front_door_and_keep_their_limits_unless_told(tmp_path: Path) -> None:
    for extra, limits_on in (("", True), (FAST_HASH_TOML + NO_LIMITS_TOML, False)):
        plan = ClusterPlan.new(tmp_path / f"c{limits_on}", 3, 2, 1, extra)
        path = tmp_path / f"worker-{limits_on}.toml"
        path.write_text(plan.worker_config(plan.sites[0], 0))
        loaded = config.load(path)
        assert loaded.server.trusted_proxies == ["127.0.0.1"]
        assert loaded.limits.enabled is limits_on
