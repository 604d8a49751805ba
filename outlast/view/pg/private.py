"""A private PostgreSQL cluster on loopback, from Debian's `postgresql` package.

The tests and `outlast cluster up --view postgresql` each need a database
server of their own, started and stopped like the nats-server nodes and
HAProxy: nothing shared with a system-wide PostgreSQL, a dynamic port, its
files in one directory (so a fire that deletes a site's disks deletes its
view too).

PostgreSQL refuses to run as root. When we are root (tests and CI are), the
server runs as the `postgres` user the Debian package creates, and the
directories above its data need the search bit for that user: we add `o+x`
(traverse only, not list) where it is missing, and say so.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Debian installs each major version under its own directory.
BIN_GLOB = "/usr/lib/postgresql/*/bin"
ROLE = "outlast"
START_TIMEOUT = 60.0
SAMENET_LINE = f"host all {ROLE} samenet trust"


class PostgresMissing(RuntimeError):
    """Debian's postgresql package is not installed."""


def bin_dir() -> Path:
    """The newest installed PostgreSQL's programs."""
    found = [Path(p) for p in glob.glob(BIN_GLOB) if (Path(p) / "postgres").exists()]
    if not found:
        raise PostgresMissing(
            "PostgreSQL is not installed: `./run setup` installs Debian's postgresql package"
        )
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


@dataclass
class PrivateCluster:
    """A running private PostgreSQL server: its directory, port and superuser role."""

    directory: Path
    port: int
    # Where it listens: loopback, or (`cluster up --netns`) the site's namespace address.
    host: str = "127.0.0.1"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{ROLE}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (if missing) and return its DSN."""
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{_ident(name)}'")
        if not exists.strip():
            self.psql(f'CREATE DATABASE "{_ident(name)}"')
        return self.dsn(name)

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run one statement with psql (administration only; the view uses its driver)."""
        out = subprocess.run(
            [
                str(bin_dir() / "psql"),
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.dsn(dbname),
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode != 0:
            raise RuntimeError(f"psql on {dbname}: {out.stderr.strip()}")
        return out.stdout

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is a crash: no checkpoint)."""
        if not (self.data / "postmaster.pid").exists():
            return
        owner = _owner()
        if owner is not None:
            # Someone may have taken the bits back since start (pytest makes its
            # temporary root 0700 again at every session start).
            _grant_traverse(self.directory, owner)
        with contextlib.suppress(subprocess.SubprocessError):
            _run_as_owner(
                [
                    str(bin_dir() / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    mode,
                    "-w",
                    "-t",
                    "30",
                    "stop",
                ],
                timeout=40,
            )

    def running(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 1):
            return True
        return False


def start(
    directory: Path,
    port: int | None = None,
    *,
    durable: bool = True,
    host: str = "127.0.0.1",
    prefix: Sequence[str] = (),
) -> PrivateCluster:
    """Create (first time) and start a private server with its files in ``directory``.

    ``durable=False`` turns off fsync: for throwaway test databases only.
    ``host`` and ``prefix``: listen on that address, with the server started
    through ``prefix`` (`ip netns exec NS`: inside a site's network namespace).
    """
    directory.mkdir(parents=True, exist_ok=True)
    cluster = PrivateCluster(directory.resolve(), port or _free_port(), host)
    owner = _owner()
    if owner is not None:
        _grant_traverse(cluster.directory, owner)
        os.chown(cluster.directory, owner.pw_uid, owner.pw_gid)
    if not (cluster.data / "PG_VERSION").exists():
        _run_as_owner(
            [
                str(bin_dir() / "initdb"),
                "-D",
                str(cluster.data),
                "-U",
                ROLE,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ]
            + ([] if durable else ["--no-sync"]),
            timeout=120,
        )
    _write_settings(cluster, durable)
    # A killed server leaves its pid file; pg_ctl starts anyway once that pid is gone.
    _run_as_owner(
        [
            str(bin_dir() / "pg_ctl"),
            "-D",
            str(cluster.data),
            "-l",
            str(cluster.log_path),
            "-w",
            "-t",
            str(int(START_TIMEOUT)),
            "start",
        ],
        timeout=START_TIMEOUT + 10,
        prefix=prefix,
    )
    return cluster


def _write_settings(cluster: PrivateCluster, durable: bool) -> None:
    # Loopback only; no unix socket outside the cluster's own directory.
    settings = [
        f"listen_addresses = '{cluster.host}'",
        f"port = {cluster.port}",
        f"unix_socket_directories = '{cluster.directory}'",
        "max_connections = 200",
        "shared_buffers = 64MB",
        f"fsync = {'on' if durable else 'off'}",
        f"synchronous_commit = {'on' if durable else 'off'}",
        f"full_page_writes = {'on' if durable else 'off'}",
    ]
    path = cluster.data / "postgresql.auto.conf"
    path.write_text("\n".join(settings) + "\n")
    owner = _owner()
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    if cluster.host != "127.0.0.1":
        # initdb trusts loopback only. In a site's namespace its workers (the site's
        # address) and the supervisor (the host end of the veth) connect from the
        # namespace's own subnet: trust that, and nothing else.
        hba = cluster.data / "pg_hba.conf"
        text = hba.read_text()
        if SAMENET_LINE not in text:
            hba.write_text(text.rstrip("\n") + "\n" + SAMENET_LINE + "\n")


def _owner() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as err:
        raise PostgresMissing(
            "running as root needs the 'postgres' user of Debian's package"
        ) from err


def _run_as_owner(argv: list[str], timeout: float, prefix: Sequence[str] = ()) -> None:
    owner = _owner()
    if owner is not None:
        argv = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", owner.pw_name, "--", *argv]
    argv = [*prefix, *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd="/")
    if done.returncode != 0:
        raise RuntimeError(f"{Path(argv[-1]).name}: {' '.join(argv)} failed:\n{done.stderr}")


def _grant_traverse(directory: Path, owner: pwd.struct_passwd) -> None:
    """Let ``owner`` reach ``directory``: add the search bit for others where missing."""
    for parent in reversed(directory.parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            print(
                f"postgres: adding o+x to {parent} so the postgres user can reach its data",
                file=sys.stderr,
            )
            parent.chmod(mode | 0o001)


def _ident(name: str) -> str:
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"unsafe database name {name!r}")
    return name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(cluster: PrivateCluster, timeout: float = START_TIMEOUT) -> None:
    """Block until the server accepts connections (pg_ctl -w usually did already)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.running():
            return
        time.sleep(0.1)
    raise TimeoutError(f"postgres on port {cluster.port} not ready: see {cluster.log_path}")
