"""Which stream-info answers show a stream's current position (outlast.log.leader)."""

from __future__ import annotations

from typing import Any

import pytest

from outlast.log.leader import LEASE_SECONDS, NotProvable, leader_last_seq

SECOND = 1_000_000_000  # nanoseconds, as nats-server reports "active"


def info(
    last_seq: int = 42,
    *,
    leader: str | None = "a-1",
    replicas: int = 3,
    peers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "config": {"name": "OUTLAST_USERS", "num_replicas": replicas},
        "state": {"messages": last_seq, "last_seq": last_seq},
    }
    if leader is not None:
        body["cluster"] = {"name": "outlast", "leader": leader, "replicas": peers or []}
    return body


def peer(name: str, active_s: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "current": True, "active": int(active_s * SECOND), **extra}


def test_a_standalone_server_is_its_own_leader() -> None:
    body = info(7, replicas=1)
    del body["cluster"]
    assert leader_last_seq(body) == 7


def test_a_leader_that_heard_from_its_followers_just_now_is_believed() -> None:
    assert leader_last_seq(info(42, peers=[peer("b-1", 0.8), peer("c-1", 0.3)])) == 42


def test_one_fresh_follower_is_enough_for_three_replicas() -> None:
    """A site lost: the leader and one follower are still a quorum."""
    body = info(42, peers=[peer("b-1", 0.5), peer("c-1", 600, offline=True)])
    assert leader_last_seq(body) == 42


def test_a_replica_answering_without_a_leader_is_refused() -> None:
    """What a cut-off site's own replica answers while its group has no leader."""
    with pytest.raises(NotProvable, match="no leader"):
        leader_last_seq(info(40, leader="", peers=[peer("b-1", 9), peer("c-1", 9)]))


def test_a_leader_that_has_not_heard_from_a_quorum_within_the_lease_is_refused() -> None:
    """A leader cut off from both other sites still calls itself leader for ~10 s."""
    stale = [peer("b-1", LEASE_SECONDS + 0.1), peer("c-1", LEASE_SECONDS + 0.5)]
    with pytest.raises(NotProvable, match="quorum"):
        leader_last_seq(info(40, peers=stale))


def test_offline_and_pending_peers_do_not_count() -> None:
    peers = [peer("b-1", 0.1, offline=True), peer("c-1", 0.1, pending=True)]
    with pytest.raises(NotProvable):
        leader_last_seq(info(40, peers=peers))


def test_five_replicas_need_two_fresh_followers() -> None:
    peers = [peer("b", 0.1), peer("c", 9), peer("d", 9), peer("e", 9)]
    with pytest.raises(NotProvable):
        leader_last_seq(info(1, replicas=5, peers=peers))
    peers[1] = peer("c", 0.2)
    assert leader_last_seq(info(1, replicas=5, peers=peers)) == 1


def test_an_error_reply_is_refused() -> None:
    with pytest.raises(NotProvable, match="stream not found"):
        leader_last_seq({"error": {"code": 404, "description": "stream not found"}})


def test_an_empty_stream_is_at_zero() -> None:
    assert leader_last_seq(info(0, peers=[peer("b-1", 0.1)])) == 0


def test_a_follower_answering_for_its_leader_is_refused() -> None:
    # The leader is listed among the replicas: the reply came from a follower,
    # whose state may be behind what the leader committed.
    peers = [peer("a-1", 0.4), peer("c-1", 0.2)]
    with pytest.raises(NotProvable, match="follower"):
        leader_last_seq(info(40, leader="a-1", peers=peers))


def test_a_peer_never_heard_from_is_not_fresh() -> None:
    # nats-server reports "active": 0 for a peer whose last-seen time it reset.
    unseen = [peer("b-1", 0), peer("c-1", LEASE_SECONDS + 1)]
    with pytest.raises(NotProvable, match="quorum"):
        leader_last_seq(info(40, peers=unseen))
    missing = [{"name": "b-1", "current": False}, peer("c-1", LEASE_SECONDS + 1)]
    with pytest.raises(NotProvable, match="quorum"):
        leader_last_seq(info(40, peers=missing))
