from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster, start_cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh three-site cluster per test (tests here burn and cut sites)."""
    c = start_cluster(tmp_path / "cluster")
    try:
        yield c
    finally:
        c.down()
