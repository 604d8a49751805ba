"""The view's accounts: users, their devices, and their access tokens (as SHA-256 hashes).

This module is the only writer of ``users``, ``devices`` and ``tokens``. A
device and its token come with a registration or login and go with a logout,
a password change that logs other devices out, a deactivation or a deletion;
every way a device goes returns its id, so the projector can tell the e2ee
tables to drop what hung on it (outlast/view/apply.py wires that).
"""

from __future__ import annotations

import sqlite3

from outlast.core.refresh import RefreshRecord
from outlast.log.client import LogMessage
from outlast.log.facts import (
    Admin,
    Deactivate,
    DeviceRenamed,
    DevicesDeleted,
    DeviceSeen,
    Login,
    Logout,
    LogoutAll,
    NewDevice,
    OpenIdTokenIssued,
    Password,
    RefreshSpent,
    Register,
    TokenRefreshed,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY, password_hash TEXT, deactivated INTEGER NOT NULL DEFAULT 0,
    admin INTEGER NOT NULL DEFAULT 0, created_ts INTEGER NOT NULL, account_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, display_name TEXT,
    created_ts INTEGER, PRIMARY KEY (user_id, device_id)
);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, device_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_by_device ON tokens (user_id, device_id);
CREATE TABLE IF NOT EXISTS device_seen (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, ip TEXT, ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
);
CREATE TABLE IF NOT EXISTS token_expiry (
    token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, device_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL, refresh_hash TEXT NOT NULL, parent_refresh TEXT
);
CREATE INDEX IF NOT EXISTS token_expiry_by_device ON token_expiry (user_id, device_id);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    refresh_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, device_id TEXT NOT NULL,
    expires_at INTEGER, successor TEXT
);
CREATE INDEX IF NOT EXISTS refresh_by_device ON refresh_tokens (user_id, device_id);
CREATE INDEX IF NOT EXISTS refresh_by_successor ON refresh_tokens (successor);
CREATE TABLE IF NOT EXISTS openid_tokens (
    token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, expires_at INTEGER NOT NULL
);
"""

# Devices that went away in one fact: (user, device ids).
Gone = tuple[str, list[str]]


def apply_register(conn: sqlite3.Connection, msg: LogMessage, fact: Register) -> set[str]:
    conn.execute(
        "INSERT OR IGNORE INTO users (user_id, password_hash, created_ts, account_seq, admin)"
        " VALUES (?, ?, ?, ?, ?)",
        (fact.user_id, fact.password_hash, fact.ts, msg.seq, int(fact.admin)),
    )
    if fact.device is not None:
        _add_device(conn, fact.user_id, fact.device, fact.ts)
    return {fact.user_id}


def apply_login(conn: sqlite3.Connection, fact: Login) -> set[str]:
    _add_device(conn, fact.user_id, fact.device, fact.ts)
    return {fact.user_id}


def _add_device(conn: sqlite3.Connection, user_id: str, device: NewDevice, ts: int) -> None:
    # A login that reuses a device id replaces that device's old tokens, refresh tokens too.
    conn.execute(
        "DELETE FROM tokens WHERE user_id = ? AND device_id = ?", (user_id, device.device_id)
    )
    _drop_refreshable(conn, user_id, device.device_id)
    if device.refresh_hash is not None and device.expires_at is not None:
        _add_pair(
            conn,
            user_id,
            device.device_id,
            (device.token_hash, device.expires_at),
            (device.refresh_hash, device.refresh_expires_at),
            None,
        )
    conn.execute(
        "INSERT INTO devices (user_id, device_id, display_name, created_ts) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id, device_id) DO UPDATE SET display_name ="
        " COALESCE(excluded.display_name, devices.display_name)",
        (user_id, device.device_id, device.display_name, ts),
    )
    conn.execute(
        "INSERT OR REPLACE INTO tokens (token_hash, user_id, device_id) VALUES (?, ?, ?)",
        (device.token_hash, user_id, device.device_id),
    )


def _drop_refreshable(conn: sqlite3.Connection, user_id: str, device_id: str) -> None:
    """A device's access-token expiries and refresh tokens (its tokens go elsewhere)."""
    for table in ("token_expiry", "refresh_tokens"):
        conn.execute(
            f"DELETE FROM {table} WHERE user_id = ? AND device_id = ?", (user_id, device_id)
        )


def _add_pair(
    conn: sqlite3.Connection,
    user_id: str,
    device_id: str,
    access: tuple[str, int],
    refresh: tuple[str, int | None],
    parent: str | None,
) -> None:
    """An expiring access token and its refresh token (``parent``: the refresh token
    traded for them, spent once they are used)."""
    conn.execute(
        "INSERT OR REPLACE INTO tokens (token_hash, user_id, device_id) VALUES (?, ?, ?)",
        (access[0], user_id, device_id),
    )
    conn.execute(
        "INSERT OR REPLACE INTO token_expiry"
        " (token_hash, user_id, device_id, expires_at, refresh_hash, parent_refresh)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (access[0], user_id, device_id, access[1], refresh[0], parent),
    )
    conn.execute(
        "INSERT OR REPLACE INTO refresh_tokens (refresh_hash, user_id, device_id, expires_at)"
        " VALUES (?, ?, ?, ?)",
        (refresh[0], user_id, device_id, refresh[1]),
    )


def apply_token_refreshed(conn: sqlite3.Connection, fact: TokenRefreshed) -> set[str]:
    """The new pair replaces the device's access tokens (the old one ends at once, as the
    spec allows); the old refresh token stays until the new pair is used, but the pair it
    issued before (a refresh whose answer the client never got) ends now. A refresh
    token revoked meanwhile (logout, device deletion) issues nothing."""
    row = conn.execute(
        "SELECT successor FROM refresh_tokens WHERE refresh_hash = ? AND user_id = ?"
        " AND device_id = ?",
        (fact.old_refresh_hash, fact.user_id, fact.device_id),
    ).fetchone()
    if row is None:
        return set()
    if row[0] is not None:
        conn.execute("DELETE FROM refresh_tokens WHERE refresh_hash = ?", (row[0],))
    # Using a refresh token spends the one it was issued from.
    conn.execute("DELETE FROM refresh_tokens WHERE successor = ?", (fact.old_refresh_hash,))
    conn.execute(
        "DELETE FROM tokens WHERE user_id = ? AND device_id = ?", (fact.user_id, fact.device_id)
    )
    conn.execute(
        "DELETE FROM token_expiry WHERE user_id = ? AND device_id = ?",
        (fact.user_id, fact.device_id),
    )
    conn.execute(
        "UPDATE refresh_tokens SET successor = ? WHERE refresh_hash = ?",
        (fact.refresh_hash, fact.old_refresh_hash),
    )
    _add_pair(
        conn,
        fact.user_id,
        fact.device_id,
        (fact.token_hash, fact.expires_at),
        (fact.refresh_hash, fact.refresh_expires_at),
        fact.old_refresh_hash,
    )
    return set()


def apply_refresh_spent(conn: sqlite3.Connection, fact: RefreshSpent) -> set[str]:
    """The refresh token goes if ``successor`` is still the pair it last issued."""
    conn.execute(
        "DELETE FROM refresh_tokens WHERE refresh_hash = ? AND user_id = ? AND successor = ?",
        (fact.refresh_hash, fact.user_id, fact.successor),
    )
    conn.execute(
        "UPDATE token_expiry SET parent_refresh = NULL WHERE parent_refresh = ?"
        " AND refresh_hash = ?",
        (fact.refresh_hash, fact.successor),
    )
    return set()


def refresh_record(conn: sqlite3.Connection, refresh_hash: str) -> RefreshRecord | None:
    """A stored refresh token of an account that is still active."""
    row = conn.execute(
        "SELECT r.user_id, r.device_id, r.expires_at, r.successor FROM refresh_tokens r"
        " JOIN users u ON u.user_id = r.user_id WHERE r.refresh_hash = ? AND u.deactivated = 0",
        (refresh_hash,),
    ).fetchone()
    return RefreshRecord(str(row[0]), str(row[1]), row[2], row[3]) if row else None


def token_expiry(conn: sqlite3.Connection, token_hash: str) -> tuple[int, str, str | None] | None:
    """An expiring access token's expiry, its pair's refresh token, and the refresh
    token it was traded for while that one is not yet spent."""
    row = conn.execute(
        "SELECT expires_at, refresh_hash, parent_refresh FROM token_expiry WHERE token_hash = ?",
        (token_hash,),
    ).fetchone()
    return (int(row[0]), str(row[1]), row[2]) if row else None


def _remove(conn: sqlite3.Connection, user_id: str, device_ids: list[str]) -> list[str]:
    """Delete devices and their tokens; the ids of the devices that existed."""
    gone = []
    for device_id in device_ids:
        _drop_refreshable(conn, user_id, device_id)
        conn.execute("DELETE FROM tokens WHERE user_id = ? AND device_id = ?", (user_id, device_id))
        conn.execute(
            "DELETE FROM device_seen WHERE user_id = ? AND device_id = ?", (user_id, device_id)
        )
        deleted = conn.execute(
            "DELETE FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)
        ).rowcount
        if deleted:
            gone.append(device_id)
    return gone


def _remove_all(conn: sqlite3.Connection, user_id: str, keep: str | None = None) -> list[str]:
    """Every device of the user but ``keep``, with every token (those of devices long gone too)."""
    device_ids = [
        str(r[0])
        for r in conn.execute(
            "SELECT device_id FROM devices WHERE user_id = ? AND device_id IS NOT ?",
            (user_id, keep),
        )
    ]
    conn.execute("DELETE FROM tokens WHERE user_id = ? AND device_id IS NOT ?", (user_id, keep))
    for table in ("token_expiry", "refresh_tokens"):
        conn.execute(
            f"DELETE FROM {table} WHERE user_id = ? AND device_id IS NOT ?", (user_id, keep)
        )
    conn.execute("DELETE FROM devices WHERE user_id = ? AND device_id IS NOT ?", (user_id, keep))
    conn.execute(
        "DELETE FROM device_seen WHERE user_id = ? AND device_id IS NOT ?", (user_id, keep)
    )
    return device_ids


def apply_logout(conn: sqlite3.Connection, fact: Logout) -> Gone:
    row = conn.execute(
        "SELECT device_id FROM tokens WHERE token_hash = ?", (fact.token_hash,)
    ).fetchone()
    return fact.user_id, _remove(conn, fact.user_id, [str(row[0])]) if row is not None else []


def apply_logout_all(conn: sqlite3.Connection, fact: LogoutAll) -> Gone:
    return fact.user_id, _remove_all(conn, fact.user_id)


def apply_password(conn: sqlite3.Connection, msg: LogMessage, fact: Password) -> Gone:
    conn.execute(
        "UPDATE users SET password_hash = ?, account_seq = ? WHERE user_id = ?",
        (fact.password_hash, msg.seq, fact.user_id),
    )
    if not fact.logout_devices:
        return fact.user_id, []
    return fact.user_id, _remove_all(conn, fact.user_id, keep=fact.keep_device)


def apply_deactivate(conn: sqlite3.Connection, msg: LogMessage, fact: Deactivate) -> Gone:
    conn.execute(
        "UPDATE users SET deactivated = 1, password_hash = NULL, account_seq = ? WHERE user_id = ?",
        (msg.seq, fact.user_id),
    )
    return fact.user_id, _remove_all(conn, fact.user_id)


def apply_devices_deleted(conn: sqlite3.Connection, fact: DevicesDeleted) -> Gone:
    """Tokens go with their device, so the device stops working at every site."""
    return fact.user_id, _remove(conn, fact.user_id, list(fact.device_ids))


def apply_device_renamed(conn: sqlite3.Connection, fact: DeviceRenamed) -> bool:
    """Whether the device exists (and so was renamed)."""
    cur = conn.execute(
        "UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?",
        (fact.display_name, fact.user_id, fact.device_id),
    )
    return bool(cur.rowcount)


def apply_admin(conn: sqlite3.Connection, fact: Admin) -> set[str]:
    """Grant or revoke the server-administrator flag (``outlast admin grant|revoke``)."""
    conn.execute("UPDATE users SET admin = ? WHERE user_id = ?", (int(fact.admin), fact.user_id))
    return set()


# --- reads (the accounts service's own; reads shared with others are in view/queries.py) --


def devices(conn: sqlite3.Connection, user_id: str) -> list[sqlite3.Row]:
    return list(
        conn.execute(
            "SELECT d.device_id, display_name, created_ts, ip, ts FROM devices d"
            " LEFT JOIN device_seen s USING (user_id, device_id)"
            " WHERE d.user_id = ? ORDER BY d.device_id",
            (user_id,),
        )
    )


def device(conn: sqlite3.Connection, user_id: str, device_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT d.device_id, display_name, created_ts, ip, ts FROM devices d"
        " LEFT JOIN device_seen s USING (user_id, device_id)"
        " WHERE d.user_id = ? AND d.device_id = ?",
        (user_id, device_id),
    ).fetchone()
    return row


def apply_openid_token(conn: sqlite3.Connection, fact: OpenIdTokenIssued) -> set[str]:
    conn.execute(
        "INSERT OR REPLACE INTO openid_tokens (token_hash, user_id, expires_at) VALUES (?, ?, ?)",
        (fact.token_hash, fact.user_id, fact.expires_at),
    )
    return set()


def openid_token(conn: sqlite3.Connection, token_hash: str) -> tuple[str, int] | None:
    """The user an OpenID token names and when it expires (ms), if it was issued."""
    row = conn.execute(
        "SELECT user_id, expires_at FROM openid_tokens WHERE token_hash = ?", (token_hash,)
    ).fetchone()
    return (str(row[0]), int(row[1])) if row else None


def apply_device_seen(conn: sqlite3.Connection, fact: DeviceSeen) -> set[str]:
    """Remember the latest use of a device that still exists (later ``ts`` wins)."""
    conn.execute(
        "INSERT INTO device_seen (user_id, device_id, ip, ts)"
        " SELECT ?, ?, ?, ? WHERE EXISTS"
        " (SELECT 1 FROM devices WHERE user_id = ? AND device_id = ?)"
        " ON CONFLICT (user_id, device_id) DO UPDATE SET ip = excluded.ip, ts = excluded.ts"
        " WHERE excluded.ts >= device_seen.ts",
        (fact.user_id, fact.device_id, fact.ip, fact.ts, fact.user_id, fact.device_id),
    )
    return set()
