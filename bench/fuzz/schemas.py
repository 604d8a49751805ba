"""Request bodies for the fuzzer: our own JSON Schemas of what each endpoint takes.

Written here from Outlast's route table and handlers (not copied from the
Matrix spec's OpenAPI files). A schema says what a well-formed body looks
like; the fuzzer draws from it most of the time so requests get past the
first checks and reach the deeper code, and otherwise sends arbitrary JSON or
bytes. Endpoints without an entry get arbitrary JSON objects.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

S: dict[str, Any] = {"type": "string", "maxLength": 40}
ID_USER: dict[str, Any] = {"type": "string", "pattern": "^@[a-z0-9._=-]{1,12}:localhost$"}
ID_ROOM: dict[str, Any] = {"type": "string", "pattern": "^![A-Za-z0-9]{1,18}:localhost$"}
INT: dict[str, Any] = {"type": "integer", "minimum": -5, "maximum": 10**6}
ANY_OBJECT: dict[str, Any] = {"type": "object", "maxProperties": 4}


def obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


MESSAGE = obj(
    {
        "msgtype": {"enum": ["m.text", "m.notice", "m.image", "m.emote", "x.custom"]},
        "body": S,
        "format": {"enum": ["org.matrix.custom.html"]},
        "formatted_body": S,
        "url": {"type": "string", "pattern": "^mxc://localhost/[A-Za-z0-9]{1,20}$"},
        "m.relates_to": obj({"rel_type": S, "event_id": S, "m.in_reply_to": ANY_OBJECT}),
        "m.mentions": obj({"user_ids": {"type": "array", "items": ID_USER, "maxItems": 3}}),
    },
    ("msgtype", "body"),
)
STATE_CONTENT = {
    "anyOf": [
        obj({"name": S}),
        obj({"topic": S}),
        obj({"join_rule": {"enum": ["public", "invite", "knock", "private", "restricted"]}}),
        obj({"history_visibility": {"enum": ["shared", "joined", "invited", "world_readable"]}}),
        obj({"membership": {"enum": ["join", "leave", "invite", "ban", "knock"]}}),
        obj(
            {
                "users": {"type": "object", "additionalProperties": INT, "maxProperties": 3},
                "events_default": INT,
                "state_default": INT,
                "ban": INT,
                "redact": INT,
            }
        ),
        obj({"alias": S, "alt_aliases": {"type": "array", "items": S, "maxItems": 3}}),
    ]
}
EVENT_FILTER = obj(
    {
        "limit": INT,
        "types": {"type": "array", "items": S, "maxItems": 3},
        "not_types": {"type": "array", "items": S, "maxItems": 3},
        "senders": {"type": "array", "items": ID_USER, "maxItems": 3},
        "rooms": {"type": "array", "items": ID_ROOM, "maxItems": 3},
        "contains_url": {"type": "boolean"},
        "lazy_load_members": {"type": "boolean"},
    }
)
SYNC_FILTER = obj(
    {
        "event_fields": {"type": "array", "items": S, "maxItems": 3},
        "event_format": {"enum": ["client", "federation"]},
        "presence": EVENT_FILTER,
        "account_data": EVENT_FILTER,
        "room": obj(
            {
                "timeline": EVENT_FILTER,
                "state": EVENT_FILTER,
                "ephemeral": EVENT_FILTER,
                "include_leave": {"type": "boolean"},
                "rooms": {"type": "array", "items": ID_ROOM, "maxItems": 2},
            }
        ),
    }
)
PASSWORD_AUTH = obj(
    {
        "auth": obj(
            {
                "type": {"enum": ["m.login.password", "m.login.dummy"]},
                "identifier": obj({"type": {"const": "m.id.user"}, "user": S}),
                "password": S,
                "session": S,
            }
        )
    }
)
USER_TARGET = obj({"user_id": ID_USER, "reason": S})
KEYS = {"type": "object", "additionalProperties": S, "maxProperties": 3}

# (method, route template below its prefix) -> schema of the body.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/register"): obj(
        {
            "username": S,
            "password": S,
            "auth": obj({"type": {"enum": ["m.login.dummy", "m.login.password"]}, "session": S}),
            "device_id": S,
            "initial_device_display_name": S,
            "inhibit_login": {"type": "boolean"},
        }
    ),
    ("POST", "/login"): obj(
        {
            "type": {"enum": ["m.login.password", "m.login.token"]},
            "identifier": obj({"type": {"enum": ["m.id.user", "m.id.phone"]}, "user": S}),
            "user": S,
            "password": S,
            "device_id": S,
        },
        ("type",),
    ),
    ("POST", "/createRoom"): obj(
        {
            "name": S,
            "topic": S,
            "preset": {"enum": ["private_chat", "public_chat", "trusted_private_chat", "x"]},
            "visibility": {"enum": ["public", "private"]},
            "invite": {"type": "array", "items": ID_USER, "maxItems": 2},
            "room_alias_name": {"type": "string", "pattern": "^[a-z0-9]{1,10}$"},
            "is_direct": {"type": "boolean"},
            "creation_content": obj({"m.federate": {"type": "boolean"}, "type": S}),
            "initial_state": {
                "type": "array",
                "maxItems": 2,
                "items": obj({"type": S, "state_key": S, "content": ANY_OBJECT}),
            },
            "power_level_content_override": obj({"users_default": INT}),
        }
    ),
    ("PUT", "/rooms/{room_id}/send/{event_type}/{txn_id}"): MESSAGE,
    ("PUT", "/rooms/{room_id}/state/{event_type}/{state_key:.*}"): STATE_CONTENT,
    ("PUT", "/rooms/{room_id}/state/{event_type}"): STATE_CONTENT,
    ("PUT", "/rooms/{room_id}/redact/{event_id}/{txn_id}"): obj({"reason": S}),
    ("POST", "/rooms/{room_id}/invite"): USER_TARGET,
    ("POST", "/rooms/{room_id}/kick"): USER_TARGET,
    ("POST", "/rooms/{room_id}/ban"): USER_TARGET,
    ("POST", "/rooms/{room_id}/unban"): USER_TARGET,
    ("POST", "/user/{user_id}/filter"): SYNC_FILTER,
    ("POST", "/rooms/{room_id}/read_markers"): obj(
        {"m.fully_read": S, "m.read": S, "m.read.private": S}
    ),
    ("POST", "/rooms/{room_id}/receipt/{receipt_type}/{event_id}"): obj({"thread_id": S}),
    ("PUT", "/rooms/{room_id}/typing/{user_id}"): obj(
        {"typing": {"type": "boolean"}, "timeout": INT}, ("typing",)
    ),
    ("PUT", "/presence/{user_id}/status"): obj(
        {"presence": {"enum": ["online", "offline", "unavailable", "x"]}, "status_msg": S},
        ("presence",),
    ),
    ("PUT", "/profile/{user_id}/{key}"): obj({"displayname": S, "avatar_url": S}),
    ("PUT", "/directory/room/{alias}"): obj({"room_id": ID_ROOM}, ("room_id",)),
    ("PUT", "/directory/list/room/{room_id}"): obj(
        {"visibility": {"enum": ["public", "private", "x"]}}
    ),
    ("POST", "/publicRooms"): obj(
        {"limit": INT, "since": S, "filter": obj({"generic_search_term": S})}
    ),
    ("POST", "/user_directory/search"): obj({"search_term": S, "limit": INT}, ("search_term",)),
    ("PUT", "/user/{user_id}/rooms/{room_id}/tags/{tag}"): obj(
        {"order": {"type": "number", "minimum": 0, "maximum": 1}}
    ),
    ("PUT", "/devices/{device_id}"): obj({"display_name": S}),
    ("POST", "/delete_devices"): obj(
        {"devices": {"type": "array", "items": S, "maxItems": 3}, **PASSWORD_AUTH["properties"]}
    ),
    ("POST", "/account/password"): obj(
        {"new_password": S, "logout_devices": {"type": "boolean"}, **PASSWORD_AUTH["properties"]}
    ),
    ("POST", "/account/deactivate"): PASSWORD_AUTH,
    ("POST", "/keys/upload"): obj(
        {
            "device_keys": obj(
                {
                    "user_id": ID_USER,
                    "device_id": S,
                    "algorithms": {"type": "array", "items": S, "maxItems": 2},
                    "keys": KEYS,
                    "signatures": ANY_OBJECT,
                }
            ),
            "one_time_keys": {"type": "object", "additionalProperties": S, "maxProperties": 3},
            "fallback_keys": ANY_OBJECT,
        }
    ),
    ("POST", "/keys/query"): obj(
        {"device_keys": {"type": "object", "additionalProperties": {"type": "array"}}}
    ),
    ("POST", "/keys/claim"): obj(
        {"one_time_keys": {"type": "object", "additionalProperties": KEYS, "maxProperties": 2}}
    ),
    ("POST", "/keys/device_signing/upload"): obj(
        {
            "master_key": obj({"user_id": ID_USER, "usage": {"type": "array"}, "keys": KEYS}),
            "self_signing_key": ANY_OBJECT,
            "user_signing_key": ANY_OBJECT,
        }
    ),
    ("PUT", "/sendToDevice/{event_type}/{txn_id}"): obj(
        {
            "messages": {
                "type": "object",
                "maxProperties": 2,
                "additionalProperties": {"type": "object", "additionalProperties": ANY_OBJECT},
            }
        }
    ),
    ("PUT", "/pushrules/{scope}/{kind}/{rule_id}"): obj(
        {
            "actions": {"type": "array", "items": {"enum": ["notify", "dont_notify"]}},
            "conditions": {"type": "array", "items": obj({"kind": S, "key": S, "pattern": S})},
            "pattern": S,
        }
    ),
    ("PUT", "/pushrules/{scope}/{kind}/{rule_id}/{attr:enabled|actions}"): obj(
        {"enabled": {"type": "boolean"}, "actions": {"type": "array", "items": S}}
    ),
    ("POST", "/pushers/set"): obj(
        {
            "pushkey": S,
            "kind": {"enum": ["http", "email", None]},
            "app_id": S,
            "app_display_name": S,
            "device_display_name": S,
            "lang": S,
            "data": obj({"url": S, "format": S}),
        }
    ),
}


def strategy(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values matching one of the schemas above (the small subset of JSON Schema they use).

    Object properties are each present or not, at random, with the required
    ones always there; ``additionalProperties`` adds a few arbitrary keys.
    """
    if "anyOf" in schema:
        return st.one_of([strategy(s) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return st.text(max_size=schema.get("maxLength", 40))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        items = strategy(schema["items"]) if "items" in schema else st.text(max_size=8)
        return st.lists(items, max_size=schema.get("maxItems", 4))
    if kind == "object":
        return _object(schema)
    return st.none()


def _object(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    fixed = st.fixed_dictionaries(
        {k: strategy(v) for k, v in properties.items() if k in required},
        optional={k: strategy(v) for k, v in properties.items() if k not in required},
    )
    extra_schema = schema.get("additionalProperties")
    if not isinstance(extra_schema, dict):
        return fixed
    extra = st.dictionaries(
        st.text(min_size=1, max_size=12),
        strategy(extra_schema),
        max_size=schema.get("maxProperties", 3),
    )
    return st.tuples(fixed, extra).map(lambda pair: {**pair[1], **pair[0]})
