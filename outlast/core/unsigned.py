"""Server-computed ``unsigned`` fields of served events.

- ``prev_content`` and ``replaces_state`` on state events: what the event
  replaced. Without them clients show a display-name or avatar change as a
  fresh "joined". ``replaces_state`` is always given; ``prev_content`` only
  when the reader may see the replaced event (history visibility).
- ``membership`` (MSC4115, spec v1.11): the reader's own membership at the
  event, ``leave`` if they had none yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _with_unsigned(event: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    out = dict(event)
    unsigned = event.get("unsigned")
    out["unsigned"] = {**(unsigned if isinstance(unsigned, Mapping) else {}), **fields}
    return out


def with_replaced_state(
    event: Mapping[str, Any], replaced: Mapping[str, Any] | None, *, may_see: bool
) -> dict[str, Any]:
    """``event`` with ``replaces_state``/``prev_content``/``prev_sender`` for the
    state event it replaced (``replaced`` is ``None`` for the first of its key)."""
    if "state_key" not in event or replaced is None:
        return dict(event)
    fields: dict[str, Any] = {}
    if isinstance(replaced.get("event_id"), str):
        fields["replaces_state"] = replaced["event_id"]
    if may_see and isinstance(replaced.get("content"), Mapping):
        fields["prev_content"] = dict(replaced["content"])
        if isinstance(replaced.get("sender"), str):
            fields["prev_sender"] = replaced["sender"]
    return _with_unsigned(event, **fields) if fields else dict(event)


def with_membership(event: Mapping[str, Any], membership: str | None) -> dict[str, Any]:
    """``unsigned.membership``: the reader's membership at the event (MSC4115)."""
    return _with_unsigned(event, membership=membership or "leave")
