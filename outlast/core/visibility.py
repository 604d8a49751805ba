"""Room history visibility: may this user see that event?

Every endpoint that returns room events (``/sync``, ``/messages``,
``/context``, ``/event``) must hide history the user is not entitled to.
The decision depends only on the room's ``m.room.history_visibility`` at the
event and on the user's membership timeline, so it is kept here as pure
functions over those facts; the caller looks them up.

Spec reference: Client-Server API, module "Room History Visibility",
subsections "Server behaviour" (the numbered rules) and the list of the four
``history_visibility`` options.

Positions are ``(seq, idx)`` pairs in the room's total event order; a larger
tuple is a later event.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

__all__ = [
    "KNOWN_VISIBILITIES",
    "MembershipChange",
    "effective_visibility",
    "event_visible",
    "ignored_away",
    "membership_after",
    "membership_at",
    "visible_positions_upper_bound",
]

Position = tuple[int, int]

KNOWN_VISIBILITIES = ("world_readable", "shared", "invited", "joined")


@dataclass(frozen=True)
class MembershipChange:
    """One of the user's ``m.room.member`` events: where it sits and what it set."""

    position: Position
    membership: str


def effective_visibility(history_visibility: str | None) -> str:
    """Normalise a ``history_visibility`` value.

    "Server behaviour": if no value is set, or it is not understood, the
    visibility is assumed to be ``shared``.
    """
    if isinstance(history_visibility, str) and history_visibility in KNOWN_VISIBILITIES:
        return history_visibility
    return "shared"


def membership_at(changes: Sequence[MembershipChange], position: Position) -> str:
    """The user's membership in effect just before the event at ``position``.

    The spec judges an event by "the state of the room *at that event*", i.e.
    the state before it is applied, so a change at exactly ``position`` is
    not counted.  ``changes`` must be sorted by position.  A user with no
    earlier change has never been in the room: ``"leave"``.
    """
    index = bisect_left(changes, position, key=lambda change: change.position)
    if index == 0:
        return "leave"
    return changes[index - 1].membership


def membership_after(changes: Sequence[MembershipChange], position: Position) -> str:
    """The user's membership once the event at ``position`` is applied.

    What ``unsigned.membership`` reports (spec v1.11, MSC4115): the membership
    "at the point of the event, including any changes caused by the event", so
    a user's own join reads ``join``. ``leave`` before any change."""
    index = bisect_right(changes, position, key=lambda change: change.position)
    if index == 0:
        return "leave"
    return changes[index - 1].membership


def _membership_allows(visibility: str, membership: str, joined_later: bool) -> bool:
    """Rules 1-5 of "Server behaviour" for one visibility/membership pair."""
    # 1. world_readable: allow anyone.
    if visibility == "world_readable":
        return True
    # 2. The user was joined at the event: allow.
    if membership == "join":
        return True
    # 3. shared, and the user joined at some point after the event: allow.
    if visibility == "shared" and joined_later:
        return True
    # 4. invited, and the user was invited at the event: allow.
    if visibility == "invited" and membership == "invite":  # noqa: SIM103 - one rule per step
        return True
    # 5. Otherwise deny.
    return False


def event_visible(
    *,
    history_visibility: str,
    membership_at_event: str,
    changes: Sequence[MembershipChange],
    position: Position,
    is_own_membership_event: bool = False,
    history_visibility_after: str | None = None,
) -> bool:
    """Whether the user may see the event at ``position``.

    ``history_visibility`` is the room's setting in effect at the event (the
    state before it); unknown values count as ``shared``.
    ``membership_at_event`` is the user's membership there, normally
    ``membership_at(changes, position)``.  ``changes`` is the user's whole
    membership history in the room, sorted, used to find a later join.

    ``is_own_membership_event``: the event is the user's own
    ``m.room.member`` event; those are always visible to them (see below).

    ``history_visibility_after``: when the event is itself an
    ``m.room.history_visibility`` event, pass the value it sets; the event is
    visible if the setting before *or* after it allows (spec, "Server
    behaviour").
    """
    # The spec lets users see their own membership events when the membership
    # before or after would allow it, which already covers joining and any
    # change away from join.  We go slightly further and always show them:
    # the remaining cases (an invite or ban while not joined, rejecting an
    # invite) concern only the user themself, and clients need these events
    # to render why a room moved to their invite/leave section.
    if is_own_membership_event:
        return True

    # Rule 3 looks for a join at or after the event; a join exactly at the
    # event is the user's own membership event and visible anyway.
    joined_later = any(
        change.membership == "join" and change.position >= position for change in changes
    )
    visibilities = [effective_visibility(history_visibility)]
    if history_visibility_after is not None:
        visibilities.append(effective_visibility(history_visibility_after))
    return any(
        _membership_allows(visibility, membership_at_event, joined_later)
        for visibility in visibilities
    )


def ignored_away(sender: str, is_state: bool, ignored: AbstractSet[str]) -> bool:
    """Whether an event is kept from a user who ignores its sender.

    Module "Ignoring Users": the user no longer receives events the ignored user
    sends, "with the exception of state events", which are still sent so that
    the room does not look different to them."""
    return not is_state and sender in ignored


def visible_positions_upper_bound(changes: Sequence[MembershipChange]) -> Position | None:
    """The last position the user could possibly see, or ``None`` if unbounded.

    "After a user has left a room, they may see any events which they were
    allowed to see before they left the room, but no events received after
    they left."  So when the user's latest membership is anything other than
    ``join`` or ``invite`` (``leave``, ``ban``, also ``knock``), history is
    capped at (and includes) that membership event.  ``None`` when they are
    currently joined or invited, or have no membership at all (then only a
    ``world_readable`` room shows anything, and that is not bounded by
    membership).  ``changes`` must be sorted by position.

    The cap ignores ``world_readable``: events sent after the user left while
    the room was world readable remain visible to them (rule 1), so callers
    serving such rooms must not treat the bound as absolute.
    """
    if not changes:
        return None
    latest = changes[-1]
    if latest.membership in ("join", "invite"):
        return None
    return latest.position
