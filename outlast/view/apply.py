"""How each kind of fact changes the view. Called inside the projector's transaction.

:func:`apply_message` decodes a log message into its fact type and
:func:`apply_fact` dispatches on the type: one ``case`` per kind, naming the
capability's ``tables`` module that applies it, so the whole vocabulary and
who applies it is on one screen. Where one capability's change matters to
another's tables (a device goes, so its keys go), the step is written here.
Every function returns the user ids whose /sync might now return something
new, so the projector can wake exactly those long-polls. A message that does
not decode (an op from a newer version, or a malformed fact) is skipped, never
retried for ever.
"""

from __future__ import annotations

import logging
import sqlite3

from outlast.account_data import tables as account_data
from outlast.accounts import tables as accounts
from outlast.core.push_prune import DEFAULT as DEFAULT_PRUNE
from outlast.core.push_prune import PrunePolicy
from outlast.directory import tables as directory
from outlast.e2ee import signing_tables
from outlast.e2ee import tables as e2ee
from outlast.log.client import LogMessage
from outlast.log.facts import (
    AccountDataSet,
    Admin,
    AliasDeleted,
    AliasSet,
    BackupCreated,
    BackupDeleted,
    BackupKeysDeleted,
    BackupKeysStored,
    BackupUpdated,
    CrossSigningKeysSet,
    Deactivate,
    DecodeError,
    DeviceRenamed,
    DevicesDeleted,
    DeviceSeen,
    Fact,
    FilterStored,
    KeyClaimed,
    KeysUploaded,
    Login,
    Logout,
    LogoutAll,
    OpenIdTokenIssued,
    Password,
    PresenceSet,
    ProfileDeleted,
    ProfileSet,
    PusherDeleted,
    PusherSet,
    PushRulesSet,
    ReceiptsMarked,
    RefreshSpent,
    Register,
    RoomEvents,
    RoomForgotten,
    RoomListed,
    RoomTagged,
    SignaturesMade,
    SlidingStateStored,
    ToDeviceReceived,
    ToDeviceSent,
    TokenRefreshed,
    UnknownFact,
    decode,
)
from outlast.presence import tables as presence
from outlast.profiles import tables as profiles
from outlast.push import tables as push
from outlast.receipts import tables as receipts
from outlast.room_keys import tables as room_keys
from outlast.rooms import tables as rooms
from outlast.sliding_sync import tables as sliding_sync
from outlast.sync import tables as sync
from outlast.view.queries import sharing_users
from outlast.view.state_cache import BatchStates

log = logging.getLogger(__name__)


def apply_message(
    conn: sqlite3.Connection,
    msg: LogMessage,
    states: BatchStates | None = None,
    push_prune: PrunePolicy = DEFAULT_PRUNE,
) -> set[str]:
    """Apply one message. ``states`` serves room state to room events (the
    projector passes its batch's; without one, state is read from ``conn``);
    ``push_prune`` says how much notification history the view keeps."""
    try:
        fact = decode(msg.data)
    except UnknownFact:
        return set()  # from a newer version: skipped, not fatal
    except DecodeError as exc:
        log.error("malformed fact %s:%d skipped: %s", msg.stream, msg.seq, exc)
        return set()
    return apply_fact(conn, msg, fact, states or BatchStates(conn, None), push_prune)


def apply_fact(
    conn: sqlite3.Connection,
    msg: LogMessage,
    fact: Fact,
    states: BatchStates,
    push_prune: PrunePolicy = DEFAULT_PRUNE,
) -> set[str]:
    """The view's rule for each kind of fact (``msg`` gives its place in the log)."""
    match fact:
        # accounts, sessions, devices
        case Register():
            return accounts.apply_register(conn, msg, fact)
        case Login():
            return accounts.apply_login(conn, fact)
        case Logout():
            return _devices_gone(conn, msg, accounts.apply_logout(conn, fact))
        case LogoutAll():
            return _devices_gone(conn, msg, accounts.apply_logout_all(conn, fact))
        case Password():
            return _devices_gone(conn, msg, accounts.apply_password(conn, msg, fact))
        case Deactivate():
            return _devices_gone(conn, msg, accounts.apply_deactivate(conn, msg, fact))
        case DevicesDeleted():
            _devices_gone(conn, msg, accounts.apply_devices_deleted(conn, fact))
            return sharing_users(conn, fact.user_id)
        case DeviceRenamed():
            if not accounts.apply_device_renamed(conn, fact):
                return set()
            return e2ee.record_device_change(conn, fact.user_id, msg.seq)
        case Admin():
            return accounts.apply_admin(conn, fact)
        case DeviceSeen():
            return accounts.apply_device_seen(conn, fact)
        case OpenIdTokenIssued():
            return accounts.apply_openid_token(conn, fact)
        case TokenRefreshed():
            return accounts.apply_token_refreshed(conn, fact)
        case RefreshSpent():
            return accounts.apply_refresh_spent(conn, fact)
        case FilterStored():
            return sync.apply_filter(conn, fact)
        case SlidingStateStored():
            return sliding_sync.apply_state(conn, fact)
        # rooms and aliases
        case RoomEvents():
            return rooms.apply_room_events(
                conn,
                msg,
                fact,
                states,
                lambda idx, event, state: push.record_notifications(
                    conn, msg, idx, event, state, push_prune
                ),
            )
        case RoomForgotten():
            return rooms.apply_forget(conn, fact)
        case AliasSet():
            return rooms.apply_alias(conn, fact)
        case AliasDeleted():
            return rooms.apply_alias_deleted(conn, fact)
        case ReceiptsMarked():
            return receipts.apply_marks(conn, msg, fact)
        case RoomListed():
            return directory.apply_room_listed(conn, msg, fact)
        # what users set for themselves
        case PresenceSet():
            return presence.apply_presence(conn, msg, fact)
        case ProfileSet():
            return profiles.apply_profile_set(conn, msg, fact)
        case ProfileDeleted():
            return profiles.apply_profile_delete(conn, msg, fact)
        case AccountDataSet():
            return account_data.apply_account_data(conn, msg, fact)
        case RoomTagged():
            return account_data.apply_room_tag(conn, msg, fact)
        case PushRulesSet():
            return push.apply_push_rules(conn, msg, fact)
        case PusherSet():
            return push.apply_pusher_set(conn, msg, fact)
        case PusherDeleted():
            return push.apply_pusher_delete(conn, msg, fact)
        # end-to-end encryption
        case KeysUploaded():
            return e2ee.apply_keys_uploaded(conn, msg, fact)
        case KeyClaimed():
            return e2ee.apply_key_claimed(conn, msg, fact)
        case CrossSigningKeysSet():
            return signing_tables.apply_keys(conn, msg, fact)
        case SignaturesMade():
            return signing_tables.apply_signatures(conn, msg, fact)
        case ToDeviceSent():
            return e2ee.apply_to_device(conn, msg, fact)
        case ToDeviceReceived():
            return e2ee.apply_to_device_received(conn, msg, fact)
        # server-side key backup
        case BackupCreated():
            return room_keys.apply_created(conn, msg, fact)
        case BackupUpdated():
            return room_keys.apply_updated(conn, fact)
        case BackupDeleted():
            return room_keys.apply_deleted(conn, fact)
        case BackupKeysStored():
            return room_keys.apply_keys_stored(conn, fact)
        case BackupKeysDeleted():
            return room_keys.apply_keys_deleted(conn, fact)
        case _:
            return set()  # control facts (health probes): no view follows their streams


def _devices_gone(conn: sqlite3.Connection, msg: LogMessage, gone: accounts.Gone) -> set[str]:
    """Devices accounts removed: their keys, inbox and cross-signatures go with them, and
    each is a device-list change at this fact's sequence. Wakes the account's owner."""
    user_id, device_ids = gone
    e2ee.devices_gone(conn, user_id, device_ids, msg.seq)
    for device_id in device_ids:
        signing_tables.forget_device_signatures(conn, user_id, device_id)
    return {user_id}
