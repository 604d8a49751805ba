"""Accounts, devices and access tokens: every change is a fact on the users stream.

Registration is fenced on the account subject with expected sequence 0, so two
sites racing to register one name cannot both succeed. Tokens are stored only
as SHA-256 hashes; logging out appends a fact that every site's projector
applies within milliseconds. Until a site has applied it, the read barrier
(outlast/view/barrier.py) holds back every request that arrived after the
logout was acknowledged, so no site accepts a revoked token even for those
milliseconds (docs/consistency.md).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from outlast.accounts import tables
from outlast.accounts.passwords import Passwords
from outlast.context import SiteContext
from outlast.core import ids, refresh
from outlast.core.errors import MatrixError, forbidden
from outlast.log.client import Ack, FenceFailed
from outlast.log.facts import (
    Deactivate,
    Fact,
    Login,
    Logout,
    LogoutAll,
    NewDevice,
    Password,
    ProfileSet,
    RefreshSpent,
    Register,
    TokenRefreshed,
)
from outlast.profiles.tables import DISPLAYNAME
from outlast.view import queries

MAX_PASSWORD_BYTES = 512
MAX_CACHED_SESSIONS = 100_000


@dataclass(frozen=True)
class Requester:
    user_id: str
    device_id: str
    token_hash: str
    expires_at: int | None = None  # refreshable access tokens only (ms)


def unknown_token() -> MatrixError:
    return MatrixError(
        401, "M_UNKNOWN_TOKEN", "access token unknown or revoked", extra={"soft_logout": False}
    )


def _check_password(password: Any) -> str:
    if not isinstance(password, str) or not password:
        raise MatrixError(400, "M_BAD_JSON", "password must be a non-empty string")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise MatrixError(400, "M_BAD_JSON", "password is too long")
    return password


class Accounts:
    def __init__(self, ctx: SiteContext, passwords: Passwords) -> None:
        self.ctx = ctx
        self.passwords = passwords
        # token hash -> (users stream position when resolved, requester). Every
        # change to accounts, devices and tokens is a message on the users
        # stream, so an entry is good exactly while that stream has not moved.
        self._sessions: dict[str, tuple[int, Requester]] = {}

    async def authenticate(self, access_token: str, arrived: float | None = None) -> Requester:
        """Resolve a token against a view at least as current as the log at ``arrived``.

        ``arrived`` is when the request arrived. Waiting for the users stream
        first (the read barrier) is what makes a revocation acknowledged
        anywhere before that moment — logout, logout-all, a deleted device, a
        password change that logs out, a deactivation — refuse the token here;
        and a login made at another site a moment ago is known here as well.
        """
        if len(access_token) > 512:
            raise unknown_token()
        await self.ctx.barrier.wait_current((self.ctx.names.users_stream,), arrived)
        hashed = ids.token_hash(access_token)
        cached = self._sessions.get(hashed)
        if cached is not None and cached[0] == self.ctx.positions.applied(
            self.ctx.names.users_stream
        ):
            refresh.check_access(cached[1].expires_at, self.ctx.now_ms())
            return cached[1]
        found = queries.session_for_token(self.ctx.conn, hashed)
        # Without the barrier (a benchmark knob) a miss may be a login made at
        # another site that this view has not applied yet.
        if (
            found is None
            and not self.ctx.barrier.enabled
            and await self.ctx.catch_up(self.ctx.names.users_stream)
        ):
            found = queries.session_for_token(self.ctx.conn, hashed)
        if found is None:
            raise unknown_token()
        expiry = tables.token_expiry(self.ctx.conn, hashed)
        # Judged by this site's clock now, against the expiry the issuing site wrote.
        refresh.check_access(expiry[0] if expiry else None, self.ctx.now_ms())
        if expiry is not None and expiry[2] is not None:
            # The first use of a refreshed pair spends the refresh token it came from.
            spent = RefreshSpent(found[0], expiry[2], expiry[1])
            await self.ctx.applied(
                await self._append(self.ctx.names.user_session_subject(found[0]), spent)
            )
        who = Requester(found[0], found[1], hashed, expiry[0] if expiry else None)
        if len(self._sessions) >= MAX_CACHED_SESSIONS:
            self._sessions.clear()
        self._sessions[hashed] = (self.ctx.positions.applied(self.ctx.names.users_stream), who)
        return who

    async def available(self, localpart: str) -> bool:
        user_id = ids.user_id(
            ids.validate_new_localpart(localpart, self.ctx.server_name), self.ctx.server_name
        )
        if queries.user(self.ctx.conn, user_id) is None:
            await self.ctx.catch_up(self.ctx.names.users_stream)
        if queries.user(self.ctx.conn, user_id) is not None:
            raise MatrixError(400, "M_USER_IN_USE", "that user id is taken")
        return True

    def _new_session(
        self, device_id: str | None, display_name: Any, refreshable: bool = False
    ) -> tuple[dict[str, Any], NewDevice]:
        """The token part of the answer, and the device fact that records it."""
        if device_id is not None and (
            not isinstance(device_id, str) or not 0 < len(device_id) <= 255
        ):
            raise MatrixError(
                400, "M_INVALID_PARAM", "device_id must be a string of 1-255 characters"
            )
        if display_name is not None and not isinstance(display_name, str):
            raise MatrixError(
                400, "M_INVALID_PARAM", "initial_device_display_name must be a string"
            )
        token = ids.new_access_token()
        now = self.ctx.now_ms()
        granted = refresh.grant(now, self._policy(), refreshable)
        refresh_token = ids.new_access_token() if refreshable else None
        device = NewDevice(
            device_id or ids.new_device_id(),
            ids.token_hash(token),
            display_name[:256] if isinstance(display_name, str) else None,
            granted.access_expires_at,
            ids.token_hash(refresh_token) if refresh_token is not None else None,
            granted.refresh_expires_at,
        )
        return refresh.token_fields(token, refresh_token, granted, now), device

    def _policy(self) -> refresh.RefreshPolicy:
        auth = self.ctx.config.auth
        lifetime = auth.refresh_token_lifetime_ms
        return refresh.RefreshPolicy(
            auth.refreshable_access_token_lifetime_ms, lifetime if lifetime > 0 else None
        )

    async def refresh(self, refresh_token: str, arrived: float | None = None) -> dict[str, Any]:
        """POST /refresh: a new pair for the refresh token's device, valid at every site.

        The barrier makes a refresh (or a logout) acknowledged anywhere before the
        request arrived count here; a token still on record is one whose successor
        pair has not been used, since using it deletes the record.
        """
        await self.ctx.barrier.wait_current((self.ctx.names.users_stream,), arrived)
        hashed = ids.token_hash(refresh_token)
        record = tables.refresh_record(self.ctx.conn, hashed)
        if (
            record is None
            and not self.ctx.barrier.enabled
            and await self.ctx.catch_up(self.ctx.names.users_stream)
        ):
            record = tables.refresh_record(self.ctx.conn, hashed)
        now = self.ctx.now_ms()
        if record is None:
            raise refresh.unknown_token("refresh token unknown or revoked", soft_logout=False)
        refresh.check_refresh(record, now, successor_used=False)
        granted = refresh.grant(now, self._policy(), True)
        expires_at = now + self._policy().access_lifetime_ms
        token, new_refresh = ids.new_access_token(), ids.new_access_token()
        fact = TokenRefreshed(
            record.user_id,
            record.device_id,
            hashed,
            ids.token_hash(token),
            granted.access_expires_at or expires_at,
            ids.token_hash(new_refresh),
            granted.refresh_expires_at,
        )
        await self.ctx.applied(
            await self._append(self.ctx.names.user_session_subject(record.user_id), fact)
        )
        return refresh.token_fields(token, new_refresh, granted, now)

    async def register(
        self,
        localpart: str | None,
        password: Any,
        *,
        device_id: str | None,
        display_name: Any,
        inhibit_login: bool,
        admin: bool = False,
        refreshable: bool = False,
    ) -> dict[str, Any]:
        if localpart is None:
            localpart = "user" + "".join(secrets.choice("0123456789") for _ in range(10))
        localpart = ids.validate_new_localpart(localpart, self.ctx.server_name)
        user_id = ids.user_id(localpart, self.ctx.server_name)
        password_hash = (
            await self.passwords.hash(_check_password(password)) if password is not None else None
        )
        tokens, device = (
            ({}, None) if inhibit_login else self._new_session(device_id, display_name, refreshable)
        )
        fact = Register(user_id, password_hash, self.ctx.now_ms(), device, admin)
        try:
            ack = await self.ctx.log.append(
                self.ctx.names.user_account_subject(user_id), fact, expected_seq=0
            )
        except FenceFailed:
            raise MatrixError(400, "M_USER_IN_USE", "that user id is taken") from None
        await self.ctx.applied(ack)
        # A new account's display name is its localpart, as Synapse sets it: clients
        # (matrix-nio's profile call among them) treat a missing one as an error.
        name = ProfileSet(user_id, DISPLAYNAME, localpart)
        await self.ctx.applied(
            await self._append(self.ctx.names.user_subject(user_id, "profile"), name)
        )
        body: dict[str, Any] = {"user_id": user_id, "home_server": self.ctx.server_name}
        if device is not None:
            body.update(tokens, device_id=device.device_id)
        return body

    async def check_password(self, user_id: str, password: Any) -> bool:
        """Against the current hash: a password changed at another site counts at once."""
        await self.ctx.barrier.wait_current((self.ctx.names.users_stream,))
        row = queries.user(self.ctx.conn, user_id)
        if row is None:
            await self.ctx.catch_up(self.ctx.names.users_stream)
            row = queries.user(self.ctx.conn, user_id)
        if not isinstance(password, str) or len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
            return False
        stored = row["password_hash"] if row is not None and not row["deactivated"] else None
        return await self.passwords.verify(stored, password)

    async def login(
        self,
        user_id: str,
        password: Any,
        *,
        device_id: str | None,
        display_name: Any,
        refreshable: bool = False,
    ) -> dict[str, Any]:
        if not await self.check_password(user_id, password):
            raise forbidden("Invalid username or password")
        tokens, device = self._new_session(device_id, display_name, refreshable)
        fact = Login(user_id, device, self.ctx.now_ms())
        ack = await self._append(self.ctx.names.user_session_subject(user_id), fact)
        await self.ctx.applied(ack)
        return {
            "user_id": user_id,
            **tokens,
            "device_id": device.device_id,
            "home_server": self.ctx.server_name,
        }

    async def logout(self, who: Requester) -> None:
        fact = Logout(who.user_id, who.token_hash)
        await self.ctx.applied(
            await self._append(self.ctx.names.user_session_subject(who.user_id), fact)
        )

    async def logout_all(self, who: Requester) -> None:
        fact = LogoutAll(who.user_id)
        await self.ctx.applied(
            await self._append(self.ctx.names.user_session_subject(who.user_id), fact)
        )

    async def change_password(
        self, who: Requester, new_password: Any, logout_devices: bool
    ) -> None:
        password_hash = await self.passwords.hash(_check_password(new_password))
        fact = Password(who.user_id, password_hash, logout_devices, who.device_id)
        await self.ctx.applied(
            await self._append(self.ctx.names.user_account_subject(who.user_id), fact)
        )

    async def deactivate(self, user_id: str) -> None:
        fact = Deactivate(user_id)
        await self.ctx.applied(
            await self._append(self.ctx.names.user_account_subject(user_id), fact)
        )

    async def _append(self, subject: str, fact: Fact) -> Ack:
        return await self.ctx.log.append(subject, fact)
