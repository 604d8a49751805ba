"""How far a stream is, as its current leader knows it, or why that cannot be known now.

The read barrier (outlast/view/barrier.py, docs/consistency.md) asks a
stream's leader for its last committed sequence with a JetStream stream-info
request. An answer only counts if it could not come from a stale replica:

- **A leader must be named.** A replica that sees its group without a leader
  (an election, or this site cut off) answers stream info itself, from its own
  possibly old copy, with no leader in the reply. That answer is refused.
- **The leader must have heard from a quorum recently.** A leader cut off from
  the other sites keeps calling itself leader until it notices it lost its
  quorum (about 10 s in nats-server), while the others elect a new leader and
  commit without it. But they cannot elect one before a follower has heard
  nothing from the old leader for JetStream's minimum election timeout (4 s).
  So an answer is accepted only when the leader reports enough followers
  (with itself, a quorum) that it heard from less than ``LEASE_SECONDS`` ago:
  a leader that was replaced by a full partition is refused before any new
  leader can exist.
- **The answer must come from the leader itself.** nats-server lets a
  follower answer stream info in a few cases (a group it thinks leaderless, a
  group it was preferred to lead while new). Such a follower still names the
  leader it last knew and lists that leader among the replicas, with its own
  idea of who is fresh; its state is its own copy, which a partition may have
  left behind. The leader never lists itself, so a reply that does is refused.
- **A peer never heard from is not fresh.** nats-server reports
  ``active: 0`` both for a peer heard from this instant and for one it has
  not heard from at all (after a leader change a node forgets when it last
  heard from the other followers). Only a positive age counts.

What remains open is written down in docs/consistency.md: nats-server's Raft
grants votes without "leader stickiness", so under a *partial* partition (a
follower that still reaches the old leader votes for a new one) the old leader
can answer, with a fresh-looking follower, until its next heartbeat reaches
that follower (at most about one second).
"""

from __future__ import annotations

from typing import Any

# Below JetStream's fixed minimum Raft election timeout (4 s), with a second of
# margin for a follower's last reply to travel and for a busy machine.
LEASE_SECONDS = 3.0


class NotProvable(Exception):
    """The answer cannot show the stream's current position (no leader, stale leader, error)."""


def leader_last_seq(info: dict[str, Any], lease_seconds: float = LEASE_SECONDS) -> int:
    """The last sequence from a stream-info reply, if a current leader gave it."""
    error = info.get("error")
    if error:
        raise NotProvable(str(error.get("description") or error))
    state = info.get("state")
    if not isinstance(state, dict):
        raise NotProvable("stream info without state")
    cluster = info.get("cluster")
    if isinstance(cluster, dict):  # clustered (a standalone server is its own leader)
        if not cluster.get("leader"):
            raise NotProvable("the stream has no leader right now")
        size = int((info.get("config") or {}).get("num_replicas") or 1)
        replicas = cluster.get("replicas") or ()
        if any(peer.get("name") == cluster["leader"] for peer in replicas):
            raise NotProvable(f"a follower of {cluster['leader']} answered, not the leader")
        lease_ns = lease_seconds * 1e9
        fresh = sum(
            1
            for peer in replicas
            if not peer.get("offline")
            and not peer.get("pending")
            and 0 < int(peer.get("active") or 0) < lease_ns
        )
        if fresh + 1 < size // 2 + 1:
            raise NotProvable(
                f"leader {cluster['leader']} has not heard from a quorum "
                f"in the last {lease_seconds:g} s"
            )
    return int(state.get("last_seq") or 0)
