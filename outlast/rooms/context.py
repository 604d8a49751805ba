"""What clients call at start besides sync: TURN servers, event context, notifications.

None of these writes to the log. TURN credentials are either static or the
usual time-limited HMAC credentials from a shared secret (coturn's
``use-auth-secret``), computed on each request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import TYPE_CHECKING, Any

from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core.filters import EventFilter
from outlast.core.tokens import encode_boundary
from outlast.view import queries

if TYPE_CHECKING:
    from outlast.site import Services

MAX_CONTEXT = 100


class Misc:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.ctx = services.ctx

    def turn_server(self, user_id: str) -> dict[str, Any]:
        """GET /voip/turnServer: {} when no TURN server is configured (clients then skip TURN)."""
        voip = self.ctx.config.voip
        if not voip.turn_uris:
            return {}
        ttl = voip.turn_user_lifetime_seconds
        if voip.turn_shared_secret:
            username = f"{int(self.ctx.clock.time()) + ttl}:{user_id}"
            mac = hmac.new(voip.turn_shared_secret.encode(), username.encode(), hashlib.sha1)
            password = base64.b64encode(mac.digest()).decode()
        else:
            username, password = voip.turn_username, voip.turn_password
        return {
            "username": username,
            "password": password,
            "uris": list(voip.turn_uris),
            "ttl": ttl,
        }

    def context(
        self, who: Requester, room_id: str, event_id: str, limit: int, event_filter: EventFilter
    ) -> dict[str, Any]:
        """GET /rooms/{roomId}/context/{eventId}: the event, its neighbours and the state."""
        messages = self.services.messages
        event = messages.event(who, room_id, event_id)  # 404 unless the user may see it
        row = queries.event_row(self.ctx.conn, event_id)
        assert row is not None
        position = (int(row["seq"]), int(row["idx"]))
        limit = max(0, min(limit, MAX_CONTEXT))
        before_limit = limit // 2
        before = messages.page(who, room_id, position, None, True, before_limit, event_filter)
        after = messages.page(
            who,
            room_id,
            (position[0], position[1] + 1),
            None,
            False,
            limit - before_limit,
            event_filter,
        )
        events_before: list[dict[str, Any]] = before["chunk"]
        events_after: list[dict[str, Any]] = after["chunk"]
        first = _position(self.ctx, events_before[-1]) if events_before else position
        last = _position(self.ctx, events_after[-1]) if events_after else position
        state = queries.state_before(self.ctx.conn, room_id, (last[0], last[1] + 1))
        return {
            "event": event,
            "events_before": events_before,
            "events_after": events_after,
            "start": before.get("end") or encode_boundary(first),
            "end": after.get("end") or encode_boundary((last[0], last[1] + 1)),
            "state": [e for e in state.values() if event_filter.matches(e)],
        }

    def notifications(self, who: Requester, limit: int, only: str | None) -> dict[str, Any]:
        """GET /notifications: push rules are not evaluated server-side yet, so nothing
        has notified; an empty list (no next_token) is a complete, valid answer."""
        return {"notifications": []}


def _position(ctx: SiteContext, event: dict[str, Any]) -> tuple[int, int]:
    row = queries.event_row(ctx.conn, event["event_id"])
    return (int(row["seq"]), int(row["idx"])) if row is not None else (0, 0)


def install(services: Services) -> None:
    """Register the helper service behind the start-up endpoints (see routes/misc.py)."""
    services.features["misc"] = Misc(services)
