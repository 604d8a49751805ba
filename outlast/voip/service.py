"""TURN servers for VoIP calls: GET /voip/turnServer.

Nothing is written to the log. The credentials are either static or the usual
time-limited HMAC credentials from a shared secret (coturn's
``use-auth-secret``), computed on each request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from outlast.clock import Clock
from outlast.config import VoipConfig


class Turn:
    def __init__(self, config: VoipConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock

    def turn_server(self, user_id: str) -> dict[str, Any]:
        """GET /voip/turnServer: {} when no TURN server is configured (clients then skip TURN)."""
        voip = self.config
        if not voip.turn_uris:
            return {}
        ttl = voip.turn_user_lifetime_seconds
        if voip.turn_shared_secret:
            username = f"{int(self.clock.time()) + ttl}:{user_id}"
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
