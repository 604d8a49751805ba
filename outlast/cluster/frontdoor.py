"""The local front door: HAProxy health-checking every site.

It sends each request to a healthy site only (``/_outlast/health`` answers 200
only when the site can commit and its view is current). In production a
global load balancer — DNS with health checks, or anycast — plays this role;
see the README's deployment section.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import io
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path


def haproxy_binary() -> str:
    found = shutil.which("haproxy")
    if not found:
        raise FileNotFoundError(
            "haproxy not found: the local front door needs it (Debian: apt-get install haproxy)"
        )
    return found


def _die_with_supervisor() -> None:
    """SIGTERM HAProxy when the supervisor dies: it is not listed among the sites' pids,
    so nothing else (not even `outlast cluster down`) would stop it after a crash."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(frozen=True)
class Backend:
    name: str
    port: int
    host: str = "127.0.0.1"  # `--netns`: the site's namespace address, reached over its veth


def render_haproxy(
    port: int, backends: list[Backend], stats_port: int, admin_port: int = 0, tls_pem: str = ""
) -> str:
    """Round-robin over healthy sites; a failed check takes a site out within ~1 s.

    ``option forwardfor`` appends the client's address to X-Forwarded-For; the
    sites trust it from this proxy only (``server.trusted_proxies``), so their
    rate limits count clients, not the front door.

    ``retry-on conn-failure`` only re-sends requests that never reached a
    site, so no request is replayed after a site may have acted on it — the
    client's own txnId retry handles the in-doubt case.

    ``admin_port`` opens HAProxy's runtime API on loopback: a site being
    drained is set to the ``drain`` state there, so it gets no new requests
    while those in flight finish. Its failing health check alone would not
    do: a server marked down has its sessions shut down (that is right for
    a burned site, wrong for a planned stop).

    ``tls_pem`` (certificate and key in one file): clients speak HTTPS to the
    front door, which forwards plain HTTP to the sites on loopback.
    """
    ssl = f" ssl crt {tls_pem}" if tls_pem else ""
    admin = f"    stats socket ipv4@127.0.0.1:{admin_port} level admin\n" if admin_port else ""
    servers = "\n".join(
        f"    server {b.name} {b.host}:{b.port} check inter 500ms fall 2 rise 2" for b in backends
    )
    return f"""global
    maxconn 4000
{admin}
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout http-request 10s
    timeout server 120s
    timeout http-keep-alive 30s
    option forwardfor
    retries 3
    option redispatch 1
    retry-on conn-failure

frontend outlast
    bind 127.0.0.1:{port}{ssl}
    default_backend sites

frontend stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /

backend sites
    balance roundrobin
    option httpchk GET /_outlast/health
    http-check expect status 200
    default-server on-marked-down shutdown-sessions
{servers}
"""


class FrontDoor:
    def __init__(
        self,
        directory: Path,
        port: int,
        stats_port: int,
        backends: list[Backend],
        admin_port: int = 0,
        tls_pem: str = "",
    ) -> None:
        self.directory = directory
        self.tls_pem = tls_pem
        self.port = port
        self.stats_port = stats_port
        self.admin_port = admin_port
        self.backends = backends
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_pem else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "haproxy.cfg"
        config.write_text(
            render_haproxy(self.port, self.backends, self.stats_port, self.admin_port, self.tls_pem)
        )
        log = open(self.directory / "haproxy.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [haproxy_binary(), "-f", str(config), "-db"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_supervisor,
        )
        log.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def command(self, line: str, timeout: float = 5.0) -> str:
        """One command on HAProxy's runtime API (the admin socket), and its answer."""
        if not self.admin_port:
            raise RuntimeError("this front door was started without a runtime API port")
        with socket.create_connection(("127.0.0.1", self.admin_port), timeout=timeout) as sock:
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode(errors="replace")

    def servers_of(self, site: str) -> list[str]:
        """The front door's server names for a site's workers: ``a``, ``a1``, ``a2`` ..."""
        return [
            b.name for b in self.backends if b.name == site or b.name.removeprefix(site).isdigit()
        ]

    def set_state(self, site: str, state: str) -> None:
        """``drain`` (no new requests; those in flight finish) or ``ready``."""
        for server in self.servers_of(site):
            answer = self.command(f"set server sites/{server} state {state}").strip()
            if answer:
                raise RuntimeError(f"front door refused {state} for {server}: {answer}")

    def retarget(self, site: str, host: str, ports: list[int]) -> None:
        """Point the site's servers at new ports (a rebuilt site's workers listen on new
        ones), at once through the runtime API and in the config a restart would read."""
        names = self.servers_of(site)
        if len(names) != len(ports):
            raise ValueError(f"site {site}: {len(names)} front-door servers, {len(ports)} ports")
        moved = dict(zip(names, ports, strict=True))
        self.backends = [
            Backend(b.name, moved[b.name], host) if b.name in moved else b for b in self.backends
        ]
        (self.directory / "haproxy.cfg").write_text(
            render_haproxy(self.port, self.backends, self.stats_port, self.admin_port, self.tls_pem)
        )
        if self.process is None or self.process.poll() is not None:
            return
        for name, port in moved.items():
            answer = self.command(f"set server sites/{name} addr {host} port {port}").strip()
            if answer and "change" not in answer:
                raise RuntimeError(f"front door refused the new address of {name}: {answer}")

    def servers(self) -> dict[str, dict[str, str]]:
        """Per server of the sites backend: its stats row (status, scur, ...)."""
        return site_servers(self.command("show stat"))


def site_servers(stats_csv: str) -> dict[str, dict[str, str]]:
    """The sites backend's servers in HAProxy's CSV stats (the admin socket's
    ``show stat`` or the stats page's ``;csv``), each with its row."""
    return {
        row["svname"]: row
        for row in csv.DictReader(io.StringIO(stats_csv.lstrip("# ")))
        if row.get("pxname") == "sites" and row.get("svname") not in ("FRONTEND", "BACKEND")
    }
