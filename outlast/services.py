"""Every service the HTTP handlers may call, as one typed value.

Built once per worker by the composition root (outlast/site.py), each service
with the dependencies it needs passed to its constructor; handlers reach it
through one accessor (``outlast.http.request.services``), so mypy checks
every handler's call into a service.
"""

from __future__ import annotations

from dataclasses import dataclass

from outlast.account_data.service import AccountData
from outlast.accounts.admins import Admins
from outlast.accounts.devices import Devices
from outlast.accounts.openid import OpenId
from outlast.accounts.service import Accounts
from outlast.config import Config
from outlast.directory.hierarchy import Hierarchy
from outlast.directory.service import Directory
from outlast.e2ee.keys import Keys
from outlast.e2ee.to_device import ToDevice
from outlast.media.service import MediaRepository
from outlast.ops.dashboard import Dashboard
from outlast.ops.health import Health
from outlast.presence.service import Presence
from outlast.presence.typing import Typing
from outlast.profiles.service import Profiles
from outlast.push.delivery import Delivery
from outlast.push.service import Push
from outlast.receipts.service import Receipts
from outlast.room_keys.service import RoomKeys
from outlast.rooms.context import RoomContext
from outlast.rooms.create import RoomCreator
from outlast.rooms.membership import Memberships
from outlast.rooms.messages import Messages
from outlast.rooms.redactions import Redactions
from outlast.rooms.relations import Relations
from outlast.sliding_sync.service import SlidingSync
from outlast.sync.filters import Filters
from outlast.sync.service import Sync
from outlast.voip.service import Turn


@dataclass(frozen=True)
class Services:
    config: Config
    # accounts
    accounts: Accounts
    devices: Devices
    admins: Admins
    openid: OpenId
    # rooms
    creator: RoomCreator
    memberships: Memberships
    messages: Messages
    redactions: Redactions
    room_context: RoomContext
    relations: Relations
    # reading
    sync: Sync
    sliding_sync: SlidingSync
    filters: Filters
    receipts: Receipts
    typing: Typing
    presence: Presence
    # people and places
    profiles: Profiles
    directory: Directory
    hierarchy: Hierarchy
    account_data: AccountData
    push: Push
    push_delivery: Delivery
    # end-to-end encryption
    keys: Keys
    to_device: ToDevice
    room_keys: RoomKeys
    # the rest
    media: MediaRepository
    turn: Turn
    health: Health
    dashboard: Dashboard
