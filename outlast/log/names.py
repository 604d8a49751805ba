"""Every stream, subject and bucket name Outlast uses, in one place.

Subjects carry hashed tokens rather than raw Matrix ids: user ids, room ids
and aliases may contain characters that NATS subjects forbid (``.``, ``*``,
``>``, spaces), and a fixed-width hex token keeps subjects short.

Layout::

    OUTLAST_USERS        outlast.users.<user>.account    register/password/deactivate (fenced)
                         outlast.users.<user>.session    login/logout/devices
                         outlast.users.<user>.data       filters, forgotten rooms
                         outlast.users.<user>.<kind>     profile, account_data, presence,
                                                         devices, keys, todevice, push,
                                                         cross_signing
    OUTLAST_DIRECTORY    outlast.alias.<alias>           alias -> room (fenced, unique)
    OUTLAST_ROOMS_<p>    outlast.rooms.<p>.<room>.state     state events (fenced on itself)
                         outlast.rooms.<p>.<room>.timeline  messages (re-checked when applied)
                         outlast.rooms.<p>.<room>.receipt   receipts, read markers
                         outlast.rooms.<p>.<room>.directory room directory listing
    OUTLAST_HEALTH       outlast.health.<site>           write probes (one kept per site)
    OUTLAST_DRILLS       outlast.drills.<id>             fire drill records
    OUTLAST_MEDIA        (object store)                  uploaded media
    (no stream)          outlast_ephemeral.typing.<room> typing notifications

A room lives in exactly one partition stream, so its events have one total
order — the partition's stream sequence — that is identical at every site.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

PREFIX = "outlast"
USERS_STREAM = "OUTLAST_USERS"
DIRECTORY_STREAM = "OUTLAST_DIRECTORY"
ROOMS_STREAM_PREFIX = "OUTLAST_ROOMS_"
DRILLS_STREAM = "OUTLAST_DRILLS"
HEALTH_STREAM = "OUTLAST_HEALTH"
MEDIA_BUCKET = "OUTLAST_MEDIA"


def token(value: str) -> str:
    """A subject-safe, fixed-width token for an arbitrary Matrix identifier."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def partition_of(room_id: str, partitions: int) -> int:
    """Which partition stream holds a room. Stable for a given partition count."""
    digest = hashlib.sha256(room_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % partitions


def rooms_stream(partition: int) -> str:
    return f"{ROOMS_STREAM_PREFIX}{partition}"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_msgs_per_subject: int = -1


def all_streams(partitions: int) -> list[StreamSpec]:
    """Every stream in a fixed order; sync tokens list positions in this order."""
    streams = [
        StreamSpec(USERS_STREAM, (f"{PREFIX}.users.>",)),
        StreamSpec(DIRECTORY_STREAM, (f"{PREFIX}.alias.>",)),
    ]
    for p in range(partitions):
        streams.append(StreamSpec(rooms_stream(p), (f"{PREFIX}.rooms.{p}.>",)))
    return streams


def control_streams() -> list[StreamSpec]:
    """Streams that are not part of sync tokens: health probes and drill records."""
    return [
        StreamSpec(HEALTH_STREAM, (f"{PREFIX}.health.>",), max_msgs_per_subject=1),
        StreamSpec(DRILLS_STREAM, (f"{PREFIX}.drills.>",)),
    ]


def health_subject(site: str, worker: str = "") -> str:
    """One subject per worker (the stream keeps the last message of each)."""
    base = f"{PREFIX}.health.{token(site)}"
    return f"{base}.{token(worker)}" if worker else base


def drill_subject(drill_id: str) -> str:
    return f"{PREFIX}.drills.{token(drill_id)}"


def user_account_subject(user_id: str) -> str:
    return f"{PREFIX}.users.{token(user_id)}.account"


def user_session_subject(user_id: str) -> str:
    return f"{PREFIX}.users.{token(user_id)}.session"


def user_data_subject(user_id: str) -> str:
    return f"{PREFIX}.users.{token(user_id)}.data"


def alias_subject(alias: str) -> str:
    return f"{PREFIX}.alias.{token(alias)}"


def user_subject(user_id: str, kind: str) -> str:
    """A per-user fact subject in the users stream, e.g. kind ``account_data``,
    ``presence``, ``todevice``, ``keys``, ``devices``, ``push``."""
    return f"{PREFIX}.users.{token(user_id)}.{kind}"


def device_keys_subject(user_id: str, device_id: str) -> str:
    """Every key fact of one device (one-time-key claims are fenced on it)."""
    return f"{user_subject(user_id, 'keys')}.{token(device_id)}"


def cross_signing_subject(user_id: str) -> str:
    """A user's cross-signing keys and the signatures they upload (key uploads are fenced on it)."""
    return user_subject(user_id, "cross_signing")


def directory_subject(room_id: str, partitions: int) -> str:
    """A room's directory listing, beside its state and timeline (same partition)."""
    p = partition_of(room_id, partitions)
    return f"{PREFIX}.rooms.{p}.{token(room_id)}.directory"


EPHEMERAL_PREFIX = "outlast_ephemeral"


def typing_subject(room_id: str) -> str:
    """Typing is ephemeral: plain NATS publish/subscribe, never stored in a stream."""
    return f"{EPHEMERAL_PREFIX}.typing.{token(room_id)}"


TYPING_WILDCARD = f"{EPHEMERAL_PREFIX}.typing.*"


@dataclass(frozen=True)
class RoomSubjects:
    stream: str
    state: str
    timeline: str
    receipt: str  # receipts and read markers: in the room's order, never fenced


def room_subjects(room_id: str, partitions: int) -> RoomSubjects:
    p = partition_of(room_id, partitions)
    base = f"{PREFIX}.rooms.{p}.{token(room_id)}"
    return RoomSubjects(rooms_stream(p), f"{base}.state", f"{base}.timeline", f"{base}.receipt")
