"""Every stream, subject and bucket name Outlast uses, in one place.

Subjects carry hashed tokens rather than raw Matrix ids: user ids, room ids
and aliases may contain characters that NATS subjects forbid (``.``, ``*``,
``>``, spaces), and a fixed-width hex token keeps subjects short.

Every name starts with the deployment's prefix (``log.prefix``, ``outlast`` by
default; streams and buckets upper-case it), so several deployments — the test
suite's in-process sites, say — can share one JetStream without seeing each
other. With the default prefix the layout is::

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
    (no stream)          outlast_ephemeral.view.<site>.<view>  a shared view moved

A room lives in exactly one partition stream, so its events have one total
order — the partition's stream sequence — that is identical at every site.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

DEFAULT_PREFIX = "outlast"
# A subject token and, upper-cased, part of a stream name: no dots, no wildcards.
PREFIX_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
DEFAULT_PARTITIONS = 4


def token(value: str) -> str:
    """A subject-safe, fixed-width token for an arbitrary Matrix identifier."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def partition_of(room_id: str, partitions: int) -> int:
    """Which partition stream holds a room. Stable for a given partition count."""
    digest = hashlib.sha256(room_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % partitions


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_msgs_per_subject: int = -1


@dataclass(frozen=True)
class RoomSubjects:
    stream: str
    state: str
    timeline: str
    receipt: str  # receipts and read markers: in the room's order, never fenced


@dataclass(frozen=True)
class Names:
    """The names of one deployment: its prefix and its number of room partitions."""

    prefix: str = DEFAULT_PREFIX
    partitions: int = DEFAULT_PARTITIONS

    def __post_init__(self) -> None:
        if not PREFIX_PATTERN.fullmatch(self.prefix):
            raise ValueError(f"invalid name prefix {self.prefix!r}")
        if self.partitions < 1:
            raise ValueError("a deployment has at least one partition")

    # --- streams and buckets ------------------------------------------------------

    def _stream(self, suffix: str) -> str:
        return f"{self.prefix.upper()}_{suffix}"

    @property
    def users_stream(self) -> str:
        return self._stream("USERS")

    @property
    def directory_stream(self) -> str:
        return self._stream("DIRECTORY")

    @property
    def drills_stream(self) -> str:
        return self._stream("DRILLS")

    @property
    def health_stream(self) -> str:
        return self._stream("HEALTH")

    @property
    def media_bucket(self) -> str:
        return self._stream("MEDIA")

    @property
    def snapshot_bucket(self) -> str:
        """Object store of view snapshots (outlast/view/snapshot.py)."""
        return self._stream("VIEWS")

    @property
    def backup_bucket(self) -> str:
        """Key-value bucket of the backup schedule: its lease and one marker per period."""
        return self._stream("BACKUPS")

    def rooms_stream(self, partition: int) -> str:
        return self._stream(f"ROOMS_{partition}")

    def streams(self) -> list[StreamSpec]:
        """Every stream a view follows, in a fixed order; sync tokens list positions in it."""
        p = self.prefix
        streams = [
            StreamSpec(self.users_stream, (f"{p}.users.>",)),
            StreamSpec(self.directory_stream, (f"{p}.alias.>",)),
        ]
        for i in range(self.partitions):
            streams.append(StreamSpec(self.rooms_stream(i), (f"{p}.rooms.{i}.>",)))
        return streams

    def control_streams(self) -> list[StreamSpec]:
        """Streams that are not part of sync tokens: health probes and drill records."""
        return [
            StreamSpec(self.health_stream, (self.health_wildcard,), max_msgs_per_subject=1),
            StreamSpec(self.drills_stream, (self.drills_wildcard,)),
        ]

    # --- control subjects ---------------------------------------------------------

    @property
    def health_wildcard(self) -> str:
        return f"{self.prefix}.health.>"

    def health_subject(self, site: str, worker: str = "") -> str:
        """One subject per worker (the stream keeps the last message of each)."""
        base = f"{self.prefix}.health.{token(site)}"
        return f"{base}.{token(worker)}" if worker else base

    @property
    def drills_wildcard(self) -> str:
        return f"{self.prefix}.drills.>"

    def drill_subject(self, drill_id: str) -> str:
        return f"{self.prefix}.drills.{token(drill_id)}"

    # --- users ------------------------------------------------------------------

    def user_subject(self, user_id: str, kind: str) -> str:
        """A per-user fact subject in the users stream, e.g. kind ``account_data``,
        ``presence``, ``todevice``, ``keys``, ``devices``, ``push``."""
        return f"{self.prefix}.users.{token(user_id)}.{kind}"

    def user_account_subject(self, user_id: str) -> str:
        return self.user_subject(user_id, "account")

    def user_session_subject(self, user_id: str) -> str:
        return self.user_subject(user_id, "session")

    def user_data_subject(self, user_id: str) -> str:
        return self.user_subject(user_id, "data")

    def device_keys_subject(self, user_id: str, device_id: str) -> str:
        """Every key fact of one device (one-time-key claims are fenced on it)."""
        return f"{self.user_subject(user_id, 'keys')}.{token(device_id)}"

    def cross_signing_subject(self, user_id: str) -> str:
        """A user's cross-signing keys and the signatures they upload (key uploads are
        fenced on it)."""
        return self.user_subject(user_id, "cross_signing")

    # --- aliases and rooms ------------------------------------------------------------

    def alias_subject(self, alias: str) -> str:
        return f"{self.prefix}.alias.{token(alias)}"

    def room_subjects(self, room_id: str) -> RoomSubjects:
        p = partition_of(room_id, self.partitions)
        base = f"{self.prefix}.rooms.{p}.{token(room_id)}"
        return RoomSubjects(
            self.rooms_stream(p), f"{base}.state", f"{base}.timeline", f"{base}.receipt"
        )

    # The durable consumer every site's push delivery shares, on each partition.
    push_consumer = "push_delivery"

    def push_subjects(self, partition: int) -> tuple[str, ...]:
        """The subjects of a partition that lead to pushes: events that may notify
        (state, timeline) and read receipts (badge updates)."""
        base = f"{self.prefix}.rooms.{partition}.*"
        return (f"{base}.state", f"{base}.timeline", f"{base}.receipt")

    def directory_subject(self, room_id: str) -> str:
        """A room's directory listing, beside its state and timeline (same partition)."""
        p = partition_of(room_id, self.partitions)
        return f"{self.prefix}.rooms.{p}.{token(room_id)}.directory"

    # --- ephemeral (no stream) -----------------------------------------------------------

    def typing_subject(self, room_id: str) -> str:
        """Typing is ephemeral: plain NATS publish/subscribe, never stored in a stream."""
        return f"{self.prefix}_ephemeral.typing.{token(room_id)}"

    @property
    def typing_wildcard(self) -> str:
        return f"{self.prefix}_ephemeral.typing.*"

    def view_subject(self, site: str, view: str) -> str:
        """Where a shared view's projecting worker says it committed (outlast/view/follower.py)."""
        return f"{self.prefix}_ephemeral.view.{token(site)}.{token(view)}"
