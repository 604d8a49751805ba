"""End-to-end keys: upload, query, claim, changes, and the E2EE parts of /sync.

All facts about one device's keys (identity keys, one-time keys, fallback
keys, claims) go to one literal subject, ``<user keys subject>.<device>``.
A claim is appended with JetStream's expected-last-subject-sequence set to
the last fact on that subject the claimer's view has applied, after choosing
an unclaimed key from that same view. If anything reached the subject in
between (another claim at any site or worker, an upload), the fence fails
and the claimer catches up and chooses again, so a one-time key is handed
out at most once. Fallback keys may be handed out repeatedly; marking one
used needs no fence.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import TYPE_CHECKING, Any

from outlast.core import e2ee
from outlast.core.errors import MatrixError, unavailable
from outlast.core.ids import parse_user_id
from outlast.core.tokens import SyncToken, parse_sync_token
from outlast.log.client import FenceBusy, FenceFailed, LogUnavailable
from outlast.log.names import USERS_STREAM
from outlast.log.names import device_keys_subject as names_device_keys_subject
from outlast.service.accounts import Requester
from outlast.service.context import SiteContext, log_unavailable
from outlast.service.extension import SyncExtensionBase
from outlast.service.to_device import ToDevice
from outlast.view import device_queries as q

if TYPE_CHECKING:
    from outlast.site import Services

CLAIM_BUDGET_SECONDS = 10.0
DEFAULT_OTK_ALGORITHM = "signed_curve25519"


device_keys_subject = names_device_keys_subject


class Keys:
    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx

    def _local(self, user_id: str) -> bool:
        return parse_user_id(user_id)[1] == self.ctx.server_name

    async def upload(self, who: Requester, body: dict[str, Any]) -> dict[str, int]:
        """Publish what is new; return the device's unclaimed one-time-key counts."""
        conn, user, device = self.ctx.conn, who.user_id, who.device_id
        header = {"op": "keys_upload", "user_id": user, "device_id": device}
        fact: dict[str, Any] = dict(header)
        if body.get("device_keys") is not None:
            keys = e2ee.check_device_keys(body["device_keys"], user, device)
            if q.stored_device_keys(conn, user, device) != _canonical(keys):
                fact["device_keys"] = keys
        otks = e2ee.check_key_map(body.get("one_time_keys"), "one_time_keys")
        split = {k: (e2ee.algorithm_of(k), k.partition(":")[2]) for k in otks}
        stored = q.one_time_keys(conn, user, device, split.values())
        new_otks: dict[str, Any] = {}
        for key_id, key in otks.items():
            old = stored.get(split[key_id])
            if old is None:
                new_otks[key_id] = key
            elif old != _canonical(key):
                raise MatrixError(
                    400, "M_INVALID_PARAM", f"one-time key {key_id} exists with another value"
                )
        if new_otks:
            fact["one_time_keys"] = new_otks
        fallbacks = e2ee.check_fallback_keys(body.get("fallback_keys"))
        if fallbacks:
            fact["fallback_keys"] = fallbacks
        if fact != header:  # something new to publish
            try:
                ack = await self.ctx.log.append(device_keys_subject(user, device), fact)
            except LogUnavailable as exc:
                raise log_unavailable(exc) from exc
            await self.ctx.applied(ack)
        return self.counts(user, device)

    def counts(self, user_id: str, device_id: str) -> dict[str, int]:
        counts = q.key_counts(self.ctx.conn, user_id, device_id)
        counts.setdefault(DEFAULT_OTK_ALGORITHM, 0)  # clients treat a missing count as unknown
        return counts

    def query(self, wanted: Any) -> dict[str, Any]:
        """Identity keys of the requested users' devices; cross-signing is not stored."""
        found: dict[str, Any] = {}
        for user_id, device_ids in e2ee.check_queries(wanted).items():
            if self._local(user_id):
                found[user_id] = q.device_keys(self.ctx.conn, user_id, device_ids)
        return {
            "failures": {},
            "device_keys": found,
            "master_keys": {},
            "self_signing_keys": {},
            "user_signing_keys": {},
        }

    async def claim(self, wanted: Any) -> dict[str, Any]:
        claims = e2ee.check_claims(wanted)
        jobs = [
            (user_id, device_id, algorithm)
            for user_id, devices in claims.items()
            if self._local(user_id)
            for device_id, algorithm in devices.items()
        ]
        results = await asyncio.gather(*(self._claim_one(*job) for job in jobs))
        found: dict[str, dict[str, Any]] = {}
        for (user_id, device_id, _), key in zip(jobs, results, strict=True):
            if key is not None:
                found.setdefault(user_id, {})[device_id] = key
        return {"failures": {}, "one_time_keys": found}

    async def _claim_one(
        self, user_id: str, device_id: str, algorithm: str
    ) -> dict[str, Any] | None:
        conn, log = self.ctx.conn, self.ctx.log
        subject = device_keys_subject(user_id, device_id)
        deadline = time.monotonic() + CLAIM_BUDGET_SECONDS
        while time.monotonic() < deadline:
            # Read the fence and the choice in one synchronous step: one view state.
            seen = q.key_subject_seq(conn, user_id, device_id)
            otk = q.next_one_time_key(conn, user_id, device_id, algorithm)
            if otk is None:
                return await self._claim_fallback(user_id, device_id, algorithm)
            key_id, key = otk
            fact = {
                "op": "keys_claim",
                "user_id": user_id,
                "device_id": device_id,
                "algorithm": algorithm,
                "key_id": key_id,
            }
            try:
                ack = await log.append(subject, fact, expected_seq=seen)
            except FenceBusy:
                await asyncio.sleep(random.uniform(0.002, 0.02))
                continue
            except FenceFailed:
                await self._catch_up_subject(subject)
                continue
            except LogUnavailable as exc:
                raise log_unavailable(exc) from exc
            await self.ctx.applied(ack)
            return {f"{algorithm}:{key_id}": key}
        raise unavailable("one-time keys are being claimed too fast; retry")

    async def _claim_fallback(
        self, user_id: str, device_id: str, algorithm: str
    ) -> dict[str, Any] | None:
        fallback = q.fallback_key(self.ctx.conn, user_id, device_id, algorithm)
        if fallback is None:
            return None
        key_id, key, used = fallback
        if not used:
            fact = {
                "op": "keys_claim",
                "user_id": user_id,
                "device_id": device_id,
                "algorithm": algorithm,
                "key_id": key_id,
                "fallback": True,
            }
            try:
                await self.ctx.log.append(device_keys_subject(user_id, device_id), fact)
            except LogUnavailable as exc:
                raise log_unavailable(exc) from exc
        return {f"{algorithm}:{key_id}": key}

    async def _catch_up_subject(self, subject: str) -> None:
        """Wait until this view has applied the subject's latest fact."""
        try:
            last = await self.ctx.log.last_subject_seq(USERS_STREAM, subject)
        except LogUnavailable:
            await asyncio.sleep(0.05)
            return
        await self.ctx.positions.wait_for(USERS_STREAM, last, 2.0)

    async def changes(self, user_id: str, start: str, end: str) -> tuple[list[str], list[str]]:
        """GET /keys/changes: device-list changes between two sync tokens."""
        count = len(self.ctx.stream_names)
        since, until = parse_sync_token(start, count), parse_sync_token(end, count)
        await self.ctx.reach(until.positions)
        now = self.ctx.positions.snapshot(self.ctx.stream_names)
        until = SyncToken(tuple(min(a, b) for a, b in zip(until.positions, now, strict=True)))
        return self.device_lists(user_id, since, until)

    def device_lists(
        self, user_id: str, since: SyncToken, now: SyncToken
    ) -> tuple[list[str], list[str]]:
        """(changed, left) between two sync tokens, as seen by ``user_id``."""
        conn = self.ctx.conn
        streams = self.ctx.stream_names
        users = streams.index(USERS_STREAM)
        key_changed = q.users_with_device_changes(
            conn, since.positions[users], now.positions[users]
        )
        changes: list[e2ee.MemberChange] = []
        members: dict[str, set[str]] = {}
        for room_id, stream in q.user_rooms(conn, user_id):
            i = streams.index(stream)
            if since.positions[i] >= now.positions[i]:
                continue
            window = q.member_changes(conn, room_id, since.positions[i], now.positions[i])
            changes += window
            if any(c.user_id == user_id for c in window):
                members[room_id] = q.room_members(conn, room_id)
        if not key_changed and not changes:
            return [], []  # the common case: skip computing who shares a room
        return e2ee.device_list_delta(
            user_id, q.sharing_users(conn, user_id), key_changed, changes, members
        )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class E2eeSync(SyncExtensionBase):
    """The top-level /sync keys for encryption: to_device, device_lists, key counts."""

    def __init__(self, keys: Keys, to_device: ToDevice) -> None:
        self.keys = keys
        self.to_device = to_device

    def top_extras(
        self, user_id: str, device_id: str, since: SyncToken | None, now: SyncToken
    ) -> dict[str, Any]:
        conn = self.keys.ctx.conn
        users = self.keys.ctx.stream_names.index(USERS_STREAM)
        after = since.positions[users] if since is not None else None
        changed: list[str] = []
        left: list[str] = []
        if since is not None:  # an initial sync has no "since": nothing has changed for it
            changed, left = self.keys.device_lists(user_id, since, now)
        return {
            "to_device": self.to_device.pending(user_id, device_id, after, now.positions[users]),
            "device_lists": {"changed": changed, "left": left},
            "device_one_time_keys_count": self.keys.counts(user_id, device_id),
            "device_unused_fallback_key_types": q.unused_fallback_types(conn, user_id, device_id),
        }


def install(services: Services) -> None:
    """Register the keys and to-device services and their /sync extension."""
    keys = Keys(services.ctx)
    to_device = ToDevice(services.ctx)
    services.features["keys"] = keys
    services.features["to_device"] = to_device
    services.ctx.extensions.sync.append(E2eeSync(keys, to_device))
    services.ctx.extensions.on_stop.append(to_device.stop)
