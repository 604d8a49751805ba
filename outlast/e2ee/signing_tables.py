"""View tables, log handlers and reads for cross-signing keys and their signatures.

Both ops live on the owner's (for signatures: the signer's) cross-signing
subject. Invariants:

- ``e2e_cross_signing_keys`` holds at most one key per (user, usage): the
  latest upload replaces the previous key of that usage.
- ``e2e_cross_signing_subjects`` holds, per user, the sequence of the last
  fact on their cross-signing subject this view applied. A key upload is
  fenced on it, so two uploads (any worker, any site) cannot both be decided
  against the same old keys (e.g. both skip user-interactive auth as "first").
- A signature is stored only if, when it is applied, its signing key is the
  signer's current key for that purpose and its target still exists: the
  writer checked it against its view, and every projector checks it again at
  its place in the log, so all views keep the same signatures.
- A signature made by a key that has been replaced, on a master key that has
  been replaced, or on or by a device that is gone is deleted with it (for a
  device: :func:`forget_device_signatures`, from ``devices_gone``).
- A key upload or a signature counts as a device-list change of the key's
  owner (recorded like device changes, in ``device_list_changes``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from outlast.e2ee.tables import record_device_change
from outlast.log.client import LogMessage
from outlast.log.facts import CrossSigningKeysSet, SignaturesMade
from outlast.view.queries import has_device

USAGES = ("master", "self_signing", "user_signing")
DEVICE = "device"
MASTER = "master"

SCHEMA = """
CREATE TABLE IF NOT EXISTS e2e_cross_signing_keys (
    user_id TEXT NOT NULL, usage TEXT NOT NULL, key_id TEXT NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY (user_id, usage)
);
CREATE TABLE IF NOT EXISTS e2e_cross_signing_subjects (
    user_id TEXT PRIMARY KEY, seq INTEGER NOT NULL
);
-- kind 'device': target is a device id of target_user; kind 'master': target is the
-- public part of target_user's master key. signer_key_id is e.g. 'ed25519:<public key>'.
CREATE TABLE IF NOT EXISTS e2e_cross_signatures (
    target_user TEXT NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL,
    signer TEXT NOT NULL, signer_key_id TEXT NOT NULL, signature TEXT NOT NULL,
    PRIMARY KEY (target_user, kind, target, signer, signer_key_id)
);
CREATE INDEX IF NOT EXISTS e2e_cross_signatures_by_signer
    ON e2e_cross_signatures (signer, signer_key_id);
"""


def public_part(key_id: str) -> str:
    """``ed25519:<public key>`` -> ``<public key>``."""
    return key_id.partition(":")[2]


# ---- reads (used by the keys service and by the handlers below) ---------------------


def subject_seq(conn: sqlite3.Connection, user_id: str) -> int:
    """Sequence of the last fact on the user's cross-signing subject this view applied."""
    row = conn.execute(
        "SELECT seq FROM e2e_cross_signing_subjects WHERE user_id = ?", (user_id,)
    ).fetchone()
    return int(row[0]) if row else 0


def stored_keys(conn: sqlite3.Connection, user_id: str) -> dict[str, tuple[str, str]]:
    """usage -> (key id, key JSON as stored) of the user's current cross-signing keys."""
    rows = conn.execute(
        "SELECT usage, key_id, json FROM e2e_cross_signing_keys WHERE user_id = ?", (user_id,)
    )
    return {str(r[0]): (str(r[1]), str(r[2])) for r in rows}


def key_id(conn: sqlite3.Connection, user_id: str, usage: str) -> str | None:
    row = conn.execute(
        "SELECT key_id FROM e2e_cross_signing_keys WHERE user_id = ? AND usage = ?",
        (user_id, usage),
    ).fetchone()
    return str(row[0]) if row else None


def published_device_keys(conn: sqlite3.Connection, user_id: str, device_id: str) -> str | None:
    """The device's identity keys as uploaded (JSON), if the device lives and published them."""
    row = conn.execute(
        "SELECT k.json FROM e2e_device_keys k JOIN devices d"
        " ON d.user_id = k.user_id AND d.device_id = k.device_id"
        " WHERE k.user_id = ? AND k.device_id = ?",
        (user_id, device_id),
    ).fetchone()
    return str(row[0]) if row else None


def signatures(
    conn: sqlite3.Connection, target_user: str, kind: str
) -> dict[str, dict[str, dict[str, str]]]:
    """target -> {signer: {signer key id: signature}} of the user's devices or master key."""
    rows = conn.execute(
        "SELECT target, signer, signer_key_id, signature FROM e2e_cross_signatures"
        " WHERE target_user = ? AND kind = ?",
        (target_user, kind),
    )
    found: dict[str, dict[str, dict[str, str]]] = {}
    for target, signer, signer_key_id, signature in rows:
        found.setdefault(str(target), {}).setdefault(str(signer), {})[str(signer_key_id)] = str(
            signature
        )
    return found


def signer_key_valid(
    conn: sqlite3.Connection, signer: str, target_user: str, kind: str, target: str, by: str
) -> bool:
    """May ``signer``'s key ``by`` sign this target now? (The rule of signatures/upload.)

    - a device of the signer's own: by the signer's self-signing key;
    - the signer's own master key: by one of the signer's devices (``ed25519:<device>``);
    - another user's master key: by the signer's user-signing key.
    """
    if kind == DEVICE:
        return (
            target_user == signer
            and published_device_keys(conn, signer, target) is not None
            and by == key_id(conn, signer, "self_signing")
        )
    if kind != MASTER:
        return False
    master = key_id(conn, target_user, "master")
    if master is None or public_part(master) != target:
        return False
    if target_user == signer:
        algorithm, _, device_id = by.partition(":")
        return algorithm == "ed25519" and has_device(conn, signer, device_id)
    return by == key_id(conn, signer, "user_signing")


# ---- log handlers --------------------------------------------------------------------


def _record_subject(conn: sqlite3.Connection, user_id: str, seq: int) -> None:
    conn.execute(
        "INSERT INTO e2e_cross_signing_subjects (user_id, seq) VALUES (?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET seq = excluded.seq",
        (user_id, seq),
    )


def apply_keys(conn: sqlite3.Connection, msg: LogMessage, fact: CrossSigningKeysSet) -> set[str]:
    """New cross-signing keys of one user: ``{usage: key}``, already checked."""
    user_id = fact.user_id
    _record_subject(conn, user_id, msg.seq)
    changed = False
    for usage, key in fact.keys.items():
        if usage not in USAGES or not isinstance(key, dict) or not key.get("keys"):
            continue
        new_id = str(next(iter(key["keys"])))
        raw = json.dumps(key, sort_keys=True)
        old_id = key_id(conn, user_id, usage)
        conn.execute(
            "INSERT INTO e2e_cross_signing_keys (user_id, usage, key_id, json) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id, usage) DO UPDATE SET key_id = excluded.key_id,"
            " json = excluded.json",
            (user_id, usage, new_id, raw),
        )
        changed = True
        if old_id is not None and old_id != new_id:
            # What the old key signed, and what was signed on an old master key, is gone.
            conn.execute(
                "DELETE FROM e2e_cross_signatures WHERE signer = ? AND signer_key_id = ?",
                (user_id, old_id),
            )
            if usage == "master":
                conn.execute(
                    "DELETE FROM e2e_cross_signatures WHERE target_user = ? AND kind = ?"
                    " AND target = ?",
                    (user_id, MASTER, public_part(old_id)),
                )
    if not changed:
        return set()
    return record_device_change(conn, user_id, msg.seq)


def apply_signatures(conn: sqlite3.Connection, msg: LogMessage, fact: SignaturesMade) -> set[str]:
    """Signatures one user made: ``[{user_id, kind, target, key_id, signature}]``, each
    re-checked here against the keys at this place in the log."""
    signer = fact.user_id
    _record_subject(conn, signer, msg.seq)
    affected: set[str] = set()
    owners: set[str] = set()
    for item in fact.signatures:
        if not isinstance(item, dict):
            continue
        fields = [item.get(k) for k in ("user_id", "kind", "target", "key_id", "signature")]
        if not all(isinstance(v, str) for v in fields):
            continue
        target_user, kind, target, by, signature = (str(v) for v in fields)
        if not signer_key_valid(conn, signer, target_user, kind, target, by):
            continue  # the keys changed between the writer's check and this place in the log
        conn.execute(
            "INSERT OR REPLACE INTO e2e_cross_signatures"
            " (target_user, kind, target, signer, signer_key_id, signature)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (target_user, kind, target, signer, by, signature),
        )
        owners.add(target_user)
    for owner in sorted(owners):
        affected |= record_device_change(conn, owner, msg.seq)
    return affected | ({signer} if owners else set())


def cross_signing_keys(conn: sqlite3.Connection, user_id: str) -> dict[str, dict[str, Any]]:
    """usage -> the user's current cross-signing key as uploaded (signatures not merged)."""
    return {usage: json.loads(raw) for usage, (_, raw) in stored_keys(conn, user_id).items()}


def forget_device_signatures(conn: sqlite3.Connection, user_id: str, device_id: str) -> None:
    """A device is gone: signatures on it, and those it made, go with it."""
    conn.execute(
        "DELETE FROM e2e_cross_signatures WHERE target_user = ? AND kind = ? AND target = ?",
        (user_id, DEVICE, device_id),
    )
    conn.execute(
        "DELETE FROM e2e_cross_signatures WHERE signer = ? AND signer_key_id = ?",
        (user_id, f"ed25519:{device_id}"),
    )
