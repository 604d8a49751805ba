"""Shared fixtures: real `outlast serve` processes on free loopback ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import OutlastProcess, start_outlast


@pytest.fixture
def server(tmp_path: Path) -> Iterator[OutlastProcess]:
    """One embedded single-site server (its own nats-server child), two partitions."""
    proc = start_outlast(tmp_path / "site")
    try:
        yield proc
    finally:
        proc.stop()


__all__ = ["os", "signal", "subprocess", "sys", "time"]
