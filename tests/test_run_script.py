"""`./run cluster ...` checks for what a local cluster needs before running it.

A fresh machine has no HAProxy; the README's cluster commands must then say
(or, as root, install) what is missing instead of failing inside the cluster
with "haproxy not found". These runs see a PATH without haproxy and an ``id``
that answers a non-root uid, so nothing is ever installed here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What ./run and scripts/system-deps.sh call, besides haproxy.
TOOLS = ("bash", "cat", "sha256sum", "cut", "dirname", "grep", "ldconfig", "ip", "nft", "printf")


def fake_path(tmp_path: Path, with_haproxy: bool) -> str:
    """A PATH with the usual tools, haproxy only if asked, and ``id`` saying uid 1000."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS + (("haproxy",) if with_haproxy else ()):
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"{tool} is not installed here")
        (bin_dir / tool).symlink_to(found)
    shim = bin_dir / "id"
    shim.write_text("#!/bin/bash\necho 1000\n")
    shim.chmod(0o755)
    return str(bin_dir)


def run(args: list[str], path: str) -> subprocess.CompletedProcess[str]:
    if not (ROOT / ".venv" / "bin" / "outlast").exists():
        pytest.skip("./run has not installed the venv yet")
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "PATH": path}
    )


def test_run_cluster_names_the_missing_front_door_before_starting_anything(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "c"
    result = run(
        ["./run", "cluster", "up", "--sites", "3", "--dir", str(directory), "--detach"],
        fake_path(tmp_path, with_haproxy=False),
    )
    assert result.returncode == 1, result.stderr
    assert "a local cluster needs these Debian packages" in result.stderr
    assert "sudo apt-get install haproxy" in result.stderr
    # Only what a cluster needs: not the test suite's browser.
    assert "chromium" not in result.stderr
    assert not directory.exists()  # nothing was started


def test_run_cluster_goes_ahead_when_the_front_door_is_there(tmp_path: Path) -> None:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed here")
    result = run(["./run", "cluster", "--help"], fake_path(tmp_path, with_haproxy=True))
    assert result.returncode == 0, result.stderr
    assert "usage: outlast cluster" in result.stdout
    assert "system-deps" not in result.stderr
