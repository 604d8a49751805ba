"""`outlast cluster up|status|down` as an operator uses them: real processes, real signals."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from outlast.config import FAST_HASH_TOML, NO_LIMITS_TOML
from tests.cluster.harness import all_pids, pid_alive, wait_until

pytestmark = pytest.mark.slow

OUTLAST = [sys.executable, "-m", "outlast"]


def outlast(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OUTLAST, *args], capture_output=True, text=True, timeout=timeout)


def fast_hash_config(directory: Path) -> str:
    path = directory / "fast-hash.toml"
    path.write_text(FAST_HASH_TOML + NO_LIMITS_TOML)
    return str(path)


def _front_door_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_matrix/client/versions", timeout=3) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _check_description(description: dict[str, Any], directory: Path) -> None:
    assert description["front_door"].startswith("http://127.0.0.1:")
    assert [s["name"] for s in description["sites"]] == ["a", "b", "c"]
    for site in description["sites"]:
        assert site["url"].startswith("http://127.0.0.1:"), site
        assert site["pids"] and all(isinstance(p, int) for p in site["pids"]), site
        assert Path(site["data_dir"]).is_relative_to(directory), site
        assert Path(site["data_dir"]).is_dir(), site


def _kill_leftovers(description: dict[str, Any] | None) -> None:
    """Whatever a failed test left running goes: only pids of this test's cluster, and only
    while their command line still names its directory (a pid may have been reused)."""
    if description is None:
        return
    for pid in all_pids(description):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                ours = description["dir"].encode() in f.read()
        except OSError:
            continue
        if ours and pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def cluster_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "D"
    yield directory
    if (directory / "cluster.json").exists():
        outlast("cluster", "down", "--dir", str(directory), timeout=120)
        _kill_leftovers(json.loads((directory / "cluster.json").read_text()))


def test_fewer_than_three_sites_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "two"
    result = outlast(
        "cluster", "up", "--sites", "2", "--dir", str(directory), "--detach", timeout=60
    )
    assert result.returncode == 2, result
    assert "at least 3 sites" in result.stderr
    assert not (directory / "cluster.json").exists()


def test_detached_up_status_down(cluster_dir: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    up = outlast(
        "cluster",
        "up",
        "--sites",
        "3",
        "--dir",
        str(cluster_dir),
        "--detach",
        "--site-config",
        fast_hash_config(tmp_path),
    )
    assert up.returncode == 0, up.stderr
    print(f"cluster up --detach returned in {time.monotonic() - started:.1f}s")

    # The JSON printed and DIR/cluster.json describe the same cluster.
    printed = json.loads(up.stdout)
    stored = json.loads((cluster_dir / "cluster.json").read_text())
    for description in (printed, stored):
        _check_description(description, cluster_dir)
    assert printed["front_door"] == stored["front_door"]
    assert [(s["name"], s["url"], s["pids"], s["data_dir"]) for s in printed["sites"]] == [
        (s["name"], s["url"], s["pids"], s["data_dir"]) for s in stored["sites"]
    ]
    pids = all_pids(stored)
    assert all(pid_alive(pid) for pid in pids), {pid: pid_alive(pid) for pid in pids}
    assert _front_door_answers(stored["front_door"])

    # status: the live description, every site up.
    status = outlast("cluster", "status", "--dir", str(cluster_dir), timeout=30)
    assert status.returncode == 0, status.stderr
    live = json.loads(status.stdout)
    assert {s["name"]: s["status"] for s in live["sites"]} == {"a": "up", "b": "up", "c": "up"}
    assert live["front_door"] == stored["front_door"]

    # A loopback cluster has no one-way cut (that needs --netns): refused, nothing cut.
    cluster_file = str(cluster_dir / "cluster.json")
    one_way = outlast(
        "site", "isolate", "a", "--direction", "out", "--cluster", cluster_file, timeout=30
    )
    assert one_way.returncode == 1 and "--netns" in one_way.stderr, one_way.stderr
    # The delay defaults to none in loopback mode.
    assert live["network"] == {"mode": "loopback", "latency_ms": 0.0, "jitter_ms": 0.0}

    # A second `up` on a running cluster's directory is refused and changes nothing.
    again = outlast(
        "cluster", "up", "--sites", "3", "--dir", str(cluster_dir), "--detach", timeout=60
    )
    assert again.returncode == 2, again
    assert "running cluster" in again.stderr and "cluster down" in again.stderr
    assert all(pid_alive(pid) for pid in pids)
    assert (
        json.loads((cluster_dir / "cluster.json").read_text())["supervisor_pid"]
        == stored["supervisor_pid"]
    )

    # down: every process is gone, the front door too.
    started = time.monotonic()
    down = outlast("cluster", "down", "--dir", str(cluster_dir), timeout=90)
    assert down.returncode == 0, down.stderr
    assert wait_until(lambda: not any(pid_alive(pid) for pid in pids), timeout=30), [
        pid for pid in pids if pid_alive(pid)
    ]
    print(f"cluster down: every pid gone after {time.monotonic() - started:.1f}s")
    assert not _front_door_answers(stored["front_door"])
    assert json.loads((cluster_dir / "cluster.json").read_text()).get("stopped") is True
    # A stopped cluster's directory may be brought up again (not done here: it takes time).


def test_down_after_the_supervisor_crashed(cluster_dir: Path, tmp_path: Path) -> None:
    up = outlast(
        "cluster",
        "up",
        "--sites",
        "3",
        "--dir",
        str(cluster_dir),
        "--detach",
        "--site-config",
        fast_hash_config(tmp_path),
    )
    assert up.returncode == 0, up.stderr
    description = json.loads((cluster_dir / "cluster.json").read_text())
    pids = all_pids(description)
    os.kill(description["supervisor_pid"], signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(description["supervisor_pid"]), timeout=10)

    down = outlast("cluster", "down", "--dir", str(cluster_dir), timeout=90)
    assert down.returncode == 0, down.stderr
    assert wait_until(lambda: not any(pid_alive(pid) for pid in pids), timeout=30), [
        pid for pid in pids if pid_alive(pid)
    ]
    # The front door (HAProxy, not among the listed pids) went with its supervisor.
    assert wait_until(lambda: not _front_door_answers(description["front_door"]), timeout=10)


def test_foreground_up_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    directory = tmp_path / "D2"
    description: dict[str, Any] | None = None
    with open(tmp_path / "up.out", "wb") as out, open(tmp_path / "up.err", "wb") as err:
        proc = subprocess.Popen(
            [
                *OUTLAST,
                "cluster",
                "up",
                "--sites",
                "3",
                "--dir",
                str(directory),
                "--site-config",
                fast_hash_config(tmp_path),
            ],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    try:

        def all_up() -> bool:
            nonlocal description
            assert proc.poll() is None, (tmp_path / "up.err").read_text()
            try:
                description = json.loads((directory / "cluster.json").read_text())
            except (OSError, ValueError):
                return False
            return [s["status"] for s in description["sites"]] == ["up", "up", "up"]

        assert wait_until(all_up, timeout=120), (tmp_path / "up.err").read_text()
        assert description is not None
        assert description["supervisor_pid"] == proc.pid
        _check_description(description, directory)
        pids = all_pids(description)
        assert all(pid_alive(pid) for pid in pids)

        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert proc.wait(timeout=60) == 0, (tmp_path / "up.err").read_text()
        print(f"foreground cluster exited 0 {time.monotonic() - started:.1f}s after SIGTERM")
        assert wait_until(lambda: not any(pid_alive(pid) for pid in pids), timeout=10), [
            pid for pid in pids if pid_alive(pid)
        ]
        assert not _front_door_answers(description["front_door"])
        assert json.loads((directory / "cluster.json").read_text()).get("stopped") is True
        # It printed its description on stdout once ready.
        assert (
            json.loads((tmp_path / "up.out").read_text())["front_door"] == description["front_door"]
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        _kill_leftovers(description)
