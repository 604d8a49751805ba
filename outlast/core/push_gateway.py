"""What a homeserver sends a push gateway, as pure data, and when it tries again.

Spec: Push Gateway API, ``POST /_matrix/push/v1/notify``; Client-Server API,
``POST /pushers/set`` (the pusher's ``data``).

- A notification about an event carries ``event_id``, ``room_id``, ``counts``
  and ``devices``; unless the pusher's ``data.format`` is ``event_id_only`` it
  also carries the event's ``type``, ``sender``, ``content`` and the names a
  phone shows (sender display name, room name, room alias, ``user_is_target``).
- A badge-only notification (after a read receipt changed the counts) carries
  ``counts`` and ``devices`` and no event.
- Each device is the pusher's ``app_id``, ``pushkey``, ``pushkey_ts``, the
  rule's tweaks and its ``data`` minus ``url``. The spec says to forward
  ``format`` and any custom keys, so only ``url`` is removed.
- ``counts.unread`` is always sent, even when 0: the spec says zero counts
  "should" be omitted, but a gateway cannot clear a phone's badge from an
  absent count. ``missed_calls`` is omitted when 0.
- ``prio`` is ``high`` when the rule rings or highlights, or the event is
  encrypted (only the client can tell what it says); otherwise ``low``, so
  gateways may batch plain group chatter. Badge-only pushes are ``low``.

On an HTTP error or no answer the spec asks for retries "for a reasonable
amount of time using exponential backoff": ``Backoff`` is that schedule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NOTIFY_PATH = "/_matrix/push/v1/notify"
EVENT_ID_ONLY = "event_id_only"
ENCRYPTED = "m.room.encrypted"
MEMBER = "m.room.member"


@dataclass(frozen=True)
class Pusher:
    """An ``http`` pusher as /pushers/set stored it, and when its pushkey was set (seconds)."""

    app_id: str
    pushkey: str
    pushkey_ts: int
    data: Mapping[str, Any]

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any], pushkey_ts: int) -> Pusher | None:
        """The deliverable form of a stored pusher; None for email pushers or no ``url``."""
        data = stored.get("data")
        if stored.get("kind") != "http" or not isinstance(data, Mapping):
            return None
        if not isinstance(data.get("url"), str):
            return None
        return cls(str(stored.get("app_id", "")), str(stored.get("pushkey", "")), pushkey_ts, data)

    @property
    def url(self) -> str:
        return str(self.data["url"])

    @property
    def event_id_only(self) -> bool:
        return self.data.get("format") == EVENT_ID_ONLY

    def device(self, tweaks: Mapping[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "app_id": self.app_id,
            "pushkey": self.pushkey,
            "pushkey_ts": self.pushkey_ts,
            "data": {k: v for k, v in self.data.items() if k != "url"},
        }
        if tweaks:
            out["tweaks"] = dict(tweaks)
        return out


@dataclass(frozen=True)
class RoomNames:
    """What the full format names besides the event (None: unknown, left out)."""

    sender_display_name: str | None = None
    room_name: str | None = None
    room_alias: str | None = None


NO_NAMES = RoomNames()


def counts(unread: int, missed_calls: int = 0) -> dict[str, int]:
    out = {"unread": max(0, unread)}
    if missed_calls > 0:
        out["missed_calls"] = missed_calls
    return out


def priority(event_type: Any, tweaks: Mapping[str, Any]) -> str:
    if event_type == ENCRYPTED or tweaks.get("sound") or tweaks.get("highlight") is True:
        return "high"
    return "low"


def event_notification(
    event: Mapping[str, Any],
    pusher: Pusher,
    user_id: str,
    tweaks: Mapping[str, Any],
    unread: int,
    names: RoomNames | None = None,
) -> dict[str, Any]:
    """The body of /notify for one event and one pusher of ``user_id``."""
    note: dict[str, Any] = {
        "event_id": event.get("event_id"),
        "room_id": event.get("room_id"),
        "counts": counts(unread),
        "prio": priority(event.get("type"), tweaks),
        "devices": [pusher.device(tweaks)],
    }
    if not pusher.event_id_only:
        note["type"] = event.get("type")
        note["sender"] = event.get("sender")
        if isinstance(event.get("content"), Mapping):
            note["content"] = event["content"]
        for key in ("sender_display_name", "room_name", "room_alias"):
            value = getattr(names or NO_NAMES, key)
            if value is not None:
                note[key] = value
        if event.get("type") == MEMBER:
            note["user_is_target"] = event.get("state_key") == user_id
    return {"notification": note}


def badge_notification(pusher: Pusher, unread: int) -> dict[str, Any]:
    """The body of /notify that only updates the badge (no event)."""
    return {
        "notification": {
            "counts": counts(unread),
            "prio": "low",
            "devices": [pusher.device()],
        }
    }


def rejected_pushkeys(response: Any, sent: Iterable[str]) -> frozenset[str]:
    """The pushkeys a gateway's answer rejects, among those it was sent (others are ignored)."""
    if not isinstance(response, Mapping) or not isinstance(response.get("rejected"), list):
        return frozenset()
    return frozenset(k for k in response["rejected"] if isinstance(k, str)) & frozenset(sent)


def delivered(status: int | None) -> bool:
    """A 2xx answer delivers; any other status, or none (timeout, refused), is retried."""
    return status is not None and 200 <= status < 300


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff while a gateway fails, then giving the notification up.

    Defaults: 1 s, 2 s, 4 s ... capped at 5 minutes between tries, and a
    notification still undelivered an hour after its first failure is dropped
    (a phone that rings hours late is worse than one that does not).
    """

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    give_up_after: float = 3600.0
    spread: float = 0.25  # jitter takes up to this fraction off a delay

    def delay(self, failures: int, jitter: float = 0.0) -> float:
        """Seconds to wait after ``failures`` consecutive failures (>= 1), with jitter in [0, 1]."""
        exponent = min(max(failures, 1) - 1, 64)  # no float overflow however long it fails
        base = min(self.cap, self.initial * self.factor**exponent)
        return base * (1.0 - self.spread * min(max(jitter, 0.0), 1.0))

    def gives_up(self, first_failure: float, now: float) -> bool:
        return now - first_failure >= self.give_up_after

    def schedule(self, tries: int) -> list[float]:
        """The first ``tries`` delays without jitter (for documentation and tests)."""
        return [self.delay(n) for n in range(1, tries + 1)]
