"""The event loop long-running Outlast processes run on."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (a dependency on Linux), else on asyncio.

    uvloop's event loop is written in C: a worker serving message sends spends
    less CPU per request on it (bench/RESULTS.md has the measurement), and so
    do the cluster supervisor's inter-site relays, which every replicated
    message crosses.
    """
    if os.environ.get("OUTLAST_EVENT_LOOP", "uvloop") == "asyncio":
        return asyncio.run(main)  # for comparisons and for debugging with asyncio's tools
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
