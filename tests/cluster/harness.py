"""A real local three-site cluster for tests: `outlast cluster up --detach` and down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    MessageDirection,
    RegisterResponse,
    Response,
    RoomMessagesResponse,
    RoomSendResponse,
)

from outlast.cluster.frontdoor import site_servers
from outlast.config import FAST_HASH_TOML, NO_LIMITS_TOML


@dataclass
class Cluster:
    dir: Path

    @property
    def description(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.dir / "cluster.json").read_text())
        return data

    @property
    def front_door(self) -> str:
        return str(self.description["front_door"])

    def site(self, name: str) -> dict[str, Any]:
        for site in self.description["sites"]:
            if site["name"] == name:
                return dict(site)
        raise KeyError(name)

    def site_url(self, name: str) -> str:
        return str(self.site(name)["url"])

    @property
    def names(self) -> list[str]:
        return [s["name"] for s in self.description["sites"]]

    def control(self, path: str, timeout: float = 300) -> str:
        req = urllib.request.Request(
            self.description["control_url"] + path, method="POST", data=b""
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return str(resp.read().decode())

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(
            self.description["control_url"] + "/status", timeout=10
        ) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data

    def burn(self, name: str) -> None:
        """A fire: kill -9 every process of the site and delete its data."""
        site = self.site(name)
        for pid in site["pids"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(site["data_dir"], ignore_errors=True)

    def rebuild(self, name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "outlast",
                "site",
                "rebuild",
                name,
                "--cluster",
                str(self.dir / "cluster.json"),
            ],
            capture_output=True,
            text=True,
            timeout=400,
        )

    def down(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "outlast", "cluster", "down", "--dir", str(self.dir)],
            capture_output=True,
            timeout=120,
        )


def leader_site(cluster: Cluster) -> str:
    """The site whose node leads the most streams (the worst one to lose)."""
    counts: dict[str, int] = {}
    for site in cluster.description["sites"]:
        try:
            with urllib.request.urlopen(
                site["monitor_url"] + "/jsz?streams=true&accounts=true", timeout=5
            ) as resp:
                jsz = json.loads(resp.read())
        except OSError:
            continue
        for account in jsz.get("account_details", []):
            for stream in account.get("stream_detail", []):
                leader = (stream.get("cluster") or {}).get("leader", "")
                if leader:
                    name = leader.rsplit("-", 1)[0]
                    counts[name] = counts.get(name, 0) + 1
        break
    return max(counts, key=lambda k: counts[k]) if counts else cluster.names[0]


def start_cluster(
    directory: Path,
    sites: int = 3,
    partitions: int = 2,
    site_toml: str = "",
    tls: bool = False,
    netns_args: tuple[str, ...] = (),
    disk_mb: int = 0,
    auth_toml: str = "",
    view: str = "sqlite",
) -> Cluster:
    """Start a cluster; ``site_toml`` is added to every site's configuration; ``tls``:
    `cluster up --tls` (a CA of its own, TLS on every link to and between nodes);
    ``netns_args``: e.g. ``("--netns", "--latency-ms", "10")``; ``disk_mb``: each
    site's data on a tmpfs of that size (root); ``auth_toml``: more keys of the
    ``[auth]`` table (which the fast-hash settings open); ``view``: `--view`
    (``postgresql``: a PostgreSQL server per site, two workers sharing it)."""
    directory.mkdir(parents=True, exist_ok=True)
    extra = directory.parent / f"{directory.name}-site.toml"
    extra.write_text(FAST_HASH_TOML + auth_toml + NO_LIMITS_TOML + site_toml)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "outlast",
            "cluster",
            "up",
            "--sites",
            str(sites),
            "--dir",
            str(directory),
            "--detach",
            "--partitions",
            str(partitions),
            "--site-config",
            str(extra),
            *(["--tls"] if tls else []),
            *netns_args,
            *(["--disk-mb", str(disk_mb)] if disk_mb else []),
            "--view",
            view,
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    cluster = Cluster(directory)
    if result.returncode != 0:
        cluster.down()
        log = directory / "supervisor.log"
        raise RuntimeError(
            f"cluster up failed: {result.stderr}\n{log.read_text() if log.exists() else ''}"
        )
    return cluster


def wait_until(predicate: Any, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


# --- Additions for the active-active, isolation and CLI tests -----------------------------

V3 = "/_matrix/client/v3"

# No hidden client-side retries: a test sees each answer of the server as it is.
NIO_CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=30)


def isolate(cluster: Cluster, name: str) -> None:
    """Cut every inter-site link of ``name`` (its own clients still reach it)."""
    cluster.control(f"/sites/{name}/isolate", timeout=10)


def heal(cluster: Cluster, name: str) -> None:
    cluster.control(f"/sites/{name}/heal", timeout=10)


def stream_leaders(cluster: Cluster, via: str) -> dict[str, str]:
    """Stream name -> site of its leader, as site ``via``'s node sees it ("" if none)."""
    url = cluster.site(via)["monitor_url"] + "/jsz?streams=true&accounts=true"
    with urllib.request.urlopen(url, timeout=5) as resp:
        jsz = json.loads(resp.read())
    leaders: dict[str, str] = {}
    for account in jsz.get("account_details", []):
        for stream in account.get("stream_detail", []):
            leader = (stream.get("cluster") or {}).get("leader", "") or ""
            leaders[stream["name"]] = leader.rsplit("-", 1)[0] if leader else ""
    return leaders


async def _step_down_until(
    cluster: Cluster, site: str, api: str, leads: Callable[[], bool], timeout: float
) -> None:
    """Ask JetStream (``api``: a leader step-down subject) to move a leader to ``site``'s
    node until ``leads()`` says it is there; an election in progress is asked again."""
    import nats

    nc = await nats.connect(cluster.site(site)["nats_url"])
    try:
        deadline = time.monotonic() + timeout
        while not leads():
            assert time.monotonic() < deadline, f"{site} did not become leader ({api})"
            request = {"placement": {"tags": [f"site:{site}"]}}
            with contextlib.suppress(Exception):
                await nc.request(api, json.dumps(request).encode(), 5)
            await asyncio.sleep(1.0)
    finally:
        await nc.close()


async def move_leader(cluster: Cluster, stream: str, site: str, timeout: float = 30) -> None:
    """Make ``site``'s node the leader of ``stream`` (a JetStream leader stepdown with a
    placement), and wait until the site's node sees itself as leader."""
    await _step_down_until(
        cluster,
        site,
        f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}",
        lambda: stream_leaders(cluster, site).get(stream) == site,
        timeout,
    )
    await wait_provable(cluster, stream, timeout)


def consumer_leader(cluster: Cluster, via: str, stream: str, consumer: str) -> str:
    """The site of the leader of ``consumer`` on ``stream`` as ``via``'s node sees it."""
    url = cluster.site(via)["monitor_url"] + "/jsz?consumers=true&accounts=true"
    with urllib.request.urlopen(url, timeout=5) as resp:
        jsz = json.loads(resp.read())
    for account in jsz.get("account_details", []):
        for detail in account.get("stream_detail", []):
            if detail["name"] != stream:
                continue
            for found in detail.get("consumer_detail") or []:
                if found.get("name") == consumer:
                    leader = (found.get("cluster") or {}).get("leader", "") or ""
                    return leader.rsplit("-", 1)[0] if leader else ""
    return ""


async def move_consumer_leader(
    cluster: Cluster, stream: str, consumer: str, site: str, timeout: float = 60
) -> None:
    """Make ``site``'s node the leader of a consumer (a stepdown with a placement)."""
    await _step_down_until(
        cluster,
        site,
        f"$JS.API.CONSUMER.LEADER.STEPDOWN.{stream}.{consumer}",
        lambda: consumer_leader(cluster, site, stream, consumer) == site,
        timeout,
    )


async def wait_provable(cluster: Cluster, stream: str, timeout: float = 30) -> None:
    """Wait until every site's node gives a stream-info answer the read barrier accepts.

    After a leader change, a node that has not caught up with it may answer for the
    stream itself for a while (longer on a loaded machine); requests at that site get
    503 until then. Tests that move leaders as a setup step wait this out.
    """
    import nats

    from outlast.log.leader import leader_last_seq

    for name in cluster.names:
        nc = await nats.connect(cluster.site(name)["nats_url"])
        try:
            deadline = time.monotonic() + timeout
            while True:
                with contextlib.suppress(Exception):  # no answer, or not provable yet
                    reply = await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=1)
                    leader_last_seq(json.loads(reply.data))
                    break
                assert time.monotonic() < deadline, f"{name} cannot prove {stream} current"
                await asyncio.sleep(0.1)
        finally:
            await nc.close()


def front_door_servers(cluster: Cluster) -> dict[str, str]:
    """The front door's own opinion of every site: server name -> "UP", "DOWN", ..."""
    with urllib.request.urlopen(cluster.description["stats_url"] + ";csv", timeout=5) as resp:
        text = resp.read().decode()
    return {name: row["status"].split(" ")[0] for name, row in site_servers(text).items()}


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def all_pids(description: dict[str, Any]) -> list[int]:
    """The supervisor's pid and every site process's pid listed in a description."""
    site_pids = [int(pid) for site in description["sites"] for pid in site["pids"]]
    return [int(description["supervisor_pid"]), *site_pids]


async def http(
    method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 20.0
) -> tuple[int | None, Any, dict[str, str]]:
    """One raw HTTP request (health and error checks): status, JSON body, headers.

    A transport failure (refused, reset, client timeout) is status None with the error.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.request(method, url, json=body, headers=headers) as resp,
        ):
            raw = await resp.read()
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                data = raw.decode(errors="replace")
            return resp.status, data, dict(resp.headers)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return None, repr(exc), {}


async def health(url: str, timeout: float = 5.0) -> int | None:
    status, _, _ = await http("GET", url + "/_outlast/health", timeout=timeout)
    return status


async def wait_for(
    probe: Callable[[], Awaitable[Any]], timeout: float, interval: float = 0.1
) -> tuple[Any, float]:
    """Poll ``probe`` until it returns something truthy: (value, seconds it took).

    Fails the test after ``timeout`` seconds, showing the last value.
    """
    started = time.monotonic()
    last: Any = None
    while time.monotonic() - started < timeout:
        last = await probe()
        if last:
            return last, time.monotonic() - started
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value {last!r})")


def nio_client(url: str, user: str = "", device_id: str | None = None) -> AsyncClient:
    return AsyncClient(url, user, device_id=device_id, config=NIO_CONFIG)


def session_at(client: AsyncClient, url: str) -> AsyncClient:
    """The same session (user, device, access token) talking to another site."""
    other = nio_client(url, client.user_id, client.device_id)
    other.access_token, other.user_id = client.access_token, client.user_id
    return other


async def nio_register(url: str, name: str, password: str | None = None) -> AsyncClient:
    client = nio_client(url, name)
    resp = await client.register(name, password or f"pw-{name}")
    assert isinstance(resp, RegisterResponse), f"register {name} at {url}: {resp!r}"
    return client


def ok(resp: Response, cls: type[Any]) -> Any:
    """Assert a nio response is the success type ``cls``, showing the server's error if not."""
    assert isinstance(resp, cls), f"expected {cls.__name__}, got {resp!r}"
    return resp


async def send_retrying(
    client: AsyncClient, room_id: str, body: str, txn_id: str, budget: float = 30.0
) -> tuple[str, float, int]:
    """Send like a Matrix client: on 5xx or no answer retry the same txnId (bounded).

    Returns (event_id, seconds until acknowledged, attempts).
    """
    started = time.monotonic()
    attempts = 0
    delay = 0.1
    while True:
        attempts += 1
        resp: Any
        try:
            resp = await client.room_send(
                room_id, "m.room.message", {"msgtype": "m.text", "body": body}, tx_id=txn_id
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            resp = exc  # no answer: retried like a 5xx
        if isinstance(resp, RoomSendResponse):
            return resp.event_id, time.monotonic() - started, attempts
        transport = getattr(resp, "transport_response", None)
        status = transport.status if transport is not None else None
        assert status is None or status >= 500 or status == 429, (
            f"send {body!r} via {client.homeserver} refused: {resp!r}"
        )
        if time.monotonic() - started > budget:
            raise AssertionError(
                f"send {body!r} via {client.homeserver} not acknowledged in {budget}s: {resp!r}"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def timeline(client: AsyncClient, room_id: str) -> list[dict[str, Any]]:
    """A room's whole visible timeline through this client's site, oldest first."""
    events: list[dict[str, Any]] = []
    start: str | None = None
    for _ in range(200):
        page = ok(
            await client.room_messages(room_id, start, direction=MessageDirection.back, limit=100),
            RoomMessagesResponse,
        )
        events.extend(e.source for e in page.chunk)
        if not page.end or not page.chunk:
            break
        start = page.end
    events.reverse()
    return events


def event_ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in events]


async def close_all(*clients: AsyncClient) -> None:
    for client in clients:
        await client.close()
