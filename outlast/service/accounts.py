"""Accounts, devices and access tokens: every change is a fact on the users stream.

Registration is fenced on the account subject with expected sequence 0, so two
sites racing to register one name cannot both succeed. Tokens are stored only
as SHA-256 hashes; logging out appends a fact that every site's projector
applies within milliseconds. Until a site has applied it, the read barrier
(outlast/service/barrier.py) holds back every request that arrived after the
logout was acknowledged, so no site accepts a revoked token even for those
milliseconds (docs/consistency.md).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from outlast.core import ids
from outlast.core.errors import MatrixError, forbidden
from outlast.log import names
from outlast.log.client import FenceFailed, LogUnavailable
from outlast.service.context import SiteContext, log_unavailable, now_ms
from outlast.service.passwords import Passwords
from outlast.view import queries

MAX_PASSWORD_BYTES = 512
MAX_CACHED_SESSIONS = 100_000


@dataclass(frozen=True)
class Requester:
    user_id: str
    device_id: str
    token_hash: str


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
        await self.ctx.barrier.wait_current((names.USERS_STREAM,), arrived)
        hashed = ids.token_hash(access_token)
        cached = self._sessions.get(hashed)
        if cached is not None and cached[0] == self.ctx.positions.applied(names.USERS_STREAM):
            return cached[1]
        found = queries.session_for_token(self.ctx.conn, hashed)
        if found is None and not self.ctx.barrier.enabled:
            # Without the barrier (a benchmark knob) a miss may be a login made
            # at another site that this view has not applied yet.
            if await self.ctx.catch_up(names.USERS_STREAM):
                found = queries.session_for_token(self.ctx.conn, hashed)
        if found is None:
            raise unknown_token()
        who = Requester(found[0], found[1], hashed)
        if len(self._sessions) >= MAX_CACHED_SESSIONS:
            self._sessions.clear()
        self._sessions[hashed] = (self.ctx.positions.applied(names.USERS_STREAM), who)
        return who

    async def available(self, localpart: str) -> bool:
        user_id = ids.user_id(
            ids.validate_new_localpart(localpart, self.ctx.server_name), self.ctx.server_name
        )
        if queries.user(self.ctx.conn, user_id) is None:
            await self.ctx.catch_up(names.USERS_STREAM)
        if queries.user(self.ctx.conn, user_id) is not None:
            raise MatrixError(400, "M_USER_IN_USE", "that user id is taken")
        return True

    def _new_session(self, device_id: str | None, display_name: Any) -> tuple[str, dict[str, Any]]:
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
        device = {
            "device_id": device_id or ids.new_device_id(),
            "token_hash": ids.token_hash(token),
            "display_name": display_name[:256] if isinstance(display_name, str) else None,
        }
        return token, device

    async def register(
        self,
        localpart: str | None,
        password: Any,
        *,
        device_id: str | None,
        display_name: Any,
        inhibit_login: bool,
        admin: bool = False,
    ) -> dict[str, Any]:
        if localpart is None:
            localpart = "user" + "".join(secrets.choice("0123456789") for _ in range(10))
        localpart = ids.validate_new_localpart(localpart, self.ctx.server_name)
        user_id = ids.user_id(localpart, self.ctx.server_name)
        password_hash = (
            await self.passwords.hash(_check_password(password)) if password is not None else None
        )
        token, device = (
            (None, None) if inhibit_login else self._new_session(device_id, display_name)
        )
        fact = {
            "op": "register",
            "user_id": user_id,
            "password_hash": password_hash,
            "ts": now_ms(),
            "device": device,
            "admin": int(admin),
        }
        try:
            ack = await self.ctx.log.append(
                names.user_account_subject(user_id), fact, expected_seq=0
            )
        except FenceFailed:
            raise MatrixError(400, "M_USER_IN_USE", "that user id is taken") from None
        except LogUnavailable as exc:
            raise log_unavailable(exc) from exc
        await self.ctx.applied(ack)
        body: dict[str, Any] = {"user_id": user_id, "home_server": self.ctx.server_name}
        if device is not None:
            body.update(access_token=token, device_id=device["device_id"])
        return body

    async def check_password(self, user_id: str, password: Any) -> bool:
        """Against the current hash: a password changed at another site counts at once."""
        await self.ctx.barrier.wait_current((names.USERS_STREAM,))
        row = queries.user(self.ctx.conn, user_id)
        if row is None:
            await self.ctx.catch_up(names.USERS_STREAM)
            row = queries.user(self.ctx.conn, user_id)
        if not isinstance(password, str) or len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
            return False
        stored = row["password_hash"] if row is not None and not row["deactivated"] else None
        return await self.passwords.verify(stored, password)

    async def login(
        self, user_id: str, password: Any, *, device_id: str | None, display_name: Any
    ) -> dict[str, Any]:
        if not await self.check_password(user_id, password):
            raise forbidden("Invalid username or password")
        token, device = self._new_session(device_id, display_name)
        fact = {"op": "login", "user_id": user_id, "device": device, "ts": now_ms()}
        ack = await self._append(names.user_session_subject(user_id), fact)
        await self.ctx.applied(ack)
        return {
            "user_id": user_id,
            "access_token": token,
            "device_id": device["device_id"],
            "home_server": self.ctx.server_name,
        }

    async def logout(self, who: Requester) -> None:
        fact = {"op": "logout", "user_id": who.user_id, "token_hash": who.token_hash}
        await self.ctx.applied(await self._append(names.user_session_subject(who.user_id), fact))

    async def logout_all(self, who: Requester) -> None:
        fact = {"op": "logout_all", "user_id": who.user_id}
        await self.ctx.applied(await self._append(names.user_session_subject(who.user_id), fact))

    async def change_password(
        self, who: Requester, new_password: Any, logout_devices: bool
    ) -> None:
        password_hash = await self.passwords.hash(_check_password(new_password))
        fact = {
            "op": "password",
            "user_id": who.user_id,
            "password_hash": password_hash,
            "logout_devices": logout_devices,
            "keep_device": who.device_id,
        }
        await self.ctx.applied(await self._append(names.user_account_subject(who.user_id), fact))

    async def deactivate(self, user_id: str) -> None:
        fact = {"op": "deactivate", "user_id": user_id}
        await self.ctx.applied(await self._append(names.user_account_subject(user_id), fact))

    async def _append(self, subject: str, fact: dict[str, Any]) -> Any:
        try:
            return await self.ctx.log.append(subject, fact)
        except LogUnavailable as exc:
            raise log_unavailable(exc) from exc
