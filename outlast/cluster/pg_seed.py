"""Seed a rebuilt site's PostgreSQL view from a survivor's: one consistent dump, then the tail.

``pg_dump`` reads the whole database in one repeatable-read transaction, so
the ``positions`` rows it copies are exactly those of the rows beside them
(the projector commits both together). The new site's workers start from
those positions and replay only the log after them; the survivor's workers
go on serving and projecting meanwhile.

The dump is piped into ``psql`` on the new site's empty database; nothing
touches a disk in between.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from outlast.view.pg import private

DUMP_TIMEOUT = 600.0


@dataclass(frozen=True)
class Seeded:
    """What was copied: from where, and the stream positions the copy holds."""

    source: str
    positions: dict[str, int]


def copy_view(source_dsn: str, target_dsn: str) -> Seeded:
    """Copy the survivor's view database into the (empty) target database."""
    tools = private.bin_dir()
    dump = subprocess.Popen(
        [
            str(tools / "pg_dump"),
            "--no-owner",
            "--no-privileges",
            "-d",
            source_dsn,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert dump.stdout is not None
    load = subprocess.run(
        [str(tools / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target_dsn],
        stdin=dump.stdout,
        capture_output=True,
        text=True,
        timeout=DUMP_TIMEOUT,
    )
    dump.stdout.close()
    dump_err = dump.stderr.read().decode() if dump.stderr else ""
    if dump.stderr is not None:
        dump.stderr.close()
    if dump.wait(timeout=DUMP_TIMEOUT) != 0:
        raise RuntimeError(f"pg_dump of the survivor's view failed: {dump_err.strip()}")
    if load.returncode != 0:
        raise RuntimeError(f"loading the survivor's view failed: {load.stderr.strip()}")
    return Seeded(source_dsn, positions(target_dsn))


def positions(dsn: str) -> dict[str, int]:
    """The stream positions a view database holds."""
    out = subprocess.run(
        [
            str(private.bin_dir() / "psql"),
            "-X",
            "-t",
            "-A",
            "-F",
            " ",
            "-d",
            dsn,
            "-c",
            "SELECT stream, seq FROM positions ORDER BY stream",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"reading positions: {out.stderr.strip()}")
    found: dict[str, int] = {}
    for line in out.stdout.splitlines():
        stream, _, seq = line.strip().rpartition(" ")
        if stream:
            found[stream] = int(seq)
    return found
