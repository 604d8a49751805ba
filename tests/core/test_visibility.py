"""Tests for outlast.core.visibility (Client-Server API "Room History Visibility")."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from outlast.core.visibility import (
    MembershipChange,
    effective_visibility,
    event_visible,
    ignored_away,
    membership_after,
    membership_at,
    visible_positions_upper_bound,
)


def mc(seq: int, membership: str, idx: int = 0) -> MembershipChange:
    return MembershipChange((seq, idx), membership)


def visible(
    history_visibility: str,
    changes: Sequence[MembershipChange],
    seq: int,
    idx: int = 0,
    **kwargs: object,
) -> bool:
    """Evaluate visibility of the event at (seq, idx) the way a caller would."""
    position = (seq, idx)
    return event_visible(
        history_visibility=history_visibility,
        membership_at_event=membership_at(changes, position),
        changes=changes,
        position=position,
        **kwargs,  # type: ignore[arg-type]
    )


# --- membership_at ----------------------------------------------------------


def test_membership_at_uses_state_before_the_event() -> None:
    changes = [mc(5, "invite"), mc(10, "join"), mc(20, "leave")]
    assert membership_at(changes, (1, 0)) == "leave"  # never a member yet
    assert membership_at(changes, (5, 0)) == "leave"  # the invite itself
    assert membership_at(changes, (6, 0)) == "invite"
    assert membership_at(changes, (10, 0)) == "invite"  # the join itself
    assert membership_at(changes, (10, 1)) == "join"
    assert membership_at(changes, (20, 0)) == "join"  # the leave itself
    assert membership_at(changes, (21, 0)) == "leave"
    assert membership_at([], (3, 3)) == "leave"


def test_membership_after_counts_the_event_itself() -> None:
    changes = [mc(5, "invite"), mc(10, "join", idx=2), mc(20, "leave")]
    assert membership_after(changes, (1, 0)) == "leave"  # never a member yet
    assert membership_after(changes, (5, 0)) == "invite"  # the invite itself
    assert membership_after(changes, (10, 1)) == "invite"
    assert membership_after(changes, (10, 2)) == "join"  # the join itself
    assert membership_after(changes, (19, 9)) == "join"
    assert membership_after(changes, (20, 0)) == "leave"  # the leave itself
    assert membership_after([], (3, 3)) == "leave"


def test_membership_at_orders_by_seq_then_idx() -> None:
    changes = [mc(7, "join", idx=2), mc(7, "leave", idx=5)]
    assert membership_at(changes, (7, 2)) == "leave"
    assert membership_at(changes, (7, 3)) == "join"
    assert membership_at(changes, (7, 5)) == "join"
    assert membership_at(changes, (7, 6)) == "leave"


# --- the four settings ------------------------------------------------------


def test_world_readable_visible_to_everyone() -> None:
    assert visible("world_readable", [], 3)
    assert visible("world_readable", [mc(1, "join"), mc(2, "ban")], 3)


def test_shared_joined_after_sending_sees_it() -> None:
    changes = [mc(10, "join")]
    assert visible("shared", changes, 3)


def test_shared_never_joined_does_not_see() -> None:
    assert not visible("shared", [], 3)
    # Merely invited (not joined) at or after the event is not enough.
    assert not visible("shared", [mc(10, "invite")], 3)


def test_joined_after_sending_under_joined_does_not_see() -> None:
    changes = [mc(10, "join")]
    assert not visible("joined", changes, 3)
    assert visible("joined", changes, 11)


def test_joined_invite_does_not_grant_history() -> None:
    changes = [mc(5, "invite"), mc(10, "join")]
    assert not visible("joined", changes, 7)


def test_invited_sees_from_invite_onwards() -> None:
    changes = [mc(5, "invite"), mc(10, "join")]
    assert not visible("invited", changes, 3)  # before the invite
    assert visible("invited", changes, 6)  # invited at the event
    assert visible("invited", changes, 12)  # joined at the event


def test_invited_while_only_invited_still_sees() -> None:
    changes = [mc(5, "invite")]
    assert visible("invited", changes, 6)
    assert not visible("invited", changes, 4)


def test_invite_rejected_stops_access() -> None:
    changes = [mc(5, "invite"), mc(8, "leave")]
    assert visible("invited", changes, 6)
    assert not visible("invited", changes, 9)


@pytest.mark.parametrize("setting", ["shared", "invited", "joined"])
def test_left_user_sees_up_to_leave_but_not_after(setting: str) -> None:
    changes = [mc(10, "join"), mc(20, "leave")]
    assert visible(setting, changes, 15)
    assert not visible(setting, changes, 25)
    assert visible_positions_upper_bound(changes) == (20, 0)


def test_banned_user_sees_nothing_after_ban() -> None:
    changes = [mc(10, "join"), mc(20, "ban")]
    assert visible("shared", changes, 19)
    assert not visible("shared", changes, 21)
    assert visible_positions_upper_bound(changes) == (20, 0)


def test_shared_rejoin_after_leave_reopens_gap() -> None:
    changes = [mc(10, "join"), mc(20, "leave"), mc(30, "join")]
    assert visible("shared", changes, 25)  # joined later, so shared history opens
    assert not visible("joined", changes, 25)  # only while joined
    assert visible_positions_upper_bound(changes) is None


def test_shared_history_before_first_join_for_a_later_leaver() -> None:
    changes = [mc(10, "join"), mc(20, "leave")]
    assert visible("shared", changes, 2)
    assert not visible("joined", changes, 2)


def test_unknown_or_missing_visibility_counts_as_shared() -> None:
    changes = [mc(10, "join")]
    assert visible("org.example.custom", changes, 3)
    assert not visible("org.example.custom", [], 3)
    assert effective_visibility(None) == "shared"
    assert effective_visibility("") == "shared"
    assert effective_visibility("joined") == "joined"


# --- special events ----------------------------------------------------------


def test_own_membership_events_are_visible() -> None:
    # The join itself under `joined`: membership before it was leave.
    changes = [mc(10, "join"), mc(20, "leave")]
    assert visible("joined", changes, 10, is_own_membership_event=True)
    # The leave itself (before it: join).
    assert visible("joined", changes, 20, is_own_membership_event=True)
    # An invite while never joined.
    assert visible("joined", [mc(5, "invite")], 5, is_own_membership_event=True)
    # Without the flag the join event falls to the ordinary rules.
    assert not visible("joined", changes, 10)


def test_history_visibility_event_before_or_after() -> None:
    # Changing joined -> world_readable is visible to a non-member...
    assert visible("joined", [], 3, history_visibility_after="world_readable")
    # ...and so is world_readable -> joined.
    assert visible("world_readable", [], 3, history_visibility_after="joined")
    assert not visible("joined", [], 3, history_visibility_after="shared")


# --- upper bound -------------------------------------------------------------


def test_upper_bound() -> None:
    assert visible_positions_upper_bound([]) is None
    assert visible_positions_upper_bound([mc(1, "join")]) is None
    assert visible_positions_upper_bound([mc(1, "invite")]) is None
    assert visible_positions_upper_bound([mc(1, "join"), mc(4, "leave", idx=2)]) == (4, 2)
    assert visible_positions_upper_bound([mc(1, "join"), mc(4, "ban")]) == (4, 0)
    assert visible_positions_upper_bound([mc(1, "leave"), mc(4, "knock")]) == (4, 0)


def test_an_ignored_senders_messages_go_but_their_state_stays() -> None:
    ignored = {"@troll:hs"}
    assert ignored_away("@troll:hs", False, ignored)
    assert not ignored_away("@troll:hs", True, ignored)  # a name or topic change still shows
    assert not ignored_away("@friend:hs", False, ignored)
    assert not ignored_away("@troll:hs", False, set())
