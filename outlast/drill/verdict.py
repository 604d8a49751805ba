"""The verdict of a drill: compare what clients were told with what every site stores.

Pure functions over plain data, so the checker itself is tested with cases
built to fail (a dropped event, a duplicate, a swapped pair).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Send:
    """One message a simulated client tried to send, as its ledger recorded it."""

    client: str
    room_id: str
    txn_id: str
    body: str
    acked: bool
    event_id: str | None = None
    attempts: int = 1
    errors: int = 0
    sent_at: float = 0.0
    acked_at: float | None = None


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    body: str


@dataclass
class Verdict:
    acknowledged: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    reordered: list[str] = field(default_factory=list)
    in_doubt_resolved: int = 0
    unacknowledged_but_stored: int = 0
    unacknowledged: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.reordered)

    def as_dict(self) -> dict[str, object]:
        return {
            "acknowledged": self.acknowledged,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "reordered": len(self.reordered),
            "in_doubt_resolved": self.in_doubt_resolved,
            "unacknowledged_but_stored": self.unacknowledged_but_stored,
            "unacknowledged": self.unacknowledged,
            "examples": {
                "lost": self.lost[:5],
                "duplicated": self.duplicated[:5],
                "reordered": self.reordered[:5],
            },
            "ok": self.ok,
        }


Timelines = Mapping[str, Mapping[str, Sequence[StoredEvent]]]  # site -> room -> events in order


def judge(sends: Sequence[Send], timelines: Timelines) -> Verdict:
    """Lost, duplicated and reordered messages, per the ledgers, at every site read."""
    verdict = Verdict()
    acked = [s for s in sends if s.acked]
    verdict.acknowledged = len(acked)
    verdict.unacknowledged = len(sends) - len(acked)
    verdict.in_doubt_resolved = sum(1 for s in acked if s.errors > 0)
    ours = {s.body for s in sends}

    for site, rooms in sorted(timelines.items()):
        stored_ids: set[str] = set()
        for room_id, events in rooms.items():
            counts = Counter(e.body for e in events if e.body in ours)
            for body, n in counts.items():
                if n > 1:
                    verdict.duplicated.append(f"{site}: {body!r} stored {n} times in {room_id}")
            stored_ids.update(e.event_id for e in events)
        for send in acked:
            if send.event_id not in stored_ids:
                verdict.lost.append(f"{site}: {send.body!r} ({send.event_id}) missing")
        _client_order(site, rooms, acked, verdict)
    _cross_site_order(timelines, verdict)
    stored_anywhere = {
        e.body for rooms in timelines.values() for evs in rooms.values() for e in evs
    }
    verdict.unacknowledged_but_stored = sum(
        1 for s in sends if not s.acked and s.body in stored_anywhere
    )
    return verdict


def _client_order(
    site: str, rooms: Mapping[str, Sequence[StoredEvent]], acked: Sequence[Send], verdict: Verdict
) -> None:
    """A client sends one message at a time, so its messages must appear in its send order."""
    by_client_room: dict[tuple[str, str], list[Send]] = {}
    for send in acked:
        by_client_room.setdefault((send.client, send.room_id), []).append(send)
    for (client, room_id), client_sends in by_client_room.items():
        position = {e.event_id: i for i, e in enumerate(rooms.get(room_id, ()))}
        ordered = sorted(client_sends, key=lambda s: s.sent_at)
        seen = [position[s.event_id] for s in ordered if s.event_id in position]
        for earlier, later in zip(seen, seen[1:], strict=False):
            if later < earlier:
                verdict.reordered.append(f"{site}: {client} in {room_id} out of send order")
                break


def _cross_site_order(timelines: Timelines, verdict: Verdict) -> None:
    """Every site must hold each room's events in one and the same order."""
    sites = sorted(timelines)
    if len(sites) < 2:
        return
    reference = timelines[sites[0]]
    for other in sites[1:]:
        for room_id, events in reference.items():
            mine = [e.event_id for e in events]
            theirs = [e.event_id for e in timelines[other].get(room_id, ())]
            common = set(mine) & set(theirs)
            if [e for e in mine if e in common] != [e for e in theirs if e in common]:
                verdict.reordered.append(f"{sites[0]} vs {other}: {room_id} differs in order")


Until = float | Mapping[str, float] | None


def _until(until: Until, client: str) -> float | None:
    return until.get(client) if isinstance(until, Mapping) else until


def _stretches(
    fault_at: float, times: Sequence[float], end: float | None
) -> list[tuple[float, float]]:
    """A client's stretches between acknowledged writes from the fault on, as
    (from, to); with ``end`` (where its load ended) the last one runs to it."""
    after = sorted(t for t in times if t >= fault_at)
    if end is not None:
        after.append(max(end, after[-1] if after else fault_at))
    points = [fault_at, *after]
    return list(zip(points, points[1:], strict=False))


def write_gap(
    fault_at: float, acks_by_client: Mapping[str, Sequence[float]], until: Until = None
) -> dict[str, float]:
    """Client-visible write gap: each client's longest time without an acknowledged
    write, from the fault on.

    Measured from the fault to the client's first ack after it, and between its
    later acks, whichever is longest: a send already in flight may be
    acknowledged just after the fault while the client's next send then waits
    for a new leader, and that wait is what the user sees.

    With ``until`` (the end of the load), the time from a client's last ack to
    the end counts too, and a client with no ack after the fault counts as
    stuck for the whole rest of the drill instead of being left out. ``until``
    may be per client (``client_ends``): the end of the load is not when the
    slowest client's last send returned — a client that stopped sending on time
    was not waiting while another's send took 5 s more.
    """
    gaps = []
    for client, times in acks_by_client.items():
        stretches = _stretches(fault_at, times, _until(until, client))
        if stretches:
            gaps.append(max(b - a for a, b in stretches))
    if not gaps:
        return {}
    gaps.sort()

    def pct(p: float) -> float:
        return gaps[min(len(gaps) - 1, int(round(p * (len(gaps) - 1))))]

    return {
        "clients": float(len(gaps)),
        "min": round(gaps[0], 3),
        # Not pct(0.5): round() halves to even, so an even number of clients got
        # the lower middle value for 2, 6, 10... clients and the upper for 4, 8...
        "median": round(statistics.median(gaps), 3),
        "p99": round(pct(0.99), 3),
        "max": round(gaps[-1], 3),
    }


def client_ends(
    sending_until: float, attempts_by_client: Mapping[str, Sequence[tuple[float, float, str, str]]]
) -> dict[str, float]:
    """Where each client's load ended: when sending stopped, or later when its last
    attempt (one in flight then) ended."""
    return {
        client: max([sending_until, *(end for _, end, _, _ in attempts)])
        for client, attempts in attempts_by_client.items()
    }


def long_waits(
    fault_at: float,
    acks_by_client: Mapping[str, Sequence[float]],
    until: float | Mapping[str, float],
    *,
    attempts_by_client: Mapping[str, Sequence[tuple[float, float, str, str]]] | None = None,
    timeline: Sequence[Sequence[Any]] = (),
    over: float = 1.0,
    most: int = 40,
) -> list[dict[str, Any]]:
    """Every wait longer than ``over`` seconds between a client's acknowledged writes,
    from the fault to ``until``, longest first (at most ``most``), in seconds after
    the fault: when it began and ended, the step the fault's ``timeline``
    ([seconds after the fault, line], each line written when its step ended) had
    reached when it began and the steps that ended during it, and the client's
    attempts that overlap it ([start, end, outcome, site]). Why: ``write_gap`` says
    how long clients waited; this says where in a rolling restart and on what."""
    waits: list[dict[str, Any]] = []
    for client, times in acks_by_client.items():
        load_end = _until(until, client)
        assert load_end is not None
        for a, b in _stretches(fault_at, times, load_end):
            if b - a <= over:
                continue
            start, end = a - fault_at, b - fault_at
            reached = [line for t, line in timeline if t <= start]
            tried = [
                [round(s - fault_at, 3), round(e - fault_at, 3), outcome, site]
                for s, e, outcome, site in (attempts_by_client or {}).get(client, ())
                if e > a and s < b
            ]
            waits.append(
                {
                    "client": client,
                    "from_s": round(start, 3),
                    "to_s": round(end, 3),
                    "seconds": round(b - a, 3),
                    "step": reached[-1] if reached else "",
                    "steps_during": [line for t, line in timeline if start < t <= end],
                    # A client cut off for long retries many times: the first and the
                    # last few tell the story, and the report stays small.
                    "attempts": tried if len(tried) <= 10 else tried[:5] + tried[-5:],
                    "attempts_total": len(tried),
                }
            )
    waits.sort(key=lambda w: -w["seconds"])
    return waits[:most]


def gap_phases(
    fault_at: float,
    recovered_at: float,
    acks_by_client: Mapping[str, Sequence[float]],
    until: float | Mapping[str, float],
) -> dict[str, dict[str, float]]:
    """The write gap split at the moment the fault was undone: ``during`` (from the
    fault to the undoing) and ``after`` (from the undoing to the end of the load).

    A heal that costs a second election shows as an ``after`` gap of seconds
    where a clean one shows the load's usual spacing.
    """
    during = {
        name: [t for t in times if t < recovered_at] for name, times in acks_by_client.items()
    }
    ends = {name: _until(until, name) or recovered_at for name in acks_by_client}
    later = {name: acks_by_client[name] for name, end in ends.items() if end > recovered_at}
    return {
        "during": write_gap(
            fault_at, during, until={n: min(recovered_at, e) for n, e in ends.items()}
        ),
        "after": write_gap(recovered_at, later, until=ends) if later else {},
    }


# --- push notifications (`outlast drill fire --push`) ----------------------------------


@dataclass(frozen=True)
class Pushed:
    """One notification the drill's gateway accepted (answered 200)."""

    event_id: str
    pushkey: str
    site: str  # from the User-Agent, "Outlast (<site>)"
    at: float  # on the drill's monotonic clock


@dataclass
class PushVerdict:
    expected: int = 0
    delivered: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    in_doubt_duplicates: int = 0
    unexpected: list[str] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected)

    def as_dict(self) -> dict[str, object]:
        return {
            "expected": self.expected,
            "delivered": self.delivered,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "in_doubt_duplicates": self.in_doubt_duplicates,
            "unexpected": len(self.unexpected),
            "latency_ms": self.latency_ms,
            "examples": {
                "lost": self.lost[:5],
                "duplicated": self.duplicated[:5],
                "unexpected": self.unexpected[:5],
            },
            "ok": self.ok,
        }


def judge_push(
    expected: Mapping[str, frozenset[str]],
    pushed: Sequence[Pushed],
    *,
    victim: str,
    fault_at: float,
    acked_at: Mapping[str, float],
) -> PushVerdict:
    """Compare what should have notified (event id -> pushkeys) with what the gateway got.

    A pair delivered more than once is *in doubt* (not counted as duplicated)
    when its first delivery came from the burned site and the repeat came after
    the fault: that site posted it and died before its acknowledgement reached
    the log, the one repeat docs/push.md allows (gateways deduplicate it by
    event id). Any other repeat is a duplicate. Latency runs from the send's
    acknowledgement to the first delivery.
    """
    verdict = PushVerdict(expected=sum(len(keys) for keys in expected.values()))
    by_pair: dict[tuple[str, str], list[Pushed]] = {}
    for item in sorted(pushed, key=lambda p: p.at):
        by_pair.setdefault((item.event_id, item.pushkey), []).append(item)
    verdict.delivered = len(by_pair)
    latencies: list[float] = []
    for event_id, keys in sorted(expected.items()):
        for key in sorted(keys):
            got = by_pair.get((event_id, key))
            if not got:
                verdict.lost.append(f"{event_id} to {key}")
            elif event_id in acked_at:
                latencies.append(max(0.0, got[0].at - acked_at[event_id]) * 1000)
    for (event_id, key), got in sorted(by_pair.items()):
        if key not in expected.get(event_id, frozenset()):
            verdict.unexpected.append(f"{event_id} to {key}")
        if len(got) < 2:
            continue
        repeats = got[1:]
        if got[0].site == victim and all(r.at >= fault_at for r in repeats) and len(got) == 2:
            verdict.in_doubt_duplicates += 1
        else:
            verdict.duplicated.append(f"{event_id} to {key} {len(got)} times")
    if latencies:
        latencies.sort()
        verdict.latency_ms = {
            "p50": round(statistics.median(latencies), 1),
            "p99": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
            "max": round(latencies[-1], 1),
        }
    return verdict


def durable_before(
    sends: Sequence[Send], timelines: Timelines, fault_at: float
) -> dict[str, object]:
    """Of the messages acknowledged before a power loss, how many are missing at any
    site read afterwards: with every write fsynced before its ack, none may be."""
    before = [s for s in sends if s.acked and s.acked_at is not None and s.acked_at < fault_at]
    missing: list[str] = []
    for site, rooms in sorted(timelines.items()):
        stored = {e.event_id for events in rooms.values() for e in events}
        missing += [
            f"{site}: {s.body!r} ({s.event_id})" for s in before if s.event_id not in stored
        ]
    return {
        "acknowledged_before_fault": len(before),
        "missing_after_power_on": len(missing),
        "examples": missing[:5],
        "ok": not missing,
    }
