from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from outlast.log.engine import NatsNode
from tests.testrig import start_shared_nats


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NatsNode]:
    """A real single nats-server with JetStream, stopped after the test."""
    server = start_shared_nats(tmp_path / "nats")
    try:
        yield server
    finally:
        server.stop()
