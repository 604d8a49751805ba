"""The view extensions that are installed: one line per feature."""

from __future__ import annotations

from outlast.account_data import tables as ext_account_data
from outlast.directory import tables as ext_directory
from outlast.e2ee import signing_tables as ext_cross_signing
from outlast.e2ee import tables as ext_devices
from outlast.push import tables as ext_push
from outlast.receipts import tables as ext_receipts
from outlast.view.extension import ViewExtension

EXTENSIONS: tuple[ViewExtension, ...] = (
    ext_receipts.EXTENSION,
    ext_directory.EXTENSION,
    ext_account_data.EXTENSION,
    ext_devices.EXTENSION,
    ext_cross_signing.EXTENSION,  # after devices: it writes device_list_changes
    ext_push.EXTENSION,
)
