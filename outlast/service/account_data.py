"""account data. (Filled in by its feature.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from outlast.site import Services


def install(services: Services) -> None:
    """Register this feature's service, sync extension, decorators and hooks."""
