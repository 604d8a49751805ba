"""Every table of the view, from the module that owns it, in the order they are created.

Each capability's ``tables.py`` declares its tables and is their only writer;
the store creates them all (outlast/view/store.py). Triggers are not used:
what one capability's change means for another's tables is an explicit step
in outlast/view/apply.py.
"""

from __future__ import annotations

from outlast.account_data import tables as account_data
from outlast.accounts import tables as accounts
from outlast.directory import tables as directory
from outlast.e2ee import signing_tables
from outlast.e2ee import tables as e2ee
from outlast.presence import tables as presence
from outlast.profiles import tables as profiles
from outlast.push import tables as push
from outlast.receipts import tables as receipts
from outlast.room_keys import tables as room_keys
from outlast.rooms import tables as rooms
from outlast.sliding_sync import tables as sliding_sync
from outlast.sync import tables as sync

SCHEMAS: tuple[tuple[str, str], ...] = (
    ("accounts", accounts.SCHEMA),
    ("sync", sync.SCHEMA),
    ("rooms", rooms.SCHEMA),
    ("receipts", receipts.SCHEMA),
    ("presence", presence.SCHEMA),
    ("profiles", profiles.SCHEMA),
    ("directory", directory.SCHEMA),
    ("account_data", account_data.SCHEMA),
    ("e2ee", e2ee.SCHEMA),
    ("e2ee signing", signing_tables.SCHEMA),
    ("push", push.SCHEMA),
    ("room_keys", room_keys.SCHEMA),
    ("sliding_sync", sliding_sync.SCHEMA),
)

# Triggers earlier versions created; a view file from then drops them when opened.
REMOVED_TRIGGERS = ("device_gone", "stamp_device_changes", "device_gone_cross_signatures")
