"""Server-side key backup (``/room_keys/*``): a user's encrypted Megolm session keys.

Every change is a fact on the user's ``room_keys`` subject in the users
stream; the rules (which version is current, which key replaces which) are
in outlast/core/key_backup.py and are applied again by the projector, so the
answer a writer gives — ``etag`` and ``count`` — is read from its own view
after the fact is applied there, as every site will see it. The server never
sees a key in clear: ``session_data`` and ``auth_data`` are opaque.
"""

from __future__ import annotations

from typing import Any

from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core import ids, key_backup
from outlast.core.errors import MatrixError, missing_param
from outlast.log.client import Ack
from outlast.log.facts import (
    BackupCreated,
    BackupDeleted,
    BackupKeysDeleted,
    BackupKeysStored,
    BackupUpdated,
    Fact,
)
from outlast.room_keys import tables as store


def _version_param(version: str | None) -> str:
    if version is None or version == "":
        raise missing_param("the version query parameter is required")
    return version


def _check_room(room_id: str | None) -> None:
    if room_id is not None and not ids.is_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "not a room id")


class RoomKeys:
    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx

    def _versions(self, user_id: str) -> list[key_backup.BackupVersion]:
        return store.versions(self.ctx.conn, user_id)

    async def _append(self, user_id: str, fact: Fact) -> Ack:
        ack = await self.ctx.log.append(self.ctx.names.user_subject(user_id, "room_keys"), fact)
        await self.ctx.applied(ack)
        return ack

    # --- versions -----------------------------------------------------------------

    async def create_version(self, who: Requester, body: Any) -> dict[str, Any]:
        """``POST /room_keys/version``: the new version becomes the current one."""
        algorithm, auth_data = key_backup.parse_version_body(body)
        ack = await self._append(who.user_id, BackupCreated(who.user_id, algorithm, auth_data))
        return {"version": str(ack.seq)}

    def version(self, who: Requester, version: str | None) -> dict[str, Any]:
        """``GET /room_keys/version[/{version}]``."""
        return key_backup.find(self._versions(who.user_id), version).info()

    async def update_version(self, who: Requester, version: str, body: Any) -> None:
        """``PUT /room_keys/version/{version}``: only ``auth_data`` changes."""
        new = key_backup.updated(self._versions(who.user_id), version, body)
        await self._append(who.user_id, BackupUpdated(who.user_id, version, dict(new.auth_data)))

    async def delete_version(self, who: Requester, version: str) -> None:
        """``DELETE /room_keys/version/{version}``: twice is fine, unknown is 404."""
        if key_backup.check_delete(self._versions(who.user_id), version):
            await self._append(who.user_id, BackupDeleted(who.user_id, version))

    # --- keys ---------------------------------------------------------------------

    def keys(
        self,
        who: Requester,
        version: str | None,
        room_id: str | None = None,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        """``GET /room_keys/keys[/{roomId}[/{sessionId}]]``."""
        _check_room(room_id)
        found = key_backup.find(self._versions(who.user_id), _version_param(version))
        stored = store.keys(self.ctx.conn, who.user_id, found.version, room_id)
        return key_backup.keys_body(stored, room_id, session_id)

    async def put_keys(
        self,
        who: Requester,
        version: str | None,
        body: Any,
        room_id: str | None = None,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        """``PUT /room_keys/keys[/{roomId}[/{sessionId}]]``: ``{etag, count}`` after it."""
        _check_room(room_id)
        version = _version_param(version)
        uploads = key_backup.parse_upload(body, room_id, session_id)
        for rid, _ in uploads:
            _check_room(rid)
        key_backup.writable(self._versions(who.user_id), version)
        rooms: dict[str, dict[str, Any]] = {}
        for (rid, sid), data in uploads.items():
            rooms.setdefault(rid, {"sessions": {}})["sessions"][sid] = data.body()
        if rooms:
            await self._append(who.user_id, BackupKeysStored(who.user_id, version, rooms))
        # Judged again when applied: if another device replaced the version meanwhile,
        # nothing was stored, and the client hears so as it would have before.
        return key_backup.writable(self._versions(who.user_id), version).counters()

    async def delete_keys(
        self,
        who: Requester,
        version: str | None,
        room_id: str | None = None,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        """``DELETE /room_keys/keys[/{roomId}[/{sessionId}]]``: ``{etag, count}`` after it."""
        _check_room(room_id)
        version = _version_param(version)
        key_backup.find(self._versions(who.user_id), version)
        fact = BackupKeysDeleted(who.user_id, version, room_id, session_id)
        await self._append(who.user_id, fact)
        return key_backup.find(self._versions(who.user_id), version).counters()
