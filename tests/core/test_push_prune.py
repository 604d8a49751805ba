"""The pruning rule for stored notifications (core/push_prune.py)."""

from __future__ import annotations

import random

from outlast.core.push_counts import MAIN, read_up_to
from outlast.core.push_prune import PrunePolicy, Stored, doomed

DAY = 86_400_000
POLICY = PrunePolicy(min_age_ms=DAY, max_age_ms=30 * DAY, keep_read=2, keep_unread=3, every=1)


def rows(*spec: tuple[int, int], thread: str = MAIN) -> list[Stored]:
    """Rows at positions (seq, 0) with the given times: (seq, ts)."""
    return [Stored((seq, 0), thread, ts) for seq, ts in spec]


def test_nothing_younger_than_min_age_goes_even_read_and_over_the_caps() -> None:
    now = 100 * DAY
    young = rows(*[(seq, now - DAY + 1) for seq in range(1, 10)])
    read = read_up_to([("m.read", "", (9, 0))])
    assert doomed(young, read, now, POLICY) == set()


def test_read_rows_beyond_the_newest_keep_read_go() -> None:
    now = 100 * DAY
    old = rows(*[(seq, now - 2 * DAY + seq) for seq in range(1, 6)])
    read = read_up_to([("m.read", "", (4, 0))])
    # read: 1..4, keep the newest two (3, 4); 5 is unread and kept.
    assert doomed(old, read, now, POLICY) == {(1, 0), (2, 0)}


def test_read_rows_older_than_max_age_go_even_within_keep_read() -> None:
    now = 100 * DAY
    stored = rows((1, now - 31 * DAY), (2, now - 2 * DAY))
    read = read_up_to([("m.read.private", "", (2, 0))])
    assert doomed(stored, read, now, POLICY) == {(1, 0)}


def test_unread_rows_go_only_beyond_keep_unread_however_old() -> None:
    now = 100 * DAY
    stored = rows(*[(seq, seq) for seq in range(1, 6)])  # all ancient, none read
    assert doomed(stored, read_up_to([]), now, POLICY) == {(1, 0), (2, 0)}


def test_fully_read_markers_do_not_count_as_read() -> None:
    now = 100 * DAY
    stored = rows(*[(seq, seq) for seq in range(1, 4)])
    assert doomed(stored, read_up_to([("m.fully_read", "", (3, 0))]), now, POLICY) == set()


def test_a_threaded_receipt_reads_only_its_thread() -> None:
    now = 100 * DAY
    in_thread = rows(*[(seq, now - 2 * DAY) for seq in range(1, 5)], thread="$root")
    in_main = rows(*[(seq, now - 2 * DAY) for seq in range(5, 8)])
    read = read_up_to([("m.read", "$root", (7, 0))])
    # Thread rows 1..4 are read: keep 3, 4; main rows 5..7 are unread: three kept.
    assert doomed(in_thread + in_main, read, now, POLICY) == {(1, 0), (2, 0)}


def test_young_rows_do_not_take_places_among_the_kept() -> None:
    now = 100 * DAY
    old = rows((1, now - 2 * DAY), (2, now - 2 * DAY))
    young = rows((3, now), (4, now))
    read = read_up_to([("m.read", "", (4, 0))])
    # Ranked among the old rows only: both are within keep_read, so kept.
    assert doomed(old + young, read, now, POLICY) == set()


def test_due_picks_messages_by_sequence_and_every_zero_never_prunes() -> None:
    every4 = PrunePolicy(every=4)
    assert [seq for seq in range(1, 13) if every4.due(seq)] == [4, 8, 12]
    assert not PrunePolicy(every=0).enabled
    assert not any(PrunePolicy(every=0).due(seq) for seq in range(10))


def test_on_random_rooms_only_read_or_uncountable_old_rows_go() -> None:
    """What the counts read (the newest ``keep_unread`` unread rows overall) and every
    row younger than ``min_age_ms`` always stays."""
    rng = random.Random(16)
    for _ in range(300):
        now = 100 * DAY
        stored = [
            Stored((seq, 0), rng.choice([MAIN, "$t"]), now - rng.randint(0, 40) * DAY)
            for seq in range(1, rng.randint(2, 30))
        ]
        marks = [
            (
                rng.choice(["m.read", "m.fully_read"]),
                rng.choice(["", MAIN, "$t"]),
                (rng.randint(0, 30), 0),
            )
            for _ in range(rng.randint(0, 3))
        ]
        read = read_up_to(marks)
        policy = PrunePolicy(
            min_age_ms=rng.randint(0, 3) * DAY,
            max_age_ms=rng.randint(3, 35) * DAY,
            keep_read=rng.randint(0, 5),
            keep_unread=rng.randint(1, 5),
        )
        gone = doomed(stored, read, now, policy)
        unread = sorted(
            (r.position for r in stored if not read.has_read(r.position, r.thread_id)),
            reverse=True,
        )
        for row in stored:
            if row.position in gone:
                assert row.ts <= now - policy.min_age_ms
                assert row.position not in unread[: policy.keep_unread]
