"""Judging a damaged replica against the others, on hand-made stream states."""

from __future__ import annotations

from outlast.drill.replicas import compare_replicas, damage_lines, restore_report


def state(messages: int, last: int, lost: list[int] | None = None) -> dict[str, object]:
    out: dict[str, object] = {"messages": messages, "last_seq": last}
    if lost:
        out["lost"] = {"msgs": lost, "bytes": 10}
    return out


def test_a_replica_as_full_as_the_best_other_is_caught_up() -> None:
    result = compare_replicas(
        ["A", "B"],
        {"A": state(10, 10), "B": state(5, 7)},
        [{"A": state(10, 10), "B": state(5, 7)}, {"A": state(9, 9), "B": state(5, 7)}],
    )
    assert result["caught_up"] == 2 and result["repaired"] is True
    assert result["behind"] == [] and result["missing"] == []


def test_a_replica_behind_or_missing_is_not_repaired() -> None:
    result = compare_replicas(
        ["A", "B", "C"],
        {"A": state(6, 6, lost=[7, 8]), "C": state(3, 3)},
        [{"A": state(10, 10), "B": state(4, 4), "C": state(3, 3)}],
    )
    assert result["repaired"] is False
    assert result["caught_up"] == 1
    assert result["missing"] == ["B"]
    assert len(result["behind"]) == 1 and result["behind"][0].startswith("A: 6 msgs to seq 6")
    assert result["lost_still_marked"] == 2


def test_damage_lines_keeps_warnings_about_the_damaged_streams_or_bad_data() -> None:
    log = "\n".join(
        [
            "[1] 2026/12/02 14:00:00.000 [INF] Restored 3 messages for stream 'APP > ROOMS_0'",
            "[1] 2026/12/02 14:00:01.000 [WRN] Filestore [S-R3F-x] Stream state outdated",
            "[1] 2026/12/02 14:00:01.000 [WRN] Filestore [ROOMS_0] Stream state outdated",
            "[1] 2026/12/02 14:00:02.000 [ERR] bad msg: invalid checksum",
            "[1] 2026/12/02 14:00:03.000 [WRN] JetStream cluster consumer lagging",
        ]
    )
    assert damage_lines(log, ["ROOMS_0"]) == [
        "[1] 2026/12/02 14:00:01.000 [WRN] Filestore [ROOMS_0] Stream state outdated",
        "[1] 2026/12/02 14:00:02.000 [ERR] bad msg: invalid checksum",
    ]


def test_restore_report_counts_what_the_node_dropped_from_its_disk() -> None:
    log = "\n".join(
        [
            "[7] x [INF]   Restored 65 messages for stream 'APP > ROOMS_1' in 30ms",
            "[7] x [INF]   Restored 0 messages for stream 'APP > ROOMS_0' in 0s",
            "[7] x [INF]   Restored 11 messages for stream 'APP > USERS' in 8ms",
            "[7] x [INF] Catchup for stream 'APP > ROOMS_1' complete (took 16ms)",
        ]
    )
    held = {"ROOMS_1": {"messages": 100}, "ROOMS_0": {"messages": 4}, "USERS": {"messages": 11}}
    result = restore_report(["ROOMS_1", "ROOMS_0", "USERS"], held, log)
    assert result["dropped_at_restore"] == 35 + 4
    assert result["detected"] is True and result["logged_a_warning"] is False
    assert result["streams"]["ROOMS_1"] == {
        "held_before": 100,
        "restored_from_disk": 65,
        "catchup_logged": True,
    }
    assert result["streams"]["USERS"]["catchup_logged"] is False
    # Nothing dropped and nothing said: not detected.
    quiet = restore_report(["USERS"], held, log)
    assert quiet["dropped_at_restore"] == 0 and quiet["detected"] is False
