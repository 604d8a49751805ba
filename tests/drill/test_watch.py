"""The partition drill's timeline: node log lines placed by their own timestamps.

A real file written the way nats-server writes its log; no cluster and no timing.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from outlast.drill.verdict import long_waits
from outlast.drill.watch import Watch


def _stamp(at_wall: float) -> str:
    return datetime.fromtimestamp(at_wall).strftime("%Y/%m/%d %H:%M:%S.%f")


def test_node_log_lines_since_the_watch_began_land_on_the_timeline(tmp_path: Path) -> None:
    log = tmp_path / "b" / "nats-1" / "nats.log"
    log.parent.mkdir(parents=True)
    log.write_text("[1] 2026/12/03 10:00:00.000000 [INF] Server is ready\n")  # before: skipped
    description = {"sites": [{"name": "b", "data_dir": str(tmp_path / "b"), "node": "b-1"}]}
    since = time.monotonic()
    watch = Watch(description, since, victim="a")
    watch.groups["S-R3F-abc"] = "OUTLAST_ROOMS_1"
    wall = time.time() + 2.0  # two seconds after the fault
    with log.open("a") as f:
        f.write(
            f"[1] {_stamp(wall)} [WRN] RAFT [xyz - S-R3F-abc] "
            "Detected another leader with higher term, will stepdown\n"
        )
        f.write(f"[1] {_stamp(wall)} [INF] 10.0.0.1:1 - rid:5 - Route connection created\n")
    watch.read_node_logs()
    timeline = watch.timeline
    assert len(timeline) == 1
    at, line = timeline[0]
    assert abs(at - 2.0) < 0.05
    assert "S-R3F-abc (OUTLAST_ROOMS_1)" in line and line.startswith("node b/nats-1:")
    # The timeline is what long_waits place a client's wait against.
    waits = long_waits(since, {"u": [since + 1.5, since + 4.0]}, since + 4.0, timeline=timeline)
    assert waits[0]["steps_during"] == [line]
