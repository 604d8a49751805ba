"""The view extensions that are installed: one line per feature."""

from __future__ import annotations

from outlast.view import (
    ext_account_data,
    ext_cross_signing,
    ext_devices,
    ext_directory,
    ext_push,
    ext_receipts,
)
from outlast.view.extension import ViewExtension

EXTENSIONS: tuple[ViewExtension, ...] = (
    ext_receipts.EXTENSION,
    ext_directory.EXTENSION,
    ext_account_data.EXTENSION,
    ext_devices.EXTENSION,
    ext_cross_signing.EXTENSION,  # after devices: it writes device_list_changes
    ext_push.EXTENSION,
)
