"""Which state events a sliding sync room entry carries (``required_state``).

A first ("initial") entry carries every current state event the room config
wants. Later entries carry only state that changed since the connection's
``pos`` (a removed entry becomes a stub ``{type, state_key}``), plus state the
config newly wants when the client widened it. With lazy members the entry
also carries the member events of the timeline's senders and targets, and on
a gapless (not ``limited``) update every membership change, so a client can
keep its member cache (MSC4186, "Lazy loaded memberships").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from outlast.core.sliding.request import MEMBER, RoomConfig

StateKey = tuple[str, str]
StateMap = Mapping[StateKey, Mapping[str, Any]]


def _wanted(config: RoomConfig | None, key: StateKey, user_id: str) -> bool:
    return config is not None and config.wants(key[0], key[1], user_id)


def lazy_member_ids(timeline: Sequence[Mapping[str, Any]]) -> list[str]:
    """Senders of timeline events and targets of member events in it, first seen first."""
    seen: dict[str, None] = {}
    for event in timeline:
        sender = event.get("sender")
        if isinstance(sender, str):
            seen.setdefault(sender)
        target = event.get("state_key")
        if event.get("type") == MEMBER and isinstance(target, str):
            seen.setdefault(target)
    return list(seen)


def select_state(
    config: RoomConfig,
    state: StateMap,
    user_id: str,
    *,
    initial: bool,
    changed: Collection[StateKey] = (),
    previous: RoomConfig | None = None,
    timeline: Sequence[Mapping[str, Any]] = (),
    limited: bool = True,
    members_sent: Collection[str] = (),
) -> list[Mapping[str, Any]]:
    """The ``required_state`` list of one room entry.

    ``state`` is the room's current state; ``changed`` the keys that changed
    since the connection's ``pos``; ``previous`` the config the room was last
    sent with (``None`` for a room new to the connection); ``members_sent``
    users whose member events the connection already has, when the caller
    tracks that (re-sending one is harmless, just bytes).
    """
    out: dict[StateKey, Mapping[str, Any]] = {}
    for key, event in state.items():
        if not _wanted(config, key, user_id):
            continue
        if initial or key in changed or not _wanted(previous, key, user_id):
            out[key] = event
    if not initial:
        for key in changed:
            if key not in state and _wanted(config, key, user_id):
                out[key] = {"type": key[0], "state_key": key[1]}  # a StateStub
    if config.lazy_members:
        for member in lazy_member_ids(timeline):
            key = (MEMBER, member)
            if key in state and key not in out and member not in members_sent:
                out[key] = state[key]
        if not initial and not limited:
            for key in changed:
                if key[0] == MEMBER and key in state:
                    out.setdefault(key, state[key])
    return list(out.values())


def expands(new: RoomConfig, old: RoomConfig, state: StateMap, user_id: str) -> bool:
    """Whether ``new`` wants current state that ``old`` did not (so the room is due now)."""
    return any(_wanted(new, k, user_id) and not _wanted(old, k, user_id) for k in state)
