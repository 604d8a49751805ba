"""createRoom: a new room's initial events, checked and committed as one fact."""

from __future__ import annotations

from typing import Any

from outlast.context import SiteContext
from outlast.core import auth, canonical_json, ids, room_versions
from outlast.core.errors import bad_json, invalid_param
from outlast.directory.service import Directory
from outlast.profiles.tables import member_fields
from outlast.rooms.writer import RoomWriter, checked
from outlast.view.queries import StateMap

PRESETS = ("private_chat", "public_chat", "trusted_private_chat")


def _str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise bad_json(f"{key} must be a string")
    return value


def _creation_content(value: Any) -> dict[str, Any]:
    """createRoom's ``creation_content``, checked against the m.room.create schema.

    Spec (createRoom): the server overwrites ``creator`` and ``room_version``; in
    room version 11 the sender is the creator, so ``creator`` is dropped."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_json("creation_content must be an object")
    content = {k: v for k, v in value.items() if k not in ("creator", "room_version")}
    if "m.federate" in content and not isinstance(content["m.federate"], bool):
        raise bad_json("creation_content.m.federate must be true or false")
    if "type" in content and not isinstance(content["type"], str):
        raise bad_json("creation_content.type must be a string")
    predecessor = content.get("predecessor")
    if "predecessor" in content and not (
        isinstance(predecessor, dict)
        and isinstance(predecessor.get("room_id"), str)
        and ids.is_room_id(predecessor["room_id"])
        and isinstance(predecessor.get("event_id", ""), str)
    ):
        raise bad_json("creation_content.predecessor must name a room_id (and an event_id)")
    return content


class RoomCreator:
    def __init__(self, ctx: SiteContext, writer: RoomWriter, directory: Directory) -> None:
        self.ctx = ctx
        self.writer = writer
        self.directory = directory

    async def create(self, creator: str, body: dict[str, Any]) -> dict[str, Any]:
        visibility = _str(body, "visibility") or "private"
        if visibility not in ("public", "private"):
            raise invalid_param("visibility must be public or private")
        preset = _str(body, "preset") or (
            "public_chat" if visibility == "public" else "private_chat"
        )
        if preset not in PRESETS:
            raise invalid_param(f"unknown preset {preset!r}")
        rules = room_versions.check_creatable(
            _str(body, "room_version") or room_versions.DEFAULT_VERSION
        )
        invites = body.get("invite", [])
        if not isinstance(invites, list) or not all(ids.is_user_id(u) for u in invites):
            raise bad_json("invite must be a list of user ids")
        if len(invites) > 100:
            raise invalid_param("at most 100 invites at creation")
        initial_state = body.get("initial_state", [])
        if not isinstance(initial_state, list) or len(initial_state) > 100:
            raise bad_json("initial_state must be a list of at most 100 events")
        override = body.get("power_level_content_override")
        if override is not None and not isinstance(override, dict):
            raise bad_json("power_level_content_override must be an object")
        creation_content = _creation_content(body.get("creation_content"))
        is_direct = bool(body.get("is_direct", False))

        if visibility == "public":
            self.directory.check_may_publish(creator)
        create_content = room_versions.create_content(
            creator, rules, creation_content, preset=preset, invitees=invites
        )
        if rules.room_id_is_create_hash:
            # v12: the room ID is the create event's hash, so the event comes first.
            draft = self.writer.build_event("!", creator, "m.room.create", create_content, "")
            room_id = room_versions.room_id_for(draft)
            create = {**draft, "room_id": room_id, "event_id": room_versions.create_event_id(draft)}
        else:
            room_id = ids.new_room_id(self.ctx.server_name)
            create = self.writer.build_event(room_id, creator, "m.room.create", create_content, "")
        alias = await self._claim_alias(body, room_id, creator)

        def ev(t: str, content: dict[str, Any], sk: str | None = "") -> dict[str, Any]:
            return self.writer.build_event(room_id, creator, t, content, sk)

        plan: list[dict[str, Any]] = [
            create,
            ev(
                "m.room.member",
                {
                    "membership": "join",
                    "displayname": ids.parse_user_id(creator)[0],
                    **member_fields(self.ctx.conn, creator),
                },
                creator,
            ),
            ev(
                "m.room.power_levels",
                auth.initial_power_levels(
                    creator, preset, invites, override, room_version=rules.identifier
                ),
            ),
        ]
        if alias:
            plan.append(ev("m.room.canonical_alias", {"alias": alias}))
        plan += [
            ev(
                "m.room.join_rules",
                {"join_rule": "public" if preset == "public_chat" else "invite"},
            ),
            ev("m.room.history_visibility", {"history_visibility": "shared"}),
        ]
        if preset != "public_chat":
            plan.append(ev("m.room.guest_access", {"guest_access": "can_join"}))
        for item in initial_state:
            if not isinstance(item, dict) or not isinstance(item.get("type"), str):
                raise bad_json("initial_state entries need a type")
            content = item.get("content", {})
            if not isinstance(content, dict):
                raise bad_json("initial_state content must be an object")
            canonical_json.check_content(content)
            sk = item.get("state_key", "")
            if not isinstance(sk, str):
                raise bad_json("state_key must be a string")
            plan.append(ev(item["type"], content, sk))
        if (name := _str(body, "name")) is not None:
            plan.append(ev("m.room.name", {"name": name}))
        if (topic := _str(body, "topic")) is not None:
            # The plain topic and its rich form (spec v1.15), as Synapse writes them.
            rich = {"m.text": [{"body": topic, "mimetype": "text/plain"}]}
            plan.append(ev("m.room.topic", {"topic": topic, "m.topic": rich}))
        for invitee in invites:
            invite: dict[str, Any] = {"membership": "invite"}
            if is_direct:
                invite["is_direct"] = True
            plan.append(ev("m.room.member", invite, invitee))

        state: StateMap = {}
        auth.check_create(plan[0])
        state[("m.room.create", "")] = plan[0]
        for event in plan[1:]:
            state = checked(state, event)
        await self.writer.create(room_id, plan)
        if visibility == "public":
            await self.directory.publish(room_id, creator, "public")
        return {"room_id": room_id, **({"room_alias": alias} if alias else {})}

    async def _claim_alias(self, body: dict[str, Any], room_id: str, creator: str) -> str | None:
        name = _str(body, "room_alias_name")
        if name is None:
            return None
        alias = f"#{name}:{self.ctx.server_name}"
        if not name or ":" in name or not ids.is_room_alias(alias):
            raise invalid_param("room_alias_name is not a valid alias localpart")
        return await self.directory.claim_alias(alias, room_id, creator)
