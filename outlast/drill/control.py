"""The drill's calls to a local cluster's supervisor (its control API) and to processes.

Shared by the fault kinds (faults.py, netfaults.py) so neither imports the other.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.request
from typing import Any


def control(description: dict[str, Any], path: str, timeout: float = 600) -> list[str]:
    """POST ``path`` to the supervisor; its progress lines, as it streams them."""
    return [line for _, line in control_timed(description, path, timeout)]


def result(lines: list[str]) -> dict[str, Any]:
    """The RESULT line of a control call's progress (its ERROR line raised)."""
    for line in lines:
        if line.startswith("ERROR "):
            raise RuntimeError(json.loads(line[6:])["error"])
        if line.startswith("RESULT "):
            data: dict[str, Any] = json.loads(line[7:])
            return data
    return {}


def signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def control_timed(
    description: dict[str, Any], path: str, timeout: float = 600
) -> list[tuple[float, str]]:
    """Like ``control``, each line with the drill's monotonic time of its arrival (the
    supervisor streams a line as each step ends, so this is the step's end time)."""
    req = urllib.request.Request(description["control_url"] + path, method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # loopback
        return [(time.monotonic(), line.decode().rstrip("\n")) for line in resp]


def roll(description: dict[str, Any], since: float | None = None) -> dict[str, Any]:
    """A rolling restart of every site; returns once all are back and healthy. With
    ``since`` (a monotonic time), the result has the roll's ``timeline``: each step's
    progress line and when it ended, in seconds after ``since``."""
    timed = control_timed(description, "/roll", timeout=1800)
    data = result([line for _, line in timed])
    if since is not None:
        data["timeline"] = [
            [round(t - since, 3), line]
            for t, line in timed
            if not line.startswith(("RESULT ", "ERROR "))
        ]
    return data


def rebuild(description: dict[str, Any], name: str) -> dict[str, Any]:
    return result(control(description, f"/sites/{name}/rebuild"))
