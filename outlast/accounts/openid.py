"""OpenID tokens: a user proves who they are to a third party without handing it
their access token (widgets, integration managers, Element Call).

``POST /user/{userId}/openid/request_token`` issues a short-lived random
token; the third party asks ``GET /_matrix/federation/v1/openid/userinfo``
which user it names. The token's SHA-256 and expiry are a fact on the users
stream, so any site answers for a token another site issued.
"""

from __future__ import annotations

import secrets
from typing import Any

from outlast.accounts import tables
from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core import ids
from outlast.core.errors import MatrixError, forbidden
from outlast.log.facts import OpenIdTokenIssued

LIFETIME_SECONDS = 3600


def _unknown() -> MatrixError:
    return MatrixError(401, "M_UNKNOWN_TOKEN", "OpenID token unknown or expired")


class OpenId:
    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx

    async def request_token(self, who: Requester, user_id: str) -> dict[str, Any]:
        if who.user_id != user_id:
            raise forbidden("you can only request OpenID tokens for yourself")
        token = secrets.token_urlsafe(32)
        expires_at = self.ctx.now_ms() + LIFETIME_SECONDS * 1000
        fact = OpenIdTokenIssued(user_id, ids.token_hash(token), expires_at)
        ack = await self.ctx.log.append(self.ctx.names.user_subject(user_id, "openid"), fact)
        await self.ctx.applied(ack)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "matrix_server_name": self.ctx.server_name,
            "expires_in": LIFETIME_SECONDS,
        }

    async def userinfo(self, token: str | None) -> dict[str, Any]:
        """Which user a (current) OpenID token names."""
        if not token or len(token) > 255:
            raise _unknown()
        hashed = ids.token_hash(token)
        found = tables.openid_token(self.ctx.conn, hashed)
        if found is None and await self.ctx.catch_up(self.ctx.names.users_stream):
            found = tables.openid_token(self.ctx.conn, hashed)  # issued at another site
        if found is None or found[1] <= self.ctx.now_ms():
            raise _unknown()
        return {"sub": found[0]}
