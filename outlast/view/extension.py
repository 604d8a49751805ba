"""How a feature adds tables and log handlers to the view without touching the core.

A feature module (``outlast/view/ext_*.py``) exports one :class:`ViewExtension`.
``outlast/view/extensions.py`` lists them; the store creates their tables and
the projector routes their ops to them. ``event_hooks`` run for every room
event the core applies (after it is stored), e.g. to apply a redaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from outlast.log.client import LogMessage

# A handler applies one log message inside the projector's transaction and
# returns the users whose /sync may now have something new.
OpHandler = Callable[[sqlite3.Connection, LogMessage], set[str]]
# An event hook sees each newly stored room event (with its position index).
EventHook = Callable[[sqlite3.Connection, LogMessage, int, dict[str, Any]], set[str]]


@dataclass(frozen=True)
class ViewExtension:
    name: str
    schema: str = ""
    handlers: Mapping[str, OpHandler] = field(default_factory=dict)
    event_hooks: tuple[EventHook, ...] = ()
