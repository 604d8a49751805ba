"""What JetStream did with a damaged replica (`drill fire --fault corrupt`).

After the node is powered on, its own stream states (from its monitoring
endpoint) are compared with the other nodes': a replica with as many
messages and the same last sequence as the best of the others has been
repaired (caught up from the leader) or never lost anything; one behind
still misses data. The node's log lines about its filestore say whether it
noticed the damage at all. The comparison is pure; the fetching is at the edge.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from outlast.log.replica_audit import node_states

# Words nats-server uses when it finds and handles bad data in a message block.
DAMAGE_WORDS = ("corrupt", "checksum", "lost data", "truncat", "bad msg", "invalid")

StreamStates = Mapping[str, Mapping[str, Any]]  # stream name -> its state (messages, last_seq...)


# This node's own state of every stream it holds a replica of (the audit's reader).
stream_states = node_states


def compare_replicas(
    damaged: Sequence[str], victim: StreamStates, others: Sequence[StreamStates]
) -> dict[str, Any]:
    """For each damaged stream: caught up (same messages and last sequence as the
    most complete other replica), behind, or missing from the node altogether."""
    caught_up, behind, missing = [], [], []
    lost_reported = 0
    for name in damaged:
        mine = victim.get(name)
        best = max(
            (o[name] for o in others if name in o),
            key=lambda s: (int(s.get("last_seq", 0)), int(s.get("messages", 0))),
            default=None,
        )
        if mine is None:
            missing.append(name)
            continue
        lost = mine.get("lost") or {}
        lost_reported += len(lost.get("msgs") or [])
        if best is None or (
            int(mine.get("messages", 0)) >= int(best.get("messages", 0))
            and int(mine.get("last_seq", 0)) >= int(best.get("last_seq", 0))
        ):
            caught_up.append(name)
        else:
            behind.append(
                f"{name}: {mine.get('messages', 0)} msgs to seq {mine.get('last_seq', 0)}, "
                f"others {best.get('messages', 0)} to {best.get('last_seq', 0)}"
            )
    return {
        "streams_damaged": len(damaged),
        "caught_up": len(caught_up),
        "behind": behind,
        "missing": missing,
        "lost_still_marked": lost_reported,
        "repaired": not behind and not missing,
    }


def damage_lines(log_text: str, streams: Sequence[str], limit: int = 20) -> list[str]:
    """The node's warnings and errors about the damaged streams or bad data.

    A kill -9 alone makes nats-server warn that raft groups' state files are
    outdated (``Filestore [S-R3F-...]``, ``[_meta_]``); those name no stream
    and no bad data, and are left out, so what is kept is about the damage.
    """
    found = []
    for line in log_text.splitlines():
        if "[WRN]" not in line and "[ERR]" not in line:
            continue
        names = any(f"[{s}]" in line or f"> {s}'" in line for s in streams)
        if names or any(w in line.lower() for w in DAMAGE_WORDS):
            found.append(line.strip())
    return found[:limit]


RESTORED = re.compile(r"Restored (\d+) messages for stream '[^>]*> ([^']+)'")
CAUGHT_UP = re.compile(r"Catchup for stream '[^>]*> ([^']+)' complete")


def restore_report(damaged: Sequence[str], held: StreamStates, log_text: str) -> dict[str, Any]:
    """Per damaged stream: messages the replica held before the fault, how many it
    restored from its disk at power-on (its own log says), and whether it then
    caught up from the others. Fewer restored than held means the bad records
    were detected and dropped; a logged catch-up means raft repaired the replica
    from the leader (a replay of the node's own raft log repairs without one)."""
    restored = {m.group(2): int(m.group(1)) for m in RESTORED.finditer(log_text)}
    caught_up = {m.group(1) for m in CAUGHT_UP.finditer(log_text)}
    per_stream = {}
    dropped = 0
    for name in damaged:
        before = held.get(name, {}).get("messages")
        got = restored.get(name)
        if before is not None and got is not None:
            dropped += max(0, int(before) - got)
        per_stream[name] = {
            "held_before": before,
            "restored_from_disk": got,
            "catchup_logged": name in caught_up,
        }
    warnings = damage_lines(log_text, damaged)
    return {
        "streams": per_stream,
        "dropped_at_restore": dropped,
        "node_log": warnings,
        "detected": dropped > 0 or bool(warnings),
        "logged_a_warning": bool(warnings),
    }


def node_logs(data_dir: str) -> dict[str, int]:
    """Each node log under a site's data directory, with its current size (to read on from)."""
    return {str(p): p.stat().st_size for p in Path(data_dir).glob("nats-*/nats.log")}


def read_since(offsets: Mapping[str, int]) -> str:
    text = []
    for path, offset in offsets.items():
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                text.append(f.read().decode(errors="replace"))
        except OSError:
            continue
    return "".join(text)
