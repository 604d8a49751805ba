"""The verdict of a restore drill: what a restore from a backup gave back, judged against
where each acknowledged message sat in the log relative to the backup point.

Pure functions over plain data. Each acknowledged message is placed by its
sequence in the live log (read before the deployment was destroyed), not by
its presence in the backup: a message the backup should hold but dropped is
then a loss, never an "expected" one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from outlast.drill.verdict import Send, Timelines, judge

Place = tuple[str, int]  # (stream, sequence) of a message in the live log


@dataclass
class RestoreVerdict:
    acknowledged: int = 0
    before_point: int = 0  # acknowledged and at or below the backup point
    after_point: list[str] = field(default_factory=list)  # event ids past the point
    # Past the point and absent from every restored site: lost, as a backup taken
    # earlier must lose them.
    expected_lost: list[str] = field(default_factory=list)
    # At or below the point yet missing from a restored site: a restore that failed.
    lost_before_point: list[str] = field(default_factory=list)
    # Past the point yet shown by a restored site: the restore holds what the backup cannot.
    after_point_present: list[str] = field(default_factory=list)
    # Acknowledged, but not in the live log before the destruction at all.
    not_in_live_log: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    reordered: list[str] = field(default_factory=list)
    unacknowledged: int = 0

    @property
    def ok(self) -> bool:
        return self.before_point > 0 and not (
            self.lost_before_point
            or self.after_point_present
            or self.not_in_live_log
            or self.duplicated
            or self.reordered
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "acknowledged": self.acknowledged,
            "acknowledged_before_point": self.before_point,
            "acknowledged_after_point": len(self.after_point),
            # `lost` is what must be 0: lost although the backup should hold it.
            "lost": len(self.lost_before_point),
            "lost_before_point": len(self.lost_before_point),
            "expected_lost": len(self.expected_lost),
            "expected_lost_ids": list(self.expected_lost),
            "after_point_present": len(self.after_point_present),
            "not_in_live_log": len(self.not_in_live_log),
            "duplicated": len(self.duplicated),
            "reordered": len(self.reordered),
            "unacknowledged": self.unacknowledged,
            "examples": {
                "lost_before_point": self.lost_before_point[:5],
                "after_point_present": self.after_point_present[:5],
                "not_in_live_log": self.not_in_live_log[:5],
                "duplicated": self.duplicated[:5],
                "reordered": self.reordered[:5],
            },
            "ok": self.ok,
        }


def judge_restore(
    sends: Sequence[Send],
    places: Mapping[str, Place],
    backup_point: Mapping[str, int],
    restored: Timelines,
) -> RestoreVerdict:
    """Classify every acknowledged send by the backup point and check the restored sites.

    ``places`` maps event id to its (stream, sequence) in the live log;
    ``backup_point`` maps stream to the last sequence the backup holds;
    ``restored`` is every restored site's timelines."""
    v = RestoreVerdict()
    acked = [s for s in sends if s.acked and s.event_id]
    v.acknowledged = len(acked)
    v.unacknowledged = len(sends) - len(acked)
    before: list[Send] = []
    after: list[Send] = []
    for send in acked:
        place = places.get(str(send.event_id))
        if place is None:
            v.not_in_live_log.append(f"{send.body!r} ({send.event_id})")
            continue
        stream, seq = place
        (before if seq <= backup_point.get(stream, 0) else after).append(send)
    v.before_point = len(before)
    v.after_point = [str(s.event_id) for s in after]
    stored = {
        site: {e.event_id for events in rooms.values() for e in events}
        for site, rooms in restored.items()
    }
    for send in after:
        shown = sorted(site for site, ids in stored.items() if send.event_id in ids)
        if shown:
            v.after_point_present.append(f"{send.body!r} ({send.event_id}) at {', '.join(shown)}")
        else:
            v.expected_lost.append(str(send.event_id))
    # Lost, duplicated and reordered among what the backup holds, at every restored site
    # (the sends past the point are left out: their absence is expected).
    unacked = [s for s in sends if not s.acked]
    base = judge([*before, *unacked], restored)
    v.lost_before_point = base.lost
    v.duplicated = base.duplicated
    v.reordered = base.reordered
    return v
