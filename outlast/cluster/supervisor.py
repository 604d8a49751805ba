"""Run a local multi-site cluster: every site's node and workers, the links, the front door.

The supervisor plays the datacenters, the WAN and the global load balancer. It
never restarts a site on its own: a site that dies stays dead until someone
restores it (`outlast site rebuild`, or a drill's power-on), exactly as a
burned datacenter would. The one exception is its quorum guard (guard.py): a
node cut off from a quorum is stopped (a beacon answers PARK on its port
meanwhile), and started again once a quorum of its peers answers, so that its
return forces no new election. A single worker
that dies while the rest of its site lives is a process failure, not a site
loss: it is started again, as a process manager would (revive.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from outlast.clock import SKEW_ENV
from outlast.cluster import netns
from outlast.cluster.disks import mount_small_disk, unmount_small_disk
from outlast.cluster.frontdoor import Backend, FrontDoor
from outlast.cluster.guard import Beacon, QuorumGuard
from outlast.cluster.links import Links
from outlast.cluster.plan import VIEW_DATABASE, ClusterPlan, SitePlan, describe, postgres_pid
from outlast.cluster.replica_repair import ReplicaAudit
from outlast.cluster.revive import Revival
from outlast.cluster.streams import create_streams
from outlast.log.engine import NatsNode, nats_server_binary, pid_alive
from outlast.view.pg import private

log = logging.getLogger(__name__)

Progress = Callable[[str], Awaitable[None]]


def nats_version() -> str:
    try:
        out = subprocess.run(
            [nats_server_binary(), "--version"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# `--view postgresql`: a killed postmaster's backends take a moment to notice and
# exit; until then a restart on the same files is refused.
POSTGRES_START_ATTEMPTS = 5


class SiteProcesses:
    """The processes of one site: its JetStream node, its PostgreSQL server (with
    ``--view postgresql``) and its Outlast workers."""

    def __init__(self, plan: ClusterPlan, site: SitePlan) -> None:
        self.plan = plan
        self.site = site
        self.node: NatsNode | None = None
        self.postgres: private.PrivateCluster | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        # While the quorum guard keeps the node parked: what answers PARK on its port.
        self.beacon: Beacon | None = None
        # A drill's `skew`: the workers' wall clock is off by this much (outlast/clock.py).
        self.skew_s = 0.0

    def pids(self) -> list[int]:
        """Every process of the site (what a drill's fire or power cut kills)."""
        pids = []
        if self.node is not None and self.node.process is not None:
            pids.append(self.node.process.pid)
        postmaster = self.postgres_pid()
        if postmaster is not None:
            pids.append(postmaster)
        pids += [w.pid for w in self.workers]
        if self.beacon is not None and self.beacon.pid is not None:
            pids.append(self.beacon.pid)  # a fire on a parked site silences it too
        return pids

    def postgres_pid(self) -> int | None:
        return postgres_pid(self.site.postgres_dir) if self.postgres is not None else None

    def alive(self) -> bool:
        procs = [w for w in self.workers]
        if self.node is not None and self.node.process is not None:
            procs.append(self.node.process)
        if self.postgres is not None and not _alive(self.postgres_pid()):
            return False
        return bool(procs) and all(p.poll() is None for p in procs)

    def start_postgres(self) -> None:
        """`--view postgresql`: the site's own server, on its disk, durable; its database."""
        if not self.site.postgres_port:
            return
        for attempt in range(POSTGRES_START_ATTEMPTS):
            try:
                self.postgres = private.start(
                    self.site.postgres_dir,
                    self.site.postgres_port,
                    durable=True,
                    host=self.site.host,
                    prefix=self.prefix(),
                )
                break
            except RuntimeError:
                if attempt == POSTGRES_START_ATTEMPTS - 1:
                    raise
                time.sleep(2.0)
        assert self.postgres is not None
        self.postgres.create_database(VIEW_DATABASE)

    def stop_postgres(self) -> None:
        pg, self.postgres = self.postgres, None
        if pg is not None:
            with contextlib.suppress(RuntimeError):  # already dead (killed by a drill)
                pg.stop("fast")

    def start_node(self) -> None:
        self.stop_beacon()  # whoever starts the node, its port must be free
        spec = self.plan.node_spec(self.site)
        config = Path(self.site.data_dir) / f"nats-{self.site.generation}" / "nats.conf"
        self.node = NatsNode(spec, config, prefix=self.prefix())
        self.node.start()

    def start_beacon(self) -> Beacon:
        """Answer PARK on the node's route address while the guard keeps it stopped
        (guard.py); like the node, inside the site's namespace with `--netns`."""
        self.stop_beacon()
        self.beacon = Beacon(self.site.host, self.site.cluster_port, self.prefix())
        self.beacon.start()
        return self.beacon

    def stop_beacon(self) -> None:
        beacon, self.beacon = self.beacon, None
        if beacon is not None:
            beacon.stop()

    def prefix(self) -> list[str]:
        """`--netns`: what runs this site's processes inside its namespace."""
        return netns.exec_prefix(self.site.namespace) if self.site.namespace else []

    def start_workers(self) -> None:
        self.workers = [self.spawn_worker(i) for i in range(len(self.site.http_ports))]

    def spawn_worker(self, index: int) -> subprocess.Popen[bytes]:
        config = Path(self.site.data_dir) / f"worker-{self.site.generation}-{index}.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(self.plan.worker_config(self.site, index))
        with open(config.with_suffix(".log"), "ab") as log_file:
            return subprocess.Popen(
                [*self.prefix(), sys.executable, "-m", "outlast", "serve", "--config", str(config)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.worker_env(),
            )

    def exited_workers(self) -> list[int]:
        return [i for i, w in enumerate(self.workers) if w.poll() is not None]

    def rest_alive(self) -> bool:
        """The site's node (and PostgreSQL) run: a missing worker is one process's
        failure, not the site's."""
        node = self.node.process if self.node is not None else None
        if node is None or node.poll() is not None:
            return False
        return self.postgres is None or _alive(self.postgres_pid())

    def worker_env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop(SKEW_ENV, None)
        if self.skew_s:
            env[SKEW_ENV] = str(self.skew_s)
        return env

    def drain_workers(self) -> None:
        """Every worker reports not ready (``draining``) from now on."""
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGUSR1)

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in self.workers:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=5)

    def stop_node_lame_duck(self, timeout: float = 30.0) -> None:
        """Stop the node in lame-duck mode (SIGUSR2, as `nats-server --signal ldm`): it
        stops taking clients, steps down from anything it still leads and exits
        (at once when no client is left)."""
        node = self.node
        proc = node.process if node is not None else None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGUSR2)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            assert node is not None
            node.stop()

    def stop(self) -> None:
        self.stop_workers()
        self.stop_postgres()
        self.stop_beacon()
        if self.node is not None:
            self.node.stop()


def _alive(pid: int | None) -> bool:
    return pid is not None and pid_alive(pid)


async def site_healthy(url: str, session: aiohttp.ClientSession) -> bool:
    try:
        async with session.get(
            url + "/_outlast/health", timeout=aiohttp.ClientTimeout(total=3)
        ) as r:
            return r.status == 200
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False


class Supervisor:
    def __init__(self, plan: ClusterPlan) -> None:
        self.plan = plan
        self.sites = {s.name: SiteProcesses(plan, s) for s in plan.sites}
        self.links = Links(plan.latency_ms / 1000, plan.jitter_ms / 1000)
        self.nets = {n.site: n for n in netns.load_record(Path(plan.dir))} if plan.netns else {}
        self.cuts: dict[str, str] = {}  # `--netns`: site -> direction of its kernel cut
        self.front_door = FrontDoor(
            Path(plan.dir) / "frontdoor",
            plan.front_door_port,
            plan.stats_port,
            [Backend(s.name, s.http_ports[0], s.host) for s in plan.sites]
            + [
                Backend(f"{s.name}{i}", p, s.host)
                for s in plan.sites
                for i, p in enumerate(s.http_ports[1:], 1)
            ],
            plan.admin_port,
            tls_pem=plan.front_door_pem(),
        )
        self.status: dict[str, str] = {s.name: "starting" for s in plan.sites}
        self.version = nats_version()
        self.stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._busy: set[str] = set()
        self.drained: set[str] = set()
        self.guard = QuorumGuard(self.sites, self._busy)
        self._guard: asyncio.Task[None] | None = None
        self.audit = ReplicaAudit(self, self._busy)
        self.revival = Revival()
        self._audit_task: asyncio.Task[None] | None = None

    @property
    def description_path(self) -> Path:
        return Path(self.plan.dir) / "cluster.json"

    def description(self) -> dict[str, Any]:
        pids = {name: sp.pids() for name, sp in self.sites.items()}
        data = describe(self.plan, pids, self.status, os.getpid(), self.version)
        data["replica_audit"] = self.audit.record
        # What the quorum guard did (parked, starting, restarted; wall-clock times):
        # a drill places its clients' waits against these.
        data["guard_events"] = self.guard.events[-50:]
        return data

    def write_description(self) -> None:
        tmp = self.description_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.description(), indent=2))
        tmp.replace(self.description_path)

    async def start(self, progress: Progress, timeout: float = 180.0) -> None:
        Path(self.plan.dir).mkdir(parents=True, exist_ok=True)
        if self.plan.netns:
            loop = asyncio.get_running_loop()
            nets = list(self.nets.values())
            await loop.run_in_executor(None, netns.create, Path(self.plan.dir), nets)
            await progress(f"{len(nets)} network namespaces and veth pairs made")
        for site in self.plan.sites:
            for other, port in site.relay_ports.items():
                target = self.plan.site(other)
                self.links.add(
                    site.name, other, port, target.cluster_port, site.gateway, target.host
                )
        await self.links.start()
        if self.plan.disk_mb:
            for site in self.plan.sites:
                mount_small_disk(Path(site.data_dir), self.plan.disk_mb)
            await progress(f"each site's data on a tmpfs of {self.plan.disk_mb} MiB")
        for name, sp in self.sites.items():
            sp.start_node()
            await progress(f"site {name}: nats-server {sp.site.node_name} started")
        for sp in self.sites.values():
            assert sp.node is not None
            await sp.node.wait_ready()
        await create_streams(self.plan, progress)
        loop = asyncio.get_running_loop()
        for name, sp in self.sites.items():
            if sp.site.postgres_port:
                await loop.run_in_executor(None, sp.start_postgres)
                await progress(f"site {name}: PostgreSQL view on port {sp.site.postgres_port}")
        for name, sp in self.sites.items():
            sp.start_workers()
            await progress(f"site {name}: outlast worker(s) started")
        self.front_door.start()
        await self._start_control()
        self.write_description()
        await self.wait_healthy(list(self.sites), progress, timeout)
        await self._wait_front_door(timeout)
        await self.balance(progress)
        self._monitor = asyncio.create_task(self._watch())
        self._guard = asyncio.create_task(self.guard.run(self.stopping))
        self._audit_task = asyncio.create_task(self.audit.run(self.stopping, progress))
        self.write_description()
        await progress(f"front door {self.description()['front_door']} ready")

    async def wait_healthy(self, names: list[str], progress: Progress, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = set(names)
        async with aiohttp.ClientSession() as session:
            while pending:
                for name in list(pending):
                    sp = self.sites[name]
                    if not sp.alive():
                        raise RuntimeError(
                            f"site {name} exited while starting; see {sp.site.data_dir}"
                        )
                    if await site_healthy(sp.site.url, session):
                        pending.discard(name)
                        self.status[name] = "up"
                        await progress(f"site {name}: healthy at {sp.site.url}")
                if pending:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"sites not healthy in {timeout}s: {sorted(pending)}")
                    await asyncio.sleep(0.3)

    async def _wait_front_door(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        tls = self.plan.tls_context()
        connector = aiohttp.TCPConnector(ssl=tls) if tls is not None else None
        async with aiohttp.ClientSession(connector=connector) as session:
            while True:
                proc = self.front_door.process
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(
                        f"haproxy exited; see {self.front_door.directory / 'haproxy.log'}"
                    )
                if await site_healthy(self.front_door.url, session):
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError("front door did not become ready")
                await asyncio.sleep(0.2)

    async def _watch(self) -> None:
        """Keep the status in cluster.json current: up, unhealthy, down, isolated."""
        async with aiohttp.ClientSession() as session:
            while not self.stopping.is_set():
                isolated = set(self.links.isolated()) | set(self.cuts)
                for name, sp in self.sites.items():
                    if name in self._busy:
                        continue
                    self._revive(name, sp)
                    if name in self.guard.parked:
                        status = "parked"  # node stopped while cut off from a quorum
                    elif not sp.alive():
                        status = "drained" if name in self.drained else "down"
                    elif name in isolated:
                        status = "isolated"
                    else:
                        status = "up" if await site_healthy(sp.site.url, session) else "unhealthy"
                    self.status[name] = status
                with contextlib.suppress(OSError):
                    self.write_description()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 1.0)

    def _revive(self, name: str, sp: SiteProcesses) -> None:
        """A worker that died in a living site is started again (revive.py)."""
        if name in self.guard.parked or name in self.drained:
            return
        for index in self.revival.due(name, sp.exited_workers(), sp.rest_alive(), time.monotonic()):
            code = sp.workers[index].returncode
            sp.workers[index] = sp.spawn_worker(index)
            log.warning(
                "site %s: worker %d exited (code %s); started again as pid %d",
                name, index, code, sp.workers[index].pid,
            )  # fmt: skip

    async def balance(self, progress: Progress) -> None:
        """Spread stream leaders round robin over the sites (see balance.py)."""
        from outlast.log.cluster import balance_leaders
        from outlast.log.names import Names

        layout = Names(partitions=self.plan.partitions)
        streams = [s.name for s in [*layout.streams(), *layout.control_streams()]]
        nodes = [s.node_name for s in self.plan.sites]
        placed = await balance_leaders(
            self.plan.app_url(self.plan.sites[0]), streams, nodes, tls=self.plan.tls_context()
        )
        await progress(f"stream leaders spread over sites: {len(placed)}/{len(streams)} placed")

    # -- faults and repairs, used by drills, tests and `outlast site rebuild` --

    def isolate(self, name: str, cut: bool, direction: str = "both") -> None:
        """Cut a site off from the others (``direction``: ``in``/``out`` with --netns only)."""
        site = self.plan.site(name)
        if direction not in netns.DIRECTIONS:
            raise ValueError(f"direction must be one of {netns.DIRECTIONS}")
        if not self.plan.netns:
            if direction != "both":
                raise ValueError("a one-way partition needs a cluster started with --netns")
            self.links.isolate(name, cut)
            return
        # The kernel drops the packets: routes time out (ping_max) as on a real WAN.
        net = self.nets[name]
        if cut:
            netns.cut(net, site.cluster_port, list(site.relay_ports.values()), direction)
            self.cuts[name] = direction
        else:
            netns.heal(net)
            self.cuts.pop(name, None)
        log.info("site %s %s in the kernel (%s)", name, "cut" if cut else "healed", direction)

    def lose(self, name: str, percent: int) -> int:
        """Drop ``percent``% of a site's route packets at random (0: stop); --netns only.
        Returns how many packets the rules it replaced dropped."""
        from outlast.cluster.netfaults import set_loss

        site = self.plan.site(name)
        if not self.plan.netns:
            raise ValueError(
                "packet loss needs a cluster started with --netns (the loopback relays "
                "carry TCP streams and cannot drop a packet)"
            )
        dropped = set_loss(
            self.nets[name], site.cluster_port, list(site.relay_ports.values()), percent
        )
        log.info("site %s: %d%% of route packets dropped", name, percent)
        return dropped

    def spike(self, name: str, ms: float) -> dict[str, Any]:
        """Add ``ms`` of delay to every link to and from a site (0: back to normal)."""
        self.plan.site(name)
        if not 0 <= ms <= 10_000:
            raise ValueError(f"a spike must be 0-10000 ms, not {ms}")
        touched = self.links.set_delay(name, ms / 1000)
        return {"site": name, "extra_ms": ms, "links": [f"{a}->{b}" for a, b in touched]}

    async def power_on(self, name: str, progress: Progress) -> None:
        """Restart a site's processes on its existing disks (after a power loss)."""
        sp = self.sites[name]
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sp.stop)
        self.drained.discard(name)
        sp.start_node()
        assert sp.node is not None
        await sp.node.wait_ready()
        await loop.run_in_executor(None, sp.start_postgres)
        sp.start_workers()
        await self.wait_healthy([name], progress, 180)
        # A drained site was also set to drain at the front door: it takes traffic again.
        await asyncio.get_running_loop().run_in_executor(
            None, self.front_door.set_state, name, "ready"
        )

    async def skew(self, name: str, seconds: float, progress: Progress) -> dict[str, Any]:
        """Restart a site's workers with their wall clock ``seconds`` off (0: right again).

        Linux has no per-process CLOCK_REALTIME, so the offset is an environment
        variable outlast/clock.py reads; the node (nats-server) keeps the host's time.
        """
        sp = self.sites[name]
        async with self._claim(name, "restarting"):
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sp.stop_workers)
            sp.skew_s = seconds
            sp.start_workers()
            await progress(f"site {name}: workers restarted with their clock {seconds:+g}s off")
            self.write_description()
            await self.wait_healthy([name], progress, 120)
        return {"site": name, "skew_s": seconds, "pids": sp.pids()}

    async def rebuild(self, name: str, progress: Progress) -> dict[str, Any]:
        from outlast.cluster.rebuild import rebuild_site

        if name in self._busy:
            raise RuntimeError(f"site {name} is already being rebuilt")
        self._busy.add(name)
        self.status[name] = "rebuilding"
        try:
            return await rebuild_site(self, name, progress)
        finally:
            self._busy.discard(name)

    # -- planned maintenance: drain, restart, roll --

    async def drain(self, name: str, progress: Progress) -> dict[str, Any]:
        """Take a site out of service without a pause for the others (see maintenance.py)."""
        from outlast.cluster.maintenance import drain_site

        async with self._claim(name, "draining"):
            return await drain_site(self, name, progress)

    async def restart(self, name: str, progress: Progress) -> dict[str, Any]:
        from outlast.cluster.maintenance import even_out, restart_site

        async with self._claim(name, "restarting"):
            result = await restart_site(self, name, progress)
        await even_out(self, progress)
        return result

    async def roll(self, progress: Progress) -> dict[str, Any]:
        """Restart every site, one after the other; return once all are back and healthy."""
        from outlast.cluster.maintenance import even_out, restart_site

        started = time.monotonic()
        results = []
        for site in self.plan.sites:
            async with self._claim(site.name, "restarting"):
                results.append(await restart_site(self, site.name, progress))
        await even_out(self, progress)
        await self.wait_healthy(list(self.sites), progress, 120)
        elapsed = round(time.monotonic() - started, 1)
        await progress(f"every site restarted and healthy in {elapsed}s")
        return {"sites": results, "seconds": elapsed}

    @contextlib.asynccontextmanager
    async def _claim(self, name: str, status: str) -> AsyncIterator[None]:
        """One action at a time per site; the monitor leaves its status alone meanwhile."""
        self.plan.site(name)
        if name in self._busy:
            raise RuntimeError(f"site {name} is busy with another action")
        self._busy.add(name)
        self.status[name] = status
        try:
            yield
        finally:
            self._busy.discard(name)
            self.revival.forget(name)  # its workers were (re)started by the action

    # -- control API --

    async def _start_control(self) -> None:
        app = web.Application()
        app.router.add_get("/status", self._h_status)
        app.router.add_post("/sites/{name}/isolate", self._h_isolate)
        app.router.add_post("/sites/{name}/heal", self._h_heal)
        app.router.add_post("/sites/{name}/loss", self._h_loss)
        app.router.add_post("/sites/{name}/delay", self._h_delay)
        app.router.add_post("/sites/{name}/power-on", self._h_power_on)
        app.router.add_post("/sites/{name}/rebuild", self._h_rebuild)
        app.router.add_post("/sites/{name}/drain", self._h_drain)
        app.router.add_post("/sites/{name}/restart", self._h_restart)
        app.router.add_post("/sites/{name}/skew", self._h_skew)
        app.router.add_post("/roll", self._h_roll)
        app.router.add_post("/stop", self._h_stop)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.plan.control_port).start()

    async def _h_status(self, request: web.Request) -> web.Response:
        return web.json_response(self.description())

    async def _h_isolate(self, request: web.Request) -> web.Response:
        name, direction = request.match_info["name"], request.query.get("direction", "both")
        try:
            self.isolate(name, True, direction)
        except (KeyError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"isolated": name, "direction": direction})

    async def _h_heal(self, request: web.Request) -> web.Response:
        self.isolate(request.match_info["name"], False)
        return web.json_response({"healed": request.match_info["name"]})

    async def _h_loss(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            percent = int(request.query.get("percent", "0"))
            dropped = await asyncio.get_running_loop().run_in_executor(
                None, self.lose, name, percent
            )
        except (KeyError, ValueError, OSError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"site": name, "loss_percent": percent, "dropped": dropped})

    async def _h_delay(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            result = self.spike(name, float(request.query.get("ms", "0")))
        except (KeyError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(result)

    async def _streamed(
        self, request: web.Request, work: Callable[[Progress], Awaitable[dict[str, Any]]]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)

        async def progress(line: str) -> None:
            log.info("%s", line)
            with contextlib.suppress(Exception):
                await response.write((line + "\n").encode())

        try:
            result = await work(progress)
            await progress("RESULT " + json.dumps(result))
        except Exception as exc:  # reported to the caller
            log.exception("control action failed")
            await progress("ERROR " + json.dumps({"error": str(exc)}))
        await response.write_eof()
        return response

    async def _h_power_on(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]

        async def work(progress: Progress) -> dict[str, Any]:
            await self.power_on(name, progress)
            return {"site": name, "status": "up"}

        return await self._streamed(request, work)

    async def _h_rebuild(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        return await self._streamed(request, lambda progress: self.rebuild(name, progress))

    async def _h_drain(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        return await self._streamed(request, lambda progress: self.drain(name, progress))

    async def _h_restart(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        return await self._streamed(request, lambda progress: self.restart(name, progress))

    async def _h_skew(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        try:
            seconds = float(request.query.get("seconds", "0"))
        except ValueError:
            return web.json_response({"error": "seconds must be a number"}, status=400)
        return await self._streamed(request, lambda progress: self.skew(name, seconds, progress))

    async def _h_roll(self, request: web.Request) -> web.StreamResponse:
        return await self._streamed(request, self.roll)

    async def _h_stop(self, request: web.Request) -> web.Response:
        self.stopping.set()
        return web.json_response({"stopping": True})

    async def stop(self) -> None:
        self.stopping.set()
        for task in (self._monitor, self._guard, self._audit_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.front_door.stop()
        loop = asyncio.get_running_loop()
        for sp in self.sites.values():
            for worker in sp.workers:
                if worker.poll() is None:
                    worker.terminate()

        def stop_all() -> None:
            for sp in self.sites.values():
                sp.stop()

        await loop.run_in_executor(None, stop_all)
        await self.links.stop()
        if self.plan.disk_mb:
            for site in self.plan.sites:
                unmount_small_disk(Path(site.data_dir))
        if self.plan.netns:
            await loop.run_in_executor(None, netns.remove, Path(self.plan.dir))
        if self._runner is not None:
            await self._runner.cleanup()
        with contextlib.suppress(OSError):
            data = self.description()
            data["stopped"] = True
            self.description_path.write_text(json.dumps(data, indent=2))


async def run_cluster(
    plan: ClusterPlan, *, ready_fd: int | None = None, quiet: bool = False
) -> int:
    """Run until SIGINT/SIGTERM or a /stop request; print the description when ready."""
    supervisor = Supervisor(plan)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, supervisor.stopping.set)

    async def progress(line: str) -> None:
        if not quiet:
            print(f"cluster: {line}", file=sys.stderr, flush=True)

    try:
        await supervisor.start(progress)
        print(json.dumps(supervisor.description(), indent=2), flush=True)
        if ready_fd is not None:
            os.write(ready_fd, b"ready\n")
            os.close(ready_fd)
        await supervisor.stopping.wait()
        await progress("stopping every site")
    except Exception as exc:  # noqa: BLE001 - reported, and the exit code says it failed
        print(f"cluster: failed: {exc}", file=sys.stderr, flush=True)
        if ready_fd is not None:
            with contextlib.suppress(OSError):
                os.write(ready_fd, f"failed {exc}\n".encode())
        return_code = 1
    else:
        return_code = 0
    finally:
        await supervisor.stop()
    return return_code


def remove_site_data(data_dir: str) -> None:
    shutil.rmtree(data_dir, ignore_errors=True)
