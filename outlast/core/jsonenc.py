"""JSON encoding on the hot paths: orjson when it can, the standard library when not.

Every message is encoded several times on its way (the log fact, the stored
copy in the view, the HTTP reply); orjson does that several times faster.
It refuses a few values the standard library accepts (integers beyond 64
bits, non-string keys, lone surrogates); requests holding such values are
refused at the door (outlast.http.request), and anything else falls back to
``json``, so the output is always JSON with the same meaning.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency
    orjson = None  # type: ignore[assignment]


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:
            pass
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def dumps_text(value: Any) -> str:
    """The same as ``dumps``, as text (SQLite TEXT columns)."""
    return dumps(value).decode("utf-8")


def canonical(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the form whose size the spec limits."""
    if orjson is not None:
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            pass
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode(
        "utf-8"
    )
