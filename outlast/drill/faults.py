"""The faults a drill can inflict on a running cluster.

- ``fire``: kill -9 every process of the site and delete its data (the default).
- ``power``: kill -9 only; later the site is powered on with the same disks.
- ``partition``: cut the site's links to the other sites; later heal them.
- ``freeze``: SIGSTOP every process (a grey failure); later SIGCONT.
- ``maintenance``: not a fault but planned work: a rolling restart of every
  site (`outlast cluster roll`), each drained before it stops; the drill
  measures what clients notice of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import urllib.request
from typing import Any

FAULTS = ("fire", "power", "partition", "freeze", "maintenance")
# Faults that act on every site rather than on one.
WHOLE_CLUSTER = ("maintenance",)


def _control(description: dict[str, Any], path: str, timeout: float = 600) -> list[str]:
    req = urllib.request.Request(description["control_url"] + path, method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # loopback
        return [line.decode().rstrip("\n") for line in resp]


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def inflict(description: dict[str, Any], site: dict[str, Any], fault: str) -> None:
    if fault in ("fire", "power"):
        _signal_all(site["pids"], signal.SIGKILL)
        if fault == "fire":
            shutil.rmtree(site["data_dir"], ignore_errors=True)
    elif fault == "partition":
        _control(description, f"/sites/{site['name']}/isolate", timeout=30)
    elif fault == "freeze":
        _signal_all(site["pids"], signal.SIGSTOP)
    else:
        raise ValueError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")


def recover(description: dict[str, Any], site: dict[str, Any], fault: str) -> dict[str, Any]:
    """Undo a temporary fault (not fire: a fire is undone only by a rebuild)."""
    if fault == "power":
        return _result(_control(description, f"/sites/{site['name']}/power-on"))
    if fault == "partition":
        _control(description, f"/sites/{site['name']}/heal", timeout=30)
    elif fault == "freeze":
        _signal_all(site["pids"], signal.SIGCONT)
    return {}


def roll(description: dict[str, Any]) -> dict[str, Any]:
    """A rolling restart of every site; returns once all are back and healthy."""
    return _result(_control(description, "/roll", timeout=1800))


def rebuild(description: dict[str, Any], name: str) -> dict[str, Any]:
    return _result(_control(description, f"/sites/{name}/rebuild"))


def _result(lines: list[str]) -> dict[str, Any]:
    for line in lines:
        if line.startswith("ERROR "):
            raise RuntimeError(json.loads(line[6:])["error"])
        if line.startswith("RESULT "):
            data: dict[str, Any] = json.loads(line[7:])
            return data
    return {}
