"""Retention of scheduled backups (outlast.backup.retention): which ones go, which stay."""

from __future__ import annotations

from outlast.backup.retention import Held, period_of, to_delete

DAY = 86_400.0


def backups(*ages_in_days: float, now: float = 100 * DAY) -> list[Held]:
    return [Held(f"b{i}", now - age * DAY) for i, age in enumerate(ages_in_days)]


def test_keeps_the_newest_n_and_deletes_the_oldest_first() -> None:
    held = backups(5, 1, 4, 2, 3)  # b1 newest, b0 oldest
    verified = {h.name for h in held}
    assert to_delete(held, keep=3, max_age=0, now=100 * DAY, verified=verified) == ["b0", "b2"]


def test_nothing_goes_when_there_are_no_more_than_n() -> None:
    held = backups(1, 2, 3)
    assert to_delete(held, keep=3, max_age=0, now=100 * DAY, verified={"b0"}) == []


def test_age_limit_deletes_old_ones_even_within_n() -> None:
    held = backups(1, 10, 40)
    names = {"b0", "b1", "b2"}
    assert to_delete(held, keep=10, max_age=30 * DAY, now=100 * DAY, verified=names) == ["b2"]


def test_the_newest_verified_backup_stays_whatever_the_rules_say() -> None:
    held = backups(1, 2, 50)  # only the oldest one verifies
    doomed = to_delete(held, keep=1, max_age=30 * DAY, now=100 * DAY, verified={"b2"})
    assert "b2" not in doomed and doomed == ["b1"]


def test_without_any_verified_backup_nothing_is_deleted() -> None:
    held = backups(1, 2, 3, 4)
    assert to_delete(held, keep=1, max_age=1, now=100 * DAY, verified=set()) == []


def test_periods_split_time_into_equal_slots() -> None:
    assert period_of(0.0, 60) == 0
    assert period_of(59.9, 60) == 0
    assert period_of(60.0, 60) == 1
    assert period_of(3601.0, 900) == 4
