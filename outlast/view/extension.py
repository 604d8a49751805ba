"""How a feature adds tables to the view: a module (``outlast/view/ext_*.py``)
exports one :class:`ViewExtension`; ``outlast/view/extensions.py`` lists them and
the store creates their tables. Which facts each one applies is written out in
``outlast/view/apply.py``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ViewExtension:
    name: str
    schema: str = ""
