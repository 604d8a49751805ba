"""Start and stop real Outlast processes for tests (no mocks of the log or the view)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from outlast.config import FAST_HASH_TOML

# Cheap argon2 parameters keep the suite fast; production defaults are in docs/config.md.
TEST_CONFIG = """
[server]
server_name = "localhost"
{server_extra}

[log]
partitions = {partitions}
{log_extra}
"""


def eventually(probe: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Call ``probe`` every 0.1 s until it returns something truthy, and return that;
    fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} ({timeout} s)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(
    method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 10.0
) -> tuple[int, Any]:
    """A tiny HTTP client for raw requests (status and decoded JSON)."""
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, raw


@dataclass
class OutlastProcess:
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    config_path: Path
    log_path: Path
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"outlast exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                status, body = http_json("GET", self.url + "/_outlast/health", timeout=2)
                if status == 200 and body.get("ready"):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"outlast not ready:\n{self.log_path.read_text()[-4000:]}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)

    def restart(self) -> None:
        self.stop()
        fresh = launch(self.data_dir, self.config_path, self.port, self.extra_args)
        self.process = fresh.process
        self.wait_ready()


# The suite registers hundreds of users and sends thousands of messages from
# one address, so its servers run with rate limits off unless a test asks
# for them; tests/e2e/test_hostile_*.py run the defaults (limits on).
LIMITS_OFF = "enabled = false"


def _no_view_section() -> str:
    return ""


# Makes the ``[view]`` section of every config write_config writes; tests/e2e/conftest.py
# points it at a fresh PostgreSQL database per server when e2e runs on that backend.
VIEW_SECTION: list[Callable[[], str]] = [_no_view_section]


def write_config(
    data_dir: Path,
    partitions: int = 2,
    log_extra: str = "",
    limits: str = LIMITS_OFF,
    server_extra: str = "",
) -> Path:
    """A test server's TOML; ``limits`` is the body of its ``[limits]`` section,
    ``server_extra`` lines added to ``[server]``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir.parent / f"{data_dir.name}.toml"
    path.write_text(
        TEST_CONFIG.format(partitions=partitions, log_extra=log_extra, server_extra=server_extra)
        + FAST_HASH_TOML
        + f"\n[limits]\n{limits}\n"
        + VIEW_SECTION[0]()
    )
    return path


def launch(data_dir: Path, config_path: Path, port: int, extra_args: list[str]) -> OutlastProcess:
    log_path = data_dir.parent / f"{data_dir.name}.log"
    log = open(log_path, "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "outlast",
            "serve",
            "--config",
            str(config_path),
            "--data-dir",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{port}",
            *extra_args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    return OutlastProcess(data_dir, port, process, config_path, log_path, extra_args)


def start_outlast(
    data_dir: Path,
    *,
    partitions: int = 2,
    log_extra: str = "",
    extra_args: list[str] | None = None,
    limits: str = LIMITS_OFF,
    server_extra: str = "",
) -> OutlastProcess:
    config_path = write_config(data_dir, partitions, log_extra, limits, server_extra)
    proc = launch(data_dir, config_path, free_port(), extra_args or [])
    try:
        proc.wait_ready()
    except BaseException:
        proc.stop()
        raise
    return proc
