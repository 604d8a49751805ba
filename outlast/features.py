"""The features installed on every worker, beyond the core (accounts, rooms, sync).

Each module's ``install(services)`` registers what it adds; see
``outlast/service/extension.py`` for the seams.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from outlast.service import (
    account_data,
    admin,
    dashboard,
    devices,
    directory,
    health,
    keys,
    media,
    misc,
    presence,
    profiles,
    push,
    receipts,
    redactions,
    typing,
)

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
