"""What a sliding sync connection has been sent, and what the next response must carry.

A connection's state is the set of rooms whose data the client holds up to
its current ``pos``, each with the room config it was last sent with. The
rules that keep it small and exact:

- a selected room new to the connection is sent whole (``initial``);
- a selected room that changed since ``pos``, or whose config widened (more
  timeline, more state), is sent as a delta;
- a room no rule selects stays in the state only while it does not change:
  once it changes unseen, it is forgotten and comes back ``initial`` later.

The state is plain data with a JSON form, so phase 2 can keep it on the log
where every site reads it (see :mod:`outlast.core.sliding.pos`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from outlast.core.errors import MatrixError
from outlast.core.sliding.lists import Selection
from outlast.core.sliding.request import RequiredState, RoomConfig, StateMatcher


def unknown_pos(error: str = "Unknown or expired pos; start a new connection") -> MatrixError:
    """The MSC's way to expire a connection: the client drops its state and starts over."""
    return MatrixError(400, "M_UNKNOWN_POS", error)


@dataclass(frozen=True)
class ConnectionState:
    """Rooms the client is up to date with, each mapped to an index into ``configs``."""

    configs: tuple[RoomConfig, ...] = ()
    rooms: Mapping[str, int] = field(default_factory=dict)

    def config_of(self, room_id: str) -> RoomConfig | None:
        index = self.rooms.get(room_id)
        return None if index is None else self.configs[index]

    def to_json(self) -> dict[str, Any]:
        return {"configs": [_config_json(c) for c in self.configs], "rooms": dict(self.rooms)}

    @staticmethod
    def from_json(value: Any) -> ConnectionState:
        """Read a stored state back; anything malformed means the ``pos`` is unusable."""
        try:
            configs = tuple(_config_from(c) for c in value["configs"])
            rooms = {str(r): int(i) for r, i in value["rooms"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise unknown_pos("stored connection state is unreadable") from exc
        if any(not 0 <= i < len(configs) for i in rooms.values()):
            raise unknown_pos("stored connection state is inconsistent")
        return ConnectionState(configs, rooms)


def _matcher_json(m: StateMatcher) -> list[str | None]:
    return [m.event_type, m.state_key]


def _config_json(config: RoomConfig) -> dict[str, Any]:
    return {
        "timeline_limit": config.timeline_limit,
        "required_state": [
            {
                "include": [_matcher_json(m) for m in r.include],
                "exclude": [_matcher_json(m) for m in r.exclude],
                "lazy": r.lazy_members,
            }
            for r in config.required_state
        ],
    }


def _config_from(value: Any) -> RoomConfig:
    def matchers(raw: Any) -> tuple[StateMatcher, ...]:
        return tuple(StateMatcher(t, k) for t, k in raw)

    required = tuple(
        RequiredState(matchers(r["include"]), matchers(r["exclude"]), bool(r["lazy"]))
        for r in value["required_state"]
    )
    return RoomConfig(int(value["timeline_limit"]), required)


@dataclass(frozen=True)
class RoomPlan:
    """One room of the next response: how to render it.

    ``previous`` is the config the client last got the room with (``None``
    when ``initial``); ``expanded_timeline`` asks for the latest
    ``timeline_limit`` events even if the client saw some of them.
    """

    room_id: str
    config: RoomConfig
    lists: tuple[str, ...]
    initial: bool
    previous: RoomConfig | None = None
    expanded_timeline: bool = False


def plan(
    selection: Selection,
    state: ConnectionState,
    changed: Collection[str],
    state_expanded: Collection[str] = (),
) -> tuple[list[RoomPlan], ConnectionState]:
    """The rooms to send and the connection state after this response is taken.

    ``changed`` are rooms with anything new since ``pos`` that the user may
    see: for a room they are invited to or left, only their own membership
    changes count, not the room's other traffic. ``state_expanded`` are rooms
    whose new config wants current state the old one did not (see
    :func:`outlast.core.sliding.state.expands`).
    """
    plans: list[RoomPlan] = []
    kept: dict[str, RoomConfig] = {}
    for room_id, config in selection.configs.items():
        lists = selection.lists_of.get(room_id, ())
        old = state.config_of(room_id)
        kept[room_id] = config
        if old is None:
            plans.append(RoomPlan(room_id, config, lists, initial=True))
            continue
        wider = config.timeline_limit > old.timeline_limit
        if room_id in changed or wider or room_id in state_expanded:
            plans.append(RoomPlan(room_id, config, lists, False, old, expanded_timeline=wider))
    for room_id in state.rooms:
        if room_id not in kept and room_id not in changed:
            old_config = state.config_of(room_id)
            assert old_config is not None
            kept[room_id] = old_config
    return plans, _compact(kept)


def _compact(rooms: Mapping[str, RoomConfig]) -> ConnectionState:
    """One copy of each distinct config: most rooms share their list's config."""
    configs: list[RoomConfig] = []
    index: dict[RoomConfig, int] = {}
    out: dict[str, int] = {}
    for room_id in sorted(rooms):
        config = rooms[room_id]
        if config not in index:
            index[config] = len(configs)
            configs.append(config)
        out[room_id] = index[config]
    return ConnectionState(tuple(configs), out)
