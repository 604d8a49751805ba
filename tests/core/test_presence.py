"""Tests for outlast.core.presence: who is met anew in a sync window."""

from __future__ import annotations

from outlast.core.presence import NewlyMet, newly_met


def test_the_users_own_joins_name_rooms_and_others_joins_name_people() -> None:
    joins = [("!a:hs", "@me:hs"), ("!b:hs", "@bo:hs"), ("!a:hs", "@al:hs"), ("!c:hs", "@me:hs")]
    assert newly_met("@me:hs", joins) == NewlyMet(
        frozenset({"!a:hs", "!c:hs"}), frozenset({"@bo:hs", "@al:hs"})
    )


def test_no_joins_meet_nobody() -> None:
    assert newly_met("@me:hs", []) == NewlyMet(frozenset(), frozenset())
