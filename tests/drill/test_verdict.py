"""The drill's checker, tested on hand-made ledgers and timelines.

Every failure kind is built on purpose (a dropped event, a stored duplicate, a
swapped pair, two sites disagreeing) to show the checker catches it, and a
clean case shows it does not cry wolf.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from outlast.drill.verdict import (
    Pushed,
    PushVerdict,
    Send,
    StoredEvent,
    Verdict,
    client_ends,
    durable_before,
    gap_phases,
    judge,
    judge_push,
    long_waits,
    write_gap,
)

SITES = ("a", "b", "c")
R1, R2 = "!one:localhost", "!two:localhost"


def send(
    client: str, seq: int, room: str, *, acked: bool = True, errors: int = 0, t: float | None = None
) -> Send:
    """A ledger entry as the load generator writes it (body and txnId from client and seq)."""
    sent_at = float(seq) if t is None else t
    return Send(
        client=client,
        room_id=room,
        txn_id=f"{client}-{seq}",
        body=f"{client}#{seq}",
        acked=acked,
        event_id=f"$ev-{client}-{seq}" if acked else None,
        attempts=1 + errors,
        errors=errors,
        sent_at=sent_at,
        acked_at=sent_at + 0.01 if acked else None,
    )


def stored(s: Send, event_id: str | None = None) -> StoredEvent:
    return StoredEvent(event_id or s.event_id or f"$unacked-{s.txn_id}", s.body)


def ledger() -> list[Send]:
    """Two clients, alternating rooms, interleaved in time, all acknowledged."""
    sends = []
    for seq in range(6):
        room = R1 if seq % 2 == 0 else R2
        sends.append(send("alice", seq, room, t=seq * 1.0))
        sends.append(send("bob", seq, room, t=seq * 1.0 + 0.5))
    return sends


Timelines = dict[str, dict[str, list[StoredEvent]]]


def timelines_of(sends: list[Send], sites: tuple[str, ...] = SITES) -> Timelines:
    """Every acknowledged send stored once, in send order, identically at every site."""
    per_room: dict[str, list[StoredEvent]] = {R1: [], R2: []}
    for s in sorted((s for s in sends if s.acked), key=lambda s: s.sent_at):
        per_room[s.room_id].append(stored(s))
    return {site: {room: list(events) for room, events in per_room.items()} for site in sites}


def assert_only(verdict: Verdict, **expected: int) -> None:
    """Exactly the named failure lists have the given lengths; the others are empty."""
    counts = {
        "lost": len(verdict.lost),
        "duplicated": len(verdict.duplicated),
        "reordered": len(verdict.reordered),
    }
    wanted = {"lost": 0, "duplicated": 0, "reordered": 0, **expected}
    assert counts == wanted, verdict.as_dict()


# -- judge(): the clean case ---------------------------------------------------------------


def test_clean_drill_is_ok() -> None:
    sends = ledger()
    timelines = timelines_of(sends)
    # Other users' messages in the rooms are not ours to judge (even if repeated).
    for rooms in timelines.values():
        rooms[R1].insert(0, StoredEvent("$foreign-1", "hello"))
        rooms[R1].append(StoredEvent("$foreign-2", "hello"))
    verdict = judge(sends, timelines)
    assert verdict.ok
    assert_only(verdict)
    assert verdict.acknowledged == 12
    assert verdict.unacknowledged == 0
    assert verdict.unacknowledged_but_stored == 0
    assert verdict.in_doubt_resolved == 0
    d = verdict.as_dict()
    assert d["ok"] is True
    assert (d["acknowledged"], d["lost"], d["duplicated"], d["reordered"]) == (12, 0, 0, 0)
    assert d["examples"] == {"lost": [], "duplicated": [], "reordered": []}


def test_single_site_read_is_judged_too() -> None:
    sends = ledger()
    assert judge(sends, timelines_of(sends, ("a",))).ok


def test_nothing_sent_nothing_stored_is_ok() -> None:
    verdict = judge([], {"a": {}, "b": {}})
    assert verdict.ok and verdict.acknowledged == 0


# -- judge(): cases built to fail ----------------------------------------------------------


def test_acknowledged_event_dropped_at_one_site_is_lost() -> None:
    sends = ledger()
    timelines = timelines_of(sends)
    victim = next(s for s in sends if s.client == "bob" and s.txn_id == "bob-3")
    timelines["b"][victim.room_id] = [
        e for e in timelines["b"][victim.room_id] if e.event_id != victim.event_id
    ]
    verdict = judge(sends, timelines)
    assert not verdict.ok
    assert_only(verdict, lost=1)  # a gap at one site is not a reordering
    assert verdict.lost[0].startswith("b:")
    assert "bob#3" in verdict.lost[0] and str(victim.event_id) in verdict.lost[0]
    d = verdict.as_dict()
    assert d["lost"] == 1 and d["ok"] is False
    assert d["examples"] == {"lost": verdict.lost, "duplicated": [], "reordered": []}


def test_acknowledged_event_missing_everywhere_is_lost_at_every_site() -> None:
    sends = ledger()
    timelines = timelines_of(sends)
    victim = sends[0]
    for rooms in timelines.values():
        rooms[victim.room_id] = [e for e in rooms[victim.room_id] if e.event_id != victim.event_id]
    verdict = judge(sends, timelines)
    assert_only(verdict, lost=3)
    assert sorted(line.split(":")[0] for line in verdict.lost) == ["a", "b", "c"]


def test_room_missing_at_a_site_loses_its_events() -> None:
    sends = ledger()
    timelines = timelines_of(sends)
    del timelines["c"][R2]
    verdict = judge(sends, timelines)
    assert_only(verdict, lost=sum(1 for s in sends if s.room_id == R2))
    assert all(line.startswith("c:") for line in verdict.lost)


def test_same_body_stored_twice_is_duplicated() -> None:
    sends = ledger()
    timelines = timelines_of(sends)
    twice = next(s for s in sends if s.txn_id == "alice-2")
    # The retry of an in-doubt send stored again under a second event id, at every site.
    for rooms in timelines.values():
        rooms[twice.room_id].append(StoredEvent("$second-copy", twice.body))
    verdict = judge(sends, timelines)
    assert not verdict.ok
    assert_only(verdict, duplicated=3)
    assert all("'alice#2' stored 2 times" in line for line in verdict.duplicated)


def test_same_event_stored_twice_at_one_site_is_duplicated() -> None:
    sends = ledger()
    timelines = timelines_of(sends)
    s = next(s for s in sends if s.txn_id == "bob-5")
    timelines["a"][s.room_id].append(stored(s))  # the projector applied one event twice
    verdict = judge(sends, timelines)
    assert len(verdict.duplicated) == 1 and verdict.duplicated[0].startswith("a:")
    assert not verdict.lost and not verdict.ok


def test_swapped_pair_of_one_clients_messages_is_reordered() -> None:
    sends = ledger()
    timelines = timelines_of(sends)
    first = next(s for s in sends if s.txn_id == "alice-0")
    second = next(s for s in sends if s.txn_id == "alice-2")  # alice's next message in R1
    for rooms in timelines.values():  # the same wrong order at every site
        events = rooms[R1]
        i = next(k for k, e in enumerate(events) if e.event_id == first.event_id)
        j = next(k for k, e in enumerate(events) if e.event_id == second.event_id)
        events[i], events[j] = events[j], events[i]
    verdict = judge(sends, timelines)
    assert not verdict.ok
    # Caught against the client's send order at each site; the sites agree with each other.
    assert_only(verdict, reordered=3)
    assert all("alice in !one:localhost out of send order" in line for line in verdict.reordered)


def test_client_order_follows_send_time_not_ledger_position() -> None:
    sends = ledger()
    timelines = timelines_of(sends)
    shuffled = list(reversed(sends))  # ledgers merged in any order: sent_at decides
    assert judge(shuffled, timelines).ok


def test_two_sites_disagreeing_on_order_is_reordered() -> None:
    sends = ledger()
    timelines = timelines_of(sends)
    # Swap alice#0 and bob#0 at site c only: each client's own order is kept,
    # but c's room order is not a's.
    events = timelines["c"][R1]
    assert (events[0].body, events[1].body) == ("alice#0", "bob#0")
    events[0], events[1] = events[1], events[0]
    verdict = judge(sends, timelines)
    assert not verdict.ok
    assert_only(verdict, reordered=1)
    assert verdict.reordered[0] == f"a vs c: {R1} differs in order"


def test_site_order_compared_only_over_common_events() -> None:
    """A site that is merely missing an event is reported lost, not also reordered."""
    sends = ledger()
    timelines = timelines_of(sends)
    timelines["a"][R2].pop(2)
    verdict = judge(sends, timelines)
    assert_only(verdict, lost=1)


def test_several_failures_at_once_are_all_reported() -> None:
    sends = ledger()
    timelines = timelines_of(sends)
    timelines["a"][R1].pop()  # lost at a
    timelines["b"][R2].append(timelines["b"][R2][0])  # duplicated at b
    events = timelines["c"][R2]
    events[0], events[1] = events[1], events[0]  # c disagrees with a
    verdict = judge(sends, timelines)
    assert verdict.lost and verdict.duplicated and verdict.reordered
    assert not verdict.ok and verdict.as_dict()["ok"] is False


# -- judge(): what is not a failure, but is counted ----------------------------------------


def test_unacknowledged_but_stored_and_in_doubt_are_counted_not_failed() -> None:
    sends = ledger()
    # Two in-doubt sends: errors on the way, then acknowledged by a retry.
    sends[3] = replace(sends[3], errors=2, attempts=3)
    sends[7] = replace(sends[7], errors=1, attempts=2)
    timelines = timelines_of(sends)
    # Two sends the client gave up on: one committed anyway (the ack was lost on
    # the way back), one never reached the log.
    committed = send("carol", 0, R1, acked=False, errors=5, t=10.0)
    vanished = send("carol", 1, R2, acked=False, errors=5, t=70.0)
    only_at_b = send("dave", 0, R2, acked=False, errors=1, t=11.0)
    for rooms in timelines.values():
        rooms[R1].append(stored(committed))
    timelines["b"][R2].append(stored(only_at_b))  # stored anywhere is enough to count
    all_sends = [*sends, committed, vanished, only_at_b]
    verdict = judge(all_sends, timelines)
    assert verdict.ok, verdict.as_dict()  # nothing acknowledged went wrong
    assert verdict.acknowledged == 12
    assert verdict.unacknowledged == 3
    assert verdict.unacknowledged_but_stored == 2
    assert verdict.in_doubt_resolved == 2
    d = verdict.as_dict()
    assert d["unacknowledged"] == 3
    assert d["unacknowledged_but_stored"] == 2 and d["in_doubt_resolved"] == 2


def test_unacknowledged_send_missing_everywhere_is_not_lost() -> None:
    sends = [*ledger(), send("carol", 0, R1, acked=False, errors=9, t=3.0)]
    verdict = judge(sends, timelines_of(sends))
    assert verdict.ok and verdict.unacknowledged == 1 and verdict.unacknowledged_but_stored == 0


def test_examples_are_capped_at_five() -> None:
    sends = ledger()
    timelines = timelines_of(sends)
    timelines["a"] = {R1: [], R2: []}
    verdict = judge(sends, timelines)
    assert len(verdict.lost) == 12
    d = verdict.as_dict()
    examples = d["examples"]
    assert d["lost"] == 12 and isinstance(examples, dict) and examples["lost"] == verdict.lost[:5]


# -- write_gap() ---------------------------------------------------------------------------
#
# Each client's longest time without an acknowledged write from the fault on:
# from the fault to its first ack after it, and between its later acks.

FAULT = 100.0


def test_write_gap_statistics_on_hand_made_data() -> None:
    acks = {
        # acks before the fault never count; gap = the longest step from the fault on
        "u1": [90.0, 99.5, 101.0, 101.2, 101.4],  # fault -> 101.0: 1.0
        "u2": [99.9, 102.0, 102.5],  # 2.0
        "u3": [100.5, 101.0, 104.0, 104.2],  # 104.0 - 101.0 = 3.0
        "u4": [104.0, 104.5, 104.9],  # 4.0
        "u5": [101.0, 102.0, 112.0],  # 112.0 - 102.0 = 10.0
    }
    gap = write_gap(FAULT, acks)
    assert gap == {"clients": 5.0, "min": 1.0, "median": 3.0, "p99": 10.0, "max": 10.0}


def test_write_gap_acks_need_not_be_sorted() -> None:
    assert write_gap(FAULT, {"u": [105.0, 99.0, 101.0, 90.0]})["max"] == 4.0


def test_write_gap_in_flight_ack_right_after_the_fault_then_a_stall() -> None:
    """A send in flight at the fault is acknowledged at once; the next one waits
    for a new leader: that wait is the client's gap, not the first 0.05 s."""
    gap = write_gap(FAULT, {"u": [98.0, 99.0, 100.05, 108.05, 108.25, 108.45]})
    assert gap["max"] == pytest.approx(8.0)
    assert gap["min"] == gap["median"] == gap["p99"] == gap["max"]
    assert gap["clients"] == 1.0


def test_write_gap_excludes_clients_without_an_ack_after_the_fault() -> None:
    acks = {"active": [99.0, 102.5, 103.0], "silent": [95.0, 99.9], "never": []}
    gap = write_gap(FAULT, acks)
    assert gap["clients"] == 1.0
    assert gap["min"] == gap["max"] == 2.5


def test_write_gap_is_empty_when_no_client_wrote_after_the_fault() -> None:
    assert write_gap(FAULT, {"a": [1.0, 99.99], "b": []}) == {}
    assert write_gap(FAULT, {}) == {}


def test_write_gap_ack_at_the_fault_instant_counts_from_it() -> None:
    assert write_gap(FAULT, {"u": [100.0, 100.25]})["max"] == 0.25


def test_gap_phases_tells_a_stall_at_the_heal_from_one_at_the_cut() -> None:
    # Cut at 100, undone at 110, load until 120: the client stalls 6 s after the cut
    # and again 5 s after the heal (112 -> 117).
    acks = {"u": [99.0, 106.0, 107.0, 109.5, 111.0, 112.0, 117.0, 118.0, 119.5]}
    phases = gap_phases(FAULT, 110.0, acks, until=120.0)
    assert phases["during"]["max"] == 6.0
    assert phases["after"]["max"] == 5.0
    # A clean heal: the gap after it is the load's own spacing.
    steady = [106.0, *(110.5 + k for k in range(10))]
    clean = gap_phases(FAULT, 110.0, {"u": steady}, until=120.0)
    assert clean["during"]["max"] == 6.0
    assert clean["after"]["max"] == 1.0
    assert gap_phases(FAULT, 110.0, {"u": [106.0]}, until=105.0)["after"] == {}


def test_long_waits_say_where_in_the_timeline_and_on_what() -> None:
    # Steps end at 1.0 (drain), 3.0 (node stopped) and 9.0 (back in); the client
    # waits 5.5 s from 2.0 to 7.5 on a publish that timed out, then a retry.
    timeline = [[1.0, "a: drained"], [3.0, "a: node stopped"], [9.0, "a: back in"]]
    acks = {"u": [99.0, 100.5, 101.4, 102.0, 107.5, 108.0], "v": [100.4, 100.8, 101.2, 107.9]}
    attempts = {
        "u": [
            (101.9, 102.0, "200", "a"),
            (102.0, 107.0, "503 M_UNAVAILABLE", "b"),
            (107.05, 107.5, "200", "b"),
        ]
    }
    waits = long_waits(
        FAULT, acks, until=108.0, attempts_by_client=attempts, timeline=timeline, over=1.0
    )
    assert [(w["client"], w["seconds"]) for w in waits] == [("v", 6.7), ("u", 5.5)]
    u = waits[1]
    assert (u["from_s"], u["to_s"]) == (2.0, 7.5)
    assert u["step"] == "a: drained"
    assert u["steps_during"] == ["a: node stopped"]
    assert u["attempts"] == [[2.0, 7.0, "503 M_UNAVAILABLE", "b"], [7.05, 7.5, "200", "b"]]
    assert waits[0]["attempts"] == [] and waits[0]["attempts_total"] == 0
    # Many attempts in one wait: the first and the last five are kept.
    many = {"w": [(100.0 + k / 10, 100.05 + k / 10, "503 x", "a") for k in range(30)]}
    long = long_waits(FAULT, {"w": [104.0]}, until=104.0, attempts_by_client=many)
    assert long[0]["attempts_total"] == 30
    assert [a[0] for a in long[0]["attempts"]] == [0.0, 0.1, 0.2, 0.3, 0.4, 2.5, 2.6, 2.7, 2.8, 2.9]
    # Waits up to ``over`` are left out; the tail to the end of the load counts.
    assert long_waits(FAULT, {"w": [100.5, 101.0]}, until=101.5) == []
    tail = long_waits(FAULT, {"w": [100.5, 101.0]}, until=104.0)
    assert [(w["from_s"], w["to_s"], w["step"]) for w in tail] == [(1.0, 4.0, "")]


def test_write_gap_ends_each_client_at_its_own_end_of_the_load() -> None:
    # Sending stopped at 110. "slow" had a send in flight then, answered at 115 after
    # a 5 s wait; "done" stopped on time and was idle after, not waiting.
    attempts = {
        "done": [(109.7, 109.9, "200", "a")],
        "slow": [(109.8, 114.9, "503 M_UNAVAILABLE", ""), (114.95, 115.0, "200", "b")],
    }
    acks = {"done": [109.5, 109.9], "slow": [109.6, 115.0]}
    ends = client_ends(110.0, attempts)
    assert ends == {"done": 110.0, "slow": 115.0}
    gap = write_gap(109.0, acks, until=ends)
    assert (gap["min"], gap["max"]) == (0.5, 5.4)
    # One end for all (the slowest client's) made "done" wait 5.1 s too.
    assert write_gap(109.0, acks, until=115.0)["min"] == 5.1
    phases = gap_phases(109.0, 112.0, acks, until=ends)
    assert phases["during"]["min"] == 0.5 and phases["after"]["max"] == 3.0


def test_write_gap_percentiles_over_many_clients() -> None:
    # Client k (1..100) stalls exactly k/10 s after the fault, then acks steadily.
    acks = {f"u{k}": [FAULT + k / 10, FAULT + k / 10 + 0.01] for k in range(1, 101)}
    gap = write_gap(FAULT, acks)
    assert gap["clients"] == 100.0
    assert gap["min"] == 0.1
    assert gap["max"] == 10.0
    assert gap["median"] == pytest.approx(5.05)  # between the 50th and 51st client
    assert gap["p99"] == 9.9  # nearest rank: the 99th of 100


@pytest.mark.parametrize(
    ("gaps", "median"),
    [
        ([1.0, 3.0], 2.0),
        ([1.0, 2.0, 3.0, 4.0], 2.5),
        ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3.5),
        ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], 4.5),
        ([4.0, 1.0, 9.0], 4.0),
    ],
)
def test_write_gap_median_of_an_even_number_of_clients(gaps: list[float], median: float) -> None:
    acks = {f"u{i}": [FAULT + g] for i, g in enumerate(gaps)}
    gap = write_gap(FAULT, acks)
    assert gap["median"] == median
    assert gap["min"] == min(gaps) and gap["max"] == max(gaps)


def test_write_gap_rounds_to_milliseconds() -> None:
    gap = write_gap(FAULT, {"u": [FAULT + 1.23456]})
    assert gap["max"] == 1.235


def test_write_gap_until_counts_a_client_stuck_to_the_end() -> None:
    from outlast.drill.verdict import write_gap as gap_of

    fault = 100.0
    acks = {"fast": [100.2, 100.4, 100.6], "stuck": [100.05], "silent": []}
    result = gap_of(fault, acks, until=110.0)
    # "stuck" got one in-flight ack and then nothing until the load ended.
    assert result["max"] == 10.0
    assert result["clients"] == 3.0
    assert gap_of(fault, acks)["clients"] == 2.0


# --- push notifications -------------------------------------------------------------

EXPECTED = {"$e1": frozenset({"bob", "carol"}), "$e2": frozenset({"alice"})}
ACKED = {"$e1": 1.0, "$e2": 2.0}


def judged(pushed: list[Pushed]) -> PushVerdict:
    return judge_push(EXPECTED, pushed, victim="a", fault_at=5.0, acked_at=ACKED)


def test_push_clean_case_and_latency() -> None:
    pushed = [Pushed("$e1", "bob", "a", 1.1), Pushed("$e1", "carol", "b", 1.2)]
    pushed.append(Pushed("$e2", "alice", "c", 2.5))
    v = judged(pushed)
    assert v.ok and v.expected == 3 and v.delivered == 3
    assert v.latency_ms["max"] == 500.0 and v.latency_ms["p50"] == 200.0


def test_push_lost_unexpected_and_duplicated_are_caught() -> None:
    pushed = [Pushed("$e1", "bob", "b", 1.1), Pushed("$e1", "bob", "c", 6.0)]  # survivor twice
    pushed += [Pushed("$e2", "bob", "b", 2.1)]  # the sender's own message: unexpected
    v = judged(pushed)
    assert not v.ok
    assert v.lost == ["$e1 to carol", "$e2 to alice"]
    assert v.unexpected == ["$e2 to bob"] and len(v.duplicated) == 1


def test_push_repeat_of_what_the_burned_site_sent_is_in_doubt_not_duplicated() -> None:
    pushed = [Pushed("$e1", "bob", "a", 4.9), Pushed("$e1", "bob", "b", 9.0)]
    pushed += [Pushed("$e1", "carol", "b", 1.2), Pushed("$e2", "alice", "c", 2.1)]
    v = judged(pushed)
    assert v.ok and v.in_doubt_duplicates == 1 and v.duplicated == []
    # The same repeat before the fault is not explained by it: a duplicate.
    early = judge_push(EXPECTED, pushed, victim="a", fault_at=10.0, acked_at=ACKED)
    assert not early.ok and early.in_doubt_duplicates == 0


def test_durable_before_counts_only_what_was_acknowledged_before_the_power_loss() -> None:
    early = send("u1", 1, R1, t=1.0)
    late = send("u1", 2, R1, t=9.0)
    unacked = send("u2", 1, R1, acked=False, t=2.0)
    sends = [early, late, unacked]
    kept = {s: {R1: [StoredEvent(str(early.event_id), early.body)]} for s in SITES}
    result = durable_before(sends, kept, fault_at=5.0)
    assert result["acknowledged_before_fault"] == 1
    assert result["missing_after_power_on"] == 0 and result["ok"] is True
    # The early one gone at one site: a durability failure, named.
    kept["b"] = {R1: []}
    result = durable_before(sends, kept, fault_at=5.0)
    assert result["missing_after_power_on"] == 1 and result["ok"] is False
    assert result["examples"] == [f"b: 'u1#1' ({early.event_id})"]
