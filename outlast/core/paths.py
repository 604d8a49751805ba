r"""Dot-separated property paths (spec: appendices, "Dot-separated property paths").

``content.body`` names ``body`` inside ``content``. In a name, ``\.`` is a
literal dot and ``\\`` a literal backslash; any other backslash sequence is
kept as is (``\x`` stays backslash + ``x``). Filters' ``event_fields`` and push
conditions' ``key`` both use them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ABSENT: Any = object()  # what ``lookup`` returns for a missing property


def split_path(path: str) -> tuple[str, ...]:
    r"""``content.m\.relates_to.rel_type`` -> ("content", "m.relates_to", "rel_type")."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(path):
        char = path[i]
        if char == "\\" and i + 1 < len(path) and path[i + 1] in ".\\":
            current.append(path[i + 1])
            i += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return tuple(parts)


def lookup(event: Mapping[str, Any], path: Sequence[str]) -> Any:
    """The value at ``path``, or ``ABSENT`` when a step is missing or not an object.

    Events are decoded JSON, so objects are dicts: checking ``dict`` rather
    than ``Mapping`` keeps this hot path (every push condition) cheap.
    """
    value: Any = event
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return ABSENT
        value = value[part]
    return value
