"""The restore drill's checker, with cases built to fail: a message the backup should hold
missing, one past the point shown, one never in the live log, a duplicate."""

from __future__ import annotations

from outlast.drill.restore_verdict import judge_restore
from outlast.drill.verdict import Send, StoredEvent

ROOM = "!r:x"


def sent(n: int, acked: bool = True) -> Send:
    return Send("u", ROOM, f"t{n}", f"u#{n}", acked, f"$e{n}" if acked else None, sent_at=n)


SENDS = [sent(n) for n in range(1, 7)] + [sent(7, acked=False)]
PLACES = {f"$e{n}": ("ROOMS_0", 10 + n) for n in range(1, 7)}
POINT = {"ROOMS_0": 14}  # $e1..$e4 are in the backup, $e5 and $e6 after it


def stored(*ns: int) -> list[StoredEvent]:
    return [StoredEvent(f"$e{n}", f"u#{n}") for n in ns]


def test_a_faithful_restore_loses_exactly_what_came_after_the_point() -> None:
    v = judge_restore(SENDS, PLACES, POINT, {"a": {ROOM: stored(1, 2, 3, 4)}})
    assert v.ok
    assert (v.acknowledged, v.before_point, v.unacknowledged) == (6, 4, 1)
    assert v.expected_lost == ["$e5", "$e6"] == v.after_point
    assert v.as_dict()["lost"] == 0 and v.as_dict()["expected_lost_ids"] == ["$e5", "$e6"]


def test_a_message_before_the_point_missing_at_one_site_is_lost() -> None:
    v = judge_restore(
        SENDS, PLACES, POINT, {"a": {ROOM: stored(1, 2, 3, 4)}, "b": {ROOM: stored(1, 2, 4)}}
    )
    assert not v.ok
    assert len(v.lost_before_point) == 1 and "$e3" in v.lost_before_point[0]
    assert "b:" in v.lost_before_point[0]


def test_a_message_past_the_point_that_shows_up_fails_the_drill() -> None:
    v = judge_restore(SENDS, PLACES, POINT, {"a": {ROOM: stored(1, 2, 3, 4, 5)}})
    assert not v.ok
    assert v.expected_lost == ["$e6"] and "$e5" in v.after_point_present[0]


def test_an_acknowledged_message_absent_from_the_live_log_is_not_excused() -> None:
    places = {k: p for k, p in PLACES.items() if k != "$e6"}
    v = judge_restore(SENDS, places, POINT, {"a": {ROOM: stored(1, 2, 3, 4)}})
    assert not v.ok
    assert v.expected_lost == ["$e5"] and "$e6" in v.not_in_live_log[0]


def test_duplicates_and_reorders_among_the_restored_are_reported() -> None:
    dup = judge_restore(SENDS, PLACES, POINT, {"a": {ROOM: stored(1, 2, 2, 3, 4)}})
    assert not dup.ok and dup.duplicated
    swapped = judge_restore(SENDS, PLACES, POINT, {"a": {ROOM: stored(1, 3, 2, 4)}})
    assert not swapped.ok and swapped.reordered


def test_nothing_before_the_point_proves_nothing() -> None:
    v = judge_restore(SENDS, PLACES, {"ROOMS_0": 0}, {"a": {ROOM: []}})
    assert not v.ok and len(v.expected_lost) == 6
