"""Where everything of a local cluster lives: ports, directories, configs, cluster.json."""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
import ssl
import string
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outlast.log.engine import NodeSpec
from outlast.log.names import Names
from outlast.log.tls import client_context

if TYPE_CHECKING:
    from outlast.cluster.certs import CertFiles
    from outlast.cluster.netns import SiteNet

SITE_NAMES = string.ascii_lowercase
# `--view postgresql`: the database each site's workers share, and the role they use
# (the private server's superuser, outlast/view/pg/private.py).
VIEW_DATABASE = "outlast_view"
POSTGRES_ROLE = "outlast"
VIEWS = ("sqlite", "postgresql")

# Listening ports of a local cluster are chosen below the kernel's ephemeral
# range. A port picked inside it (bind to port 0, then close) stays free only
# until the process that needs it binds it, seconds later; meanwhile any
# outgoing connection on the machine may get it as its source port, and the
# nats-server, worker or HAProxy then fails with "address already in use".
_LOWEST_PORT = 15000


def _ephemeral_floor() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PortPicker:
    """Free loopback ports outside the ephemeral range, never the same one twice."""

    def __init__(self, taken: Iterable[int] = ()) -> None:
        self.taken = set(taken)
        self.high = _ephemeral_floor() - 1
        self.low = _LOWEST_PORT if self.high - _LOWEST_PORT > 2000 else 1024

    def __call__(self) -> int:
        for _ in range(1000):
            port = random.randint(self.low, self.high)
            if port not in self.taken and _bindable(port):
                self.taken.add(port)
                return port
        raise OSError("no free loopback port found for the cluster")


@dataclass
class SitePlan:
    name: str
    data_dir: str
    generation: int
    client_port: int
    cluster_port: int
    monitor_port: int
    http_ports: list[int]
    relay_ports: dict[str, int] = field(default_factory=dict)  # to other site -> relay port
    # Where the node and workers listen (`--netns`: the site's namespace address) and
    # where this site's relays listen (`--netns`: the host end of its veth pair).
    host: str = "127.0.0.1"
    gateway: str = "127.0.0.1"
    namespace: str = ""  # `--netns`: the network namespace its processes run in
    # `--view postgresql`: the port of the site's own PostgreSQL server (0: SQLite views).
    postgres_port: int = 0

    @property
    def postgres_dir(self) -> Path:
        """The site's PostgreSQL files: under its data directory, so a fire takes them too."""
        return Path(self.data_dir) / f"postgres-{self.generation}"

    @property
    def postgres_dsn(self) -> str:
        return f"postgresql://{POSTGRES_ROLE}@{self.host}:{self.postgres_port}/{VIEW_DATABASE}"

    @property
    def node_name(self) -> str:
        """A node's identity; a rebuilt site gets a new one, never the burned one's."""
        return f"{self.name}-{self.generation}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_ports[0]}"

    @property
    def worker_urls(self) -> list[str]:
        return [f"http://{self.host}:{p}" for p in self.http_ports]

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"


@dataclass
class ClusterPlan:
    dir: str
    sites: list[SitePlan]
    partitions: int
    app_password: str
    sys_password: str
    front_door_port: int
    stats_port: int
    control_port: int
    server_name: str = "localhost"
    site_config_extra: str = ""
    admin_port: int = 0  # the front door's runtime API (drain a site before a planned stop)
    # Workers connect as ``worker`` (no stream management); ``app`` is the admin
    # credential of the supervisor, rebuild, restore and backup. Empty: workers use ``app``.
    worker_password: str = ""
    # TLS on every link to and between nodes, with a CA of this cluster's own in DIR/tls
    # (outlast/cluster/certs.py): mutual TLS on routes, verified TLS from every client.
    tls: bool = False
    # `--netns`: every site in a network namespace of its own, and the one-way delay
    # (plus up to ``jitter_ms``) the relays add to every byte between sites.
    netns: bool = False
    # `--disk-mb`: each site's data directory is a tmpfs of this many MiB (0: none).
    disk_mb: int = 0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    # Each site's view: a SQLite file per worker, or one PostgreSQL database per site
    # that all its workers share (one projects, the others follow: docs/scale.md).
    view: str = "sqlite"

    @staticmethod
    def new(
        directory: Path,
        sites: int,
        partitions: int,
        workers: int,
        site_config_extra: str = "",
        tls: bool = False,
        view: str = "sqlite",
    ) -> ClusterPlan:
        names = list(SITE_NAMES[:sites])
        free_port = PortPicker()
        site_plans = []
        for name in names:
            site_plans.append(
                SitePlan(
                    name=name,
                    data_dir=str(directory / name),
                    generation=1,
                    client_port=free_port(),
                    cluster_port=free_port(),
                    monitor_port=free_port(),
                    http_ports=[free_port() for _ in range(workers)],
                    postgres_port=free_port() if view == "postgresql" else 0,
                )
            )
        for site in site_plans:
            site.relay_ports = {
                other.name: free_port() for other in site_plans if other is not site
            }
        alphabet = string.ascii_letters + string.digits
        return ClusterPlan(
            dir=str(directory),
            sites=site_plans,
            partitions=partitions,
            app_password="".join(secrets.choice(alphabet) for _ in range(24)),
            sys_password="".join(secrets.choice(alphabet) for _ in range(24)),
            front_door_port=free_port(),
            stats_port=free_port(),
            control_port=free_port(),
            site_config_extra=site_config_extra,
            admin_port=free_port(),
            worker_password="".join(secrets.choice(alphabet) for _ in range(24)),
            tls=tls,
            view=view,
        )

    def use_namespaces(self, nets: list[SiteNet], latency_ms: float, jitter_ms: float) -> None:
        """`--netns`: each site listens in its own namespace, routes via its veth."""
        by_site = {n.site: n for n in nets}
        for site in self.sites:
            net = by_site[site.name]
            site.host, site.gateway, site.namespace = net.site_addr, net.host_addr, net.namespace
        self.netns, self.latency_ms, self.jitter_ms = True, latency_ms, jitter_ms

    def ports(self) -> set[int]:
        """Every port this plan uses (a rebuilt site's new ports must avoid them)."""
        used = {self.front_door_port, self.stats_port, self.control_port, self.admin_port}
        for s in self.sites:
            used |= {
                s.client_port,
                s.cluster_port,
                s.monitor_port,
                *s.http_ports,
                *s.relay_ports.values(),
            }
            if s.postgres_port:
                used.add(s.postgres_port)
        return used

    def site(self, name: str) -> SitePlan:
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(f"no site named {name!r}; sites are {[s.name for s in self.sites]}")

    @property
    def tls_dir(self) -> Path:
        return Path(self.dir) / "tls"

    @property
    def tls_ca(self) -> str:
        """The cluster CA's certificate ("" without TLS): what every client verifies with."""
        return str(self.tls_dir / "ca.pem") if self.tls else ""

    def node_cert(self, site: SitePlan) -> CertFiles | None:
        """This node's certificate, made (with the CA, the first time) when missing."""
        if not self.tls:
            return None
        from outlast.cluster.certs import CertFiles, issue, make_ca

        ca_key = self.tls_dir / "ca-key.pem"
        ca = (
            CertFiles(self.tls_ca, self.tls_ca, str(ca_key))
            if ca_key.exists()
            else make_ca(self.tls_dir)
        )
        files = CertFiles(
            self.tls_ca,
            str(self.tls_dir / f"{site.node_name}.pem"),
            str(self.tls_dir / f"{site.node_name}-key.pem"),
        )
        if Path(files.cert).exists() and Path(files.key).exists():
            return files
        return issue(ca, self.tls_dir, site.node_name)

    def front_door_pem(self) -> str:
        """HAProxy's certificate and key in one file ("" without TLS), made when missing."""
        if not self.tls:
            return ""
        combined = self.tls_dir / "frontdoor-combined.pem"
        if not combined.exists():
            from outlast.cluster.certs import CertFiles, issue

            self.node_cert(self.sites[0])  # the CA exists from here on
            ca = CertFiles(self.tls_ca, self.tls_ca, str(self.tls_dir / "ca-key.pem"))
            files = issue(ca, self.tls_dir, "frontdoor")
            data = Path(files.cert).read_bytes() + Path(files.key).read_bytes()
            fd = os.open(combined, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as sink:
                sink.write(data)
        return str(combined)

    @property
    def front_door_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.front_door_port}"

    def tls_context(self) -> ssl.SSLContext | None:
        """How the supervisor and the admin tools verify the nodes (None: plain TCP)."""
        return client_context(self.tls_ca)

    def node_spec(self, site: SitePlan) -> NodeSpec:
        """Node config: routes go through this site's relays to every other site."""
        routes = [f"nats-route://{site.gateway}:{port}" for port in site.relay_ports.values()]
        cert = self.node_cert(site)
        return NodeSpec(
            name=site.node_name,
            host=site.host,
            store_dir=Path(site.data_dir) / f"nats-{site.generation}" / "jetstream",
            client_port=site.client_port,
            cluster_port=site.cluster_port,
            monitor_port=site.monitor_port,
            routes=routes,
            site_tag=site.name,
            sync_always=True,
            app_password=self.app_password,
            sys_password=self.sys_password,
            worker_password=self.worker_password,
            worker_denied=worker_denied(self.names()),
            # Gossiped route addresses would bypass the relays; advertise a closed
            # port so every route between sites goes through a relay that can be cut.
            cluster_advertise="127.0.0.1:1",
            tls_ca=cert.ca if cert else "",
            tls_cert=cert.cert if cert else "",
            tls_key=cert.key if cert else "",
        )

    def names(self) -> Names:
        """The deployment's stream names (site configs keep the default prefix)."""
        return Names(partitions=self.partitions)

    def worker_url(self, site: SitePlan) -> str:
        """What a worker connects with: the least-privileged user when there is one."""
        if not self.worker_password:
            return self.app_url(site)
        return f"nats://worker:{self.worker_password}@{site.host}:{site.client_port}"

    def app_url(self, site: SitePlan) -> str:
        return f"nats://app:{self.app_password}@{site.host}:{site.client_port}"

    def sys_url(self, site: SitePlan) -> str:
        return f"nats://sys:{self.sys_password}@{site.host}:{site.client_port}"

    def worker_config(self, site: SitePlan, worker: int) -> str:
        data = Path(site.data_dir) / f"outlast-{site.generation}" / f"worker-{worker}"
        return (
            "[server]\n"
            f'server_name = "{self.server_name}"\n'
            f'site = "{site.name}"\n'
            f'listen = "{site.host}:{site.http_ports[worker]}"\n'
            f'data_dir = "{data}"\n'
            # The HAProxy front door connects from loopback (`--netns`: from the host
            # end of the site's veth) and adds X-Forwarded-For: the site counts each
            # client by that address, not all of them as one.
            f"trusted_proxies = {json.dumps(sorted({'127.0.0.1', site.gateway}))}\n\n"
            "[log]\n"
            f'nats_urls = ["{self.worker_url(site)}"]\n'
            # Streams and buckets are made by `cluster up` with the admin credential.
            f"manage_streams = {'false' if self.worker_password else 'true'}\n"
            f"partitions = {self.partitions}\n"
            + (f'tls_ca = "{self.tls_ca}"\n' if self.tls else "")
            + "replicas = 3\n"
            f'monitor_url = "{site.monitor_url}"\n\n' + self.view_config(site)
        )

    def view_config(self, site: SitePlan) -> str:
        """The extra TOML, with the site's PostgreSQL view in its ``[view]`` table."""
        extra = self.site_config_extra
        if self.view != "postgresql":
            return extra
        lines = f'backend = "postgresql"\ndsn = "{site.postgres_dsn}"\n'
        if "[view]\n" in extra:  # one table only: TOML refuses a second [view]
            return extra.replace("[view]\n", "[view]\n" + lines, 1)
        return f"{extra}\n[view]\n{lines}"


def worker_denied(names: Names) -> list[str]:
    """JetStream API requests a worker's credential is refused.

    Workers publish facts, read streams (info, direct and leader gets) and run
    consumers (their own durable push queue, ordered view consumers). They never
    create, change, delete, snapshot or restore a stream, move its leader or peers,
    delete single messages, purge a log stream or delete the shared push consumer
    (nats-py never deletes consumers itself; the view's are ephemeral). Object-store buckets stay
    purgeable by subject: deleting a media object or an old view snapshot is a
    subject-filtered purge, and NATS permissions cannot look inside the request.
    """
    log_streams = [spec.name for spec in (*names.streams(), *names.control_streams())]
    log_streams.append(f"KV_{names.backup_bucket}")  # the backup schedule's lease and claims
    return [
        "$JS.API.STREAM.CREATE.>",
        "$JS.API.STREAM.UPDATE.>",
        "$JS.API.STREAM.DELETE.>",
        "$JS.API.STREAM.MSG.DELETE.>",
        "$JS.API.STREAM.SNAPSHOT.>",
        "$JS.API.STREAM.RESTORE.>",
        "$JS.API.STREAM.PEER.>",
        "$JS.API.STREAM.LEADER.>",
        "$JS.API.META.>",
        "$JS.API.ACCOUNT.PURGE.>",
        "$JS.API.SERVER.>",
        *(f"$JS.API.STREAM.PURGE.{name}" for name in log_streams),
        # The push queue's durable consumer is shared by every worker of every site;
        # its ack floor is what keeps a notification from being sent twice or lost.
        *(
            f"$JS.API.CONSUMER.DELETE.{names.rooms_stream(p)}.{names.push_consumer}"
            for p in range(names.partitions)
        ),
    ]


def describe(
    plan: ClusterPlan,
    pids: dict[str, list[int]],
    status: dict[str, str],
    supervisor_pid: int,
    nats_version: str,
) -> dict[str, Any]:
    """The cluster description written to DIR/cluster.json and printed by `cluster up`."""
    return {
        "front_door": plan.front_door_url,
        "control_url": f"http://127.0.0.1:{plan.control_port}",
        "stats_url": f"http://127.0.0.1:{plan.stats_port}/",
        "supervisor_pid": supervisor_pid,
        "dir": plan.dir,
        "server_name": plan.server_name,
        "partitions": plan.partitions,
        "nats_server_version": nats_version,
        "tls_ca": plan.tls_ca,  # verify the nodes with it (every nats_url needs TLS)
        "view": plan.view,
        "settings": {"replicas": 3, "sync_interval": "always", "placement": "unique_tag site:"},
        "network": {
            "mode": "netns" if plan.netns else "loopback",
            "latency_ms": plan.latency_ms,
            "jitter_ms": plan.jitter_ms,
        },
        "sites": [
            {
                "name": s.name,
                "url": s.url,
                "worker_urls": s.worker_urls,
                "pids": pids.get(s.name, []),
                "data_dir": s.data_dir,
                "node": s.node_name,
                "nats_url": plan.app_url(s),
                "monitor_url": s.monitor_url,
                "namespace": s.namespace,
                "status": status.get(s.name, "unknown"),
                "postgres": (
                    {
                        "port": s.postgres_port,
                        "dir": str(s.postgres_dir),
                        "dsn": s.postgres_dsn,
                        "pid": postgres_pid(s.postgres_dir),
                    }
                    if s.postgres_port
                    else None
                ),
            }
            for s in plan.sites
        ],
        "plan": asdict(plan),
    }


def postgres_pid(directory: Path) -> int | None:
    """The postmaster's pid from its lock file (None when it is not running or gone)."""
    try:
        return int((directory / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def load_description(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"outlast: cannot read cluster description {path}: {exc}") from exc
    return data
