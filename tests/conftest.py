"""Shared fixtures: real `outlast serve` processes on free loopback ports (``server``),
and in-process sites on one shared nats-server (``site``, see tests/testrig.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from outlast.services import Services
from outlast.site import Site
from outlast.view.pg import private
from tests.servers import OutlastProcess, start_outlast
from tests.testrig import running_site, services_of, shared_nats_node


@pytest.fixture
def server(tmp_path: Path) -> Iterator[OutlastProcess]:
    """One embedded single-site server (its own nats-server child), two partitions."""
    proc = start_outlast(tmp_path / "site")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def shared_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One nats-server for every in-process site of the session."""
    yield from shared_nats_node(tmp_path_factory.mktemp("shared-nats"))


@pytest.fixture
async def site(shared_nats: str, tmp_path: Path) -> AsyncIterator[Site]:
    """A whole site in this test's event loop, with a name prefix of its own."""
    async with running_site(tmp_path / "site", shared_nats) as running:
        yield running


@pytest.fixture
def services(site: Site) -> Services:
    return services_of(site)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[private.PrivateCluster]:
    """One private PostgreSQL server (Debian's package) for the session; fsync off.

    Its files are not under pytest's temporary root: every pytest session that
    starts (another engineer's too) makes that root 0700 again, and the server
    runs as the ``postgres`` user, who then could not reach its own files."""
    directory = Path(tempfile.mkdtemp(prefix="outlast-test-pg-"))
    try:
        cluster = private.start(directory, durable=False)
        try:
            yield cluster
        finally:
            cluster.stop("immediate")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


_databases = iter(range(1_000_000))


@pytest.fixture
def pg_dsn(pg_server: private.PrivateCluster) -> str:
    """A fresh, empty database on the session's PostgreSQL server, for one test."""
    return pg_server.create_database(f"t{os.getpid()}_{next(_databases)}")


__all__ = ["os", "signal", "subprocess", "sys", "time"]
