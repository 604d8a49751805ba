"""The spec's canonical JSON limits on event content.

Event content must be canonical JSON ("Signing JSON" in the appendices):
integers within ``[-(2**53)+1, (2**53)-1]``, no floats. Content that breaks
this is refused with ``400 M_BAD_JSON`` before it becomes an event, as
Synapse does; other homeservers could not sign or hash such an event.
"""

from __future__ import annotations

from typing import Any, Final

from outlast.core.errors import bad_json

MAX_SAFE: Final = 2**53 - 1
MAX_DEPTH: Final = 100


def violation(value: Any, path: str = "content", depth: int = 0) -> str | None:
    """Where ``value`` stops being canonical JSON, or ``None`` if it is."""
    if depth > MAX_DEPTH:
        return f"{path} is nested too deeply"
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, int):
        return None if -MAX_SAFE <= value <= MAX_SAFE else f"{path} is out of range"
    if isinstance(value, float):
        return f"{path} is a float"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} has a non-string key"
            found = violation(item, f"{path}.{key}", depth + 1)
            if found:
                return found
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = violation(item, f"{path}[{i}]", depth + 1)
            if found:
                return found
        return None
    return f"{path} is not JSON"


def check_content(content: Any) -> None:
    found = violation(content)
    if found is not None:
        raise bad_json(f"event content must be canonical JSON: {found[:200]}")
