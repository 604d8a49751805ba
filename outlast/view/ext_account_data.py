"""View tables and log handlers for account data. (Filled in by its feature.)"""

from __future__ import annotations

from outlast.view.extension import ViewExtension

EXTENSION = ViewExtension(name="account_data")
