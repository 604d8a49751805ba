"""End-to-end keys: upload, query, claim, changes, cross-signing, and the E2EE parts of /sync.

All facts about one device's keys (identity keys, one-time keys, fallback
keys, claims) go to one literal subject, ``<user keys subject>.<device>``.
A claim is appended with JetStream's expected-last-subject-sequence set to
the last fact on that subject the claimer's view has applied, after choosing
an unclaimed key from that same view. If anything reached the subject in
between (another claim at any site or worker, an upload), the fence fails
and the claimer catches up and chooses again, so a one-time key is handed
out at most once. Fallback keys may be handed out repeatedly; marking one
used needs no fence.

Cross-signing keys and the signatures a user uploads go to the user's
cross-signing subject; key uploads are fenced on it the same way (see
``upload_signing_keys``). Signatures are checked for presence and for who may
sign what, not verified cryptographically (the server has no ed25519 library).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from typing import Any

from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core import e2ee
from outlast.core.errors import MatrixError, bad_json, forbidden, invalid_param, unavailable
from outlast.core.ids import is_user_id, parse_user_id
from outlast.core.tokens import SyncToken, parse_sync_token
from outlast.e2ee import queries as q
from outlast.e2ee import signing_tables as xs
from outlast.e2ee.to_device import ToDevice
from outlast.log.client import Ack, FenceBusy, FenceFailed, LogUnavailable
from outlast.log.facts import (
    CrossSigningKeysSet,
    Fact,
    KeyClaimed,
    KeysUploaded,
    SignaturesMade,
)
from outlast.sync import queries as sync_queries
from outlast.sync.window import NothingPerRoom, SyncWindow
from outlast.view import queries

CLAIM_BUDGET_SECONDS = 10.0
SIGNING_UPLOAD_BUDGET_SECONDS = 10.0
MAX_CROSS_SIGNING_KEY_BYTES = 16 * 1024
# The body fields of /keys/device_signing/upload and the usage each key must carry.
SIGNING_KEY_FIELDS = {
    "master_key": "master",
    "self_signing_key": "self_signing",
    "user_signing_key": "user_signing",
}
DEFAULT_OTK_ALGORITHM = "signed_curve25519"


class Keys:
    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx

    def _local(self, user_id: str) -> bool:
        return parse_user_id(user_id)[1] == self.ctx.server_name

    async def upload(self, who: Requester, body: dict[str, Any]) -> dict[str, int]:
        """Publish what is new; return the device's unclaimed one-time-key counts."""
        conn, user, device = self.ctx.conn, who.user_id, who.device_id
        device_keys: dict[str, Any] | None = None
        if body.get("device_keys") is not None:
            keys = e2ee.check_device_keys(body["device_keys"], user, device)
            if q.stored_device_keys(conn, user, device) != _canonical(keys):
                device_keys = keys
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
        fallbacks = e2ee.check_fallback_keys(body.get("fallback_keys"))
        fact = KeysUploaded(user, device, device_keys, new_otks or None, fallbacks or None)
        if fact.changes_anything():  # something new to publish
            ack = await self.ctx.log.append(self.ctx.names.device_keys_subject(user, device), fact)
            await self.ctx.applied(ack)
        return self.counts(user, device)

    def counts(self, user_id: str, device_id: str) -> dict[str, int]:
        counts = q.key_counts(self.ctx.conn, user_id, device_id)
        counts.setdefault(DEFAULT_OTK_ALGORITHM, 0)  # clients treat a missing count as unknown
        return counts

    def query(self, wanted: Any, requester: str | None = None) -> dict[str, Any]:
        """Identity keys of the requested users' devices, with their cross-signing keys.

        Device keys carry the signatures their owner's self-signing key made;
        a master key carries its owner's devices' signatures and the
        requester's own user-signing signature. A user-signing key is shown
        only to its owner.
        """
        conn = self.ctx.conn
        found: dict[str, Any] = {}
        masters: dict[str, Any] = {}
        self_signing: dict[str, Any] = {}
        user_signing: dict[str, Any] = {}
        for user_id, device_ids in e2ee.check_queries(wanted).items():
            if not self._local(user_id):
                continue
            devices = q.device_keys(conn, user_id, device_ids)
            device_sigs = xs.signatures(conn, user_id, xs.DEVICE)
            for device_id, keys in devices.items():
                _merge_signatures(keys, device_sigs.get(device_id, {}))
            found[user_id] = devices
            cross = xs.cross_signing_keys(conn, user_id)
            master = cross.get("master")
            if master is not None:
                on_master = xs.signatures(conn, user_id, xs.MASTER).get(
                    xs.public_part(next(iter(master["keys"]))), {}
                )
                visible = {s: v for s, v in on_master.items() if s in (user_id, requester)}
                _merge_signatures(master, visible)
                masters[user_id] = master
            if "self_signing" in cross:
                self_signing[user_id] = cross["self_signing"]
            if "user_signing" in cross and user_id == requester:
                user_signing[user_id] = cross["user_signing"]
        return {
            "failures": {},
            "device_keys": found,
            "master_keys": masters,
            "self_signing_keys": self_signing,
            "user_signing_keys": user_signing,
        }

    async def upload_signing_keys(
        self, user_id: str, body: dict[str, Any], authenticate: Callable[[], Awaitable[None]]
    ) -> None:
        """POST /keys/device_signing/upload.

        User-interactive auth (``authenticate``, which raises the 401 challenge
        or a failed attempt) is needed unless the user has no master key yet
        or the request holds no new key (a retried upload). The upload is
        fenced on the user's cross-signing subject at the state the decision
        saw, so two concurrent "first" uploads cannot both skip auth.
        """
        conn = self.ctx.conn
        wanted = {
            usage: check_cross_signing_key(body[field], user_id, usage)
            for field, usage in SIGNING_KEY_FIELDS.items()
            if body.get(field) is not None
        }
        subject = self.ctx.names.cross_signing_subject(user_id)
        authenticated = False
        clock = self.ctx.clock
        deadline = clock.monotonic() + SIGNING_UPLOAD_BUDGET_SECONDS
        while clock.monotonic() < deadline:
            # One synchronous read of the view: the fence and the decision agree.
            seen = xs.subject_seq(conn, user_id)
            stored = xs.stored_keys(conn, user_id)
            _check_signed_by_master(user_id, wanted, stored)
            in_use = queries.device_ids(conn, user_id)
            for key in wanted.values():
                if xs.public_part(next(iter(key["keys"]))) in in_use:
                    raise forbidden("a cross-signing key's public key is one of your device ids")
            new = {
                usage: key
                for usage, key in wanted.items()
                if stored.get(usage, ("", ""))[1] != _canonical(key)
            }
            if not new:
                return  # nothing new (or a retry of an upload that committed): no auth needed
            if "master" in stored and not authenticated:
                await authenticate()
                authenticated = True
                continue  # auth took a while: decide again against a fresh view
            fact = CrossSigningKeysSet(user_id, new)
            ack = await self._fenced_append(subject, fact, seen)
            if ack is None:
                continue
            await self.ctx.applied(ack)
            return
        raise unavailable("cross-signing keys are changing too fast; retry")

    async def upload_signatures(self, signer: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /keys/signatures/upload: ``{user_id: {key_id: signed object}}``.

        Accepted: the signer's own devices signed by their self-signing key,
        their own master key signed by one of their devices, and another local
        user's master key signed by their user-signing key. Anything else is
        reported in ``failures``; the rest is stored.
        """
        if sum(len(v) for v in body.values() if isinstance(v, dict)) > e2ee.MAX_KEYS_PER_UPLOAD:
            raise invalid_param("too many signed objects in one upload")
        failures: dict[str, dict[str, Any]] = {}
        items: list[dict[str, str]] = []
        for target_user, objects in body.items():
            if not isinstance(objects, dict):
                raise bad_json("the body must map user ids to {key_id: signed object}")
            for key_id, signed in objects.items():
                try:
                    items += self._signature_items(signer, target_user, key_id, signed)
                except MatrixError as exc:
                    failures.setdefault(target_user, {})[key_id] = {
                        "errcode": exc.errcode,
                        "error": exc.error,
                    }
        if items:
            fact = SignaturesMade(signer, tuple(items))
            ack = await self.ctx.log.append(self.ctx.names.cross_signing_subject(signer), fact)
            await self.ctx.applied(ack)
        return {"failures": failures}

    def _signature_items(
        self, signer: str, target_user: str, key_id: str, signed: Any
    ) -> list[dict[str, str]]:
        """The signatures in one signed object that ``signer`` may publish; raises why not."""
        conn = self.ctx.conn
        if not isinstance(signed, dict):
            raise bad_json("a signed object must be an object")
        if not is_user_id(target_user) or not self._local(target_user):
            raise MatrixError(404, "M_NOT_FOUND", "unknown user")
        stored: str | None = None
        kind = xs.DEVICE
        if target_user == signer:
            stored = xs.published_device_keys(conn, signer, key_id)
        if stored is None:
            kind = xs.MASTER
            master = xs.stored_keys(conn, target_user).get("master")
            if master is not None and xs.public_part(master[0]) == key_id:
                stored = master[1]
        if stored is None:
            raise MatrixError(404, "M_NOT_FOUND", "no such device or master key")
        if _signed_part(signed) != _signed_part(json.loads(stored)):
            raise invalid_param("the object does not match the published key")
        sigs = signed.get("signatures")
        mine = sigs.get(signer) if isinstance(sigs, dict) else None
        items = [
            {
                "user_id": target_user,
                "kind": kind,
                "target": key_id,
                "key_id": by,
                "signature": signature,
            }
            for by, signature in (mine.items() if isinstance(mine, dict) else ())
            if isinstance(signature, str)
            and 0 < len(signature) <= e2ee.MAX_ID
            and xs.signer_key_valid(conn, signer, target_user, kind, key_id, by)
        ]
        if not items:
            raise MatrixError(
                400, "M_INVALID_SIGNATURE", "not signed by a key of yours that may sign it"
            )
        return items

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
        conn = self.ctx.conn
        subject = self.ctx.names.device_keys_subject(user_id, device_id)
        clock = self.ctx.clock
        deadline = clock.monotonic() + CLAIM_BUDGET_SECONDS
        while clock.monotonic() < deadline:
            # Read the fence and the choice in one synchronous step: one view state.
            seen = q.key_subject_seq(conn, user_id, device_id)
            otk = q.next_one_time_key(conn, user_id, device_id, algorithm)
            if otk is None:
                return await self._claim_fallback(user_id, device_id, algorithm)
            key_id, key = otk
            fact = KeyClaimed(user_id, device_id, algorithm, key_id)
            ack = await self._fenced_append(subject, fact, seen)
            if ack is None:
                continue
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
            fact = KeyClaimed(user_id, device_id, algorithm, key_id, fallback=True)
            await self.ctx.log.append(self.ctx.names.device_keys_subject(user_id, device_id), fact)
        return {f"{algorithm}:{key_id}": key}

    async def _fenced_append(self, subject: str, fact: Fact, seen: int) -> Ack | None:
        """Append ``fact`` only if ``seen`` is still the subject's last sequence.

        None when the fence was busy or lost: the caller decides again (after
        a short pause, or once this view has caught up with the subject)."""
        try:
            return await self.ctx.log.append(subject, fact, expected_seq=seen)
        except FenceBusy:
            await self.ctx.clock.sleep(random.uniform(0.002, 0.02))
        except FenceFailed:
            await self._catch_up_subject(subject)
        return None

    async def _catch_up_subject(self, subject: str) -> None:
        """Wait until this view has applied the subject's latest fact."""
        try:
            last = await self.ctx.log.last_subject_seq(self.ctx.names.users_stream, subject)
        except LogUnavailable:
            await self.ctx.clock.sleep(0.05)
            return
        await self.ctx.positions.wait_for(self.ctx.names.users_stream, last, 2.0)

    async def changes(self, user_id: str, start: str, end: str) -> tuple[list[str], list[str]]:
        """GET /keys/changes: device-list changes between two sync tokens."""
        count = len(self.ctx.stream_names)
        since, until = parse_sync_token(start, count), parse_sync_token(end, count)
        await self.ctx.reach(until.positions)
        now = self.ctx.positions.snapshot(self.ctx.stream_names)
        until = SyncToken(tuple(min(a, b) for a, b in zip(until.positions, now, strict=True)))
        return self.device_lists(user_id, since, until)

    def device_lists(
        self,
        user_id: str,
        since: SyncToken,
        now: SyncToken,
        evented: AbstractSet[str] | None = None,
    ) -> tuple[list[str], list[str]]:
        """(changed, left) between two sync tokens, as seen by ``user_id``.

        ``evented``: the user's rooms with any room event between the tokens (None:
        unknown; it may hold rooms the user is not in). A membership change is a room
        event, so no other room of the user is read."""
        conn = self.ctx.conn
        streams = self.ctx.stream_names
        users = streams.index(self.ctx.names.users_stream)
        key_changed = q.users_with_device_changes(
            conn, since.positions[users], now.positions[users]
        )
        changes: list[e2ee.MemberChange] = []
        members: dict[str, set[str]] = {}
        if evented is None:
            rooms = queries.user_rooms(conn, user_id)
        else:
            among = sync_queries.memberships_among(conn, user_id, evented)
            rooms = [(str(r["room_id"]), str(r["stream"])) for r in among]
        for room_id, stream in rooms:
            i = streams.index(stream)
            if since.positions[i] >= now.positions[i]:
                continue
            if evented is not None and room_id not in evented:
                continue
            window = queries.member_changes(conn, room_id, since.positions[i], now.positions[i])
            changes += window
            if any(c.user_id == user_id for c in window):
                members[room_id] = queries.room_members(conn, room_id)
        if not key_changed and not changes:
            return [], []  # the common case: skip computing who shares a room
        return e2ee.device_list_delta(
            user_id, queries.sharing_users(conn, user_id), key_changed, changes, members
        )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _signed_part(value: dict[str, Any]) -> str:
    """A key object as it is signed: without ``signatures`` and ``unsigned``."""
    return _canonical({k: v for k, v in value.items() if k not in ("signatures", "unsigned")})


def _merge_signatures(key: dict[str, Any], extra: dict[str, dict[str, str]]) -> None:
    if not extra:
        return
    sigs = key.get("signatures")
    merged: dict[str, Any] = dict(sigs) if isinstance(sigs, dict) else {}
    for signer, by_key in extra.items():
        own = merged.get(signer)
        merged[signer] = {**(own if isinstance(own, dict) else {}), **by_key}
    key["signatures"] = merged


def _is_signature_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(by_key, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in by_key.items())
        for by_key in value.values()
    )


def check_cross_signing_key(value: Any, user_id: str, usage: str) -> dict[str, Any]:
    """A CrossSigningKey (spec: definitions/cross_signing_key.yaml) for ``usage``.

    It must be the requester's, carry the usage, and hold exactly one ed25519
    key whose id is ``ed25519:<public key>`` and whose value is that public key.
    """
    if not isinstance(value, dict):
        raise bad_json(f"the {usage} key must be an object")
    if not isinstance(value.get("user_id"), str):
        raise bad_json(f"the {usage} key needs a user_id")
    if value["user_id"] != user_id:
        raise forbidden("you may only upload your own cross-signing keys")
    usages = value.get("usage")
    if not isinstance(usages, list) or not all(isinstance(u, str) for u in usages):
        raise bad_json(f"the {usage} key's usage must be a list of strings")
    if usage not in usages:
        raise invalid_param(f"the {usage} key's usage must include {usage!r}")
    keys = value.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        raise invalid_param(f"the {usage} key must hold exactly one key")
    ((key_id, public),) = keys.items()
    algorithm, _, ident = key_id.partition(":")
    if algorithm != "ed25519" or not ident or len(key_id) > e2ee.MAX_ID or public != ident:
        raise invalid_param(f"the {usage} key must be 'ed25519:<public key>': <public key>")
    if "signatures" in value and not _is_signature_map(value["signatures"]):
        raise bad_json(f"the {usage} key's signatures must map users to {{key id: signature}}")
    if len(_canonical(value)) > MAX_CROSS_SIGNING_KEY_BYTES:
        raise invalid_param(f"the {usage} key is too large")
    return value


def _check_signed_by_master(
    user_id: str, wanted: dict[str, dict[str, Any]], stored: dict[str, tuple[str, str]]
) -> None:
    """Self-signing and user-signing keys must carry a signature by the master key:
    the one in the same upload, else the current one. (Signatures are not verified.)"""
    subkeys = [usage for usage in ("self_signing", "user_signing") if usage in wanted]
    if not subkeys:
        return
    if "master" in wanted:
        master_id: str = next(iter(wanted["master"]["keys"]))
    elif "master" in stored:
        master_id = stored["master"][0]
    else:
        raise MatrixError(400, "M_MISSING_PARAM", "no master key is available")
    for usage in subkeys:
        by_user = (wanted[usage].get("signatures") or {}).get(user_id) or {}
        if not isinstance(by_user.get(master_id), str):
            raise MatrixError(
                400, "M_INVALID_SIGNATURE", f"the {usage} key must be signed by the master key"
            )


class E2eeSync(NothingPerRoom):
    """The top-level /sync keys for encryption: to_device, device_lists, key counts."""

    def __init__(self, keys: Keys, to_device: ToDevice) -> None:
        self.keys = keys
        self.to_device = to_device

    def top_extras(self, window: SyncWindow) -> dict[str, Any]:
        conn = self.keys.ctx.conn
        user_id, device_id = window.user_id, window.device_id
        users = self.keys.ctx.names.users_stream
        changed: list[str] = []
        left: list[str] = []
        if window.since is not None:  # an initial sync has no "since": nothing changed for it
            changed, left = self.keys.device_lists(
                user_id, window.since, window.now, window.evented
            )
        pending = self.to_device.pending(
            user_id, device_id, window.after(users), window.upto(users)
        )
        return {
            "to_device": pending,
            "device_lists": {"changed": changed, "left": left},
            "device_one_time_keys_count": self.keys.counts(user_id, device_id),
            "device_unused_fallback_key_types": q.unused_fallback_types(conn, user_id, device_id),
        }
