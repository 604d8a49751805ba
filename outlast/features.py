"""The features installed on every worker, beyond the core (accounts, rooms, sync).

Each module's ``install(services)`` registers what it adds; see
``outlast/service/extension.py`` for the seams.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from outlast.account_data import service as account_data
from outlast.accounts import admins as admin
from outlast.accounts import devices
from outlast.directory import service as directory
from outlast.e2ee import keys
from outlast.media import service as media
from outlast.ops import dashboard, health
from outlast.presence import service as presence
from outlast.presence import typing
from outlast.profiles import service as profiles
from outlast.push import service as push
from outlast.receipts import service as receipts
from outlast.rooms import context as misc
from outlast.rooms import redactions

if TYPE_CHECKING:
    from outlast.site import Services

INSTALLERS: tuple[Callable[[Services], None], ...] = (
    receipts.install,
    typing.install,
    presence.install,
    profiles.install,
    directory.install,
    account_data.install,
    redactions.install,
    devices.install,
    keys.install,
    media.install,
    push.install,
    misc.install,
    health.install,
    admin.install,
    dashboard.install,
)
