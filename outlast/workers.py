"""Several worker processes for one site, sharing its port, its log and its view.

One Python process uses one core. ``outlast serve --workers N`` starts the
site's embedded nats-server once, then N worker processes that all bind the
same HTTP port with SO_REUSEPORT (the kernel spreads connections over them)
and share one SQLite view in WAL mode. Every worker serves HTTP; the one
holding the view's lock file also projects the log into the view, the others
follow its commits (outlast/view/projector.py). A request that carries a
sync or pagination token waits until its worker has seen the positions in
that token, so a client moving between workers never reads older data than
it has seen.

A worker that dies is started again; meanwhile, if it was the projecting
one, another worker has already taken the view over. docs/scale.md has the
reasoning.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from outlast.config import Config
from outlast.context import names_of
from outlast.log.engine import embedded_node, free_port
from outlast.view.store import open_db

# A worker that exits this many times within CRASH_WINDOW_SECONDS is not started
# again: it would only fail again (a bad configuration, a port taken); the site stops.
MAX_EXITS = 3
CRASH_WINDOW_SECONDS = 60.0


def prepare_view(config: Config) -> None:
    """Create (or reset after a schema change) the shared view before any worker opens it."""
    streams = [s.name for s in names_of(config).streams()]
    open_db(config.view_path, streams, shared=True, dsn=config.view_dsn).close()


def start_worker(path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "outlast", "serve", "--config", str(path)],
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def worker_config_text(config: Config, index: int, nats_url: str, port: int) -> str:
    """A complete TOML for worker ``index``: the parent's settings, the shared view, its number."""
    import dataclasses
    import json

    lines: list[str] = []
    for section in dataclasses.fields(config):
        values = dataclasses.asdict(getattr(config, section.name))
        lines.append(f"[{section.name}]")
        for key, value in values.items():
            if section.name == "server" and key == "workers":
                value = 1
            if section.name == "server" and key == "reuse_port":
                value = True
            if section.name == "server" and key == "listen":
                value = f"{config.server.listen.rsplit(':', 1)[0]}:{port}"
            if section.name == "log" and key == "nats_urls":
                value = [nats_url]
            if section.name == "server" and key == "worker":
                value = index
            if section.name == "view" and key == "shared":
                value = True
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


async def serve_workers(config: Config) -> int:
    node = None
    nats_urls = list(config.log.nats_urls)
    if config.embedded_nats:
        node = embedded_node(config.data_path, config.log.nats_port, config.log.sync_always)
        node.start()
        await node.wait_ready()
        nats_urls = [node.url]
    host, _, port_text = config.server.listen.rpartition(":")
    port = int(port_text) or free_port(host)
    workers: list[subprocess.Popen[bytes]] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    paths: list[Path] = []
    exits: list[list[float]] = []
    try:
        prepare_view(config)
        for index in range(config.server.workers):
            path = config.data_path / f"worker-{index}.toml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(worker_config_text(config, index, ",".join(nats_urls), port))
            paths.append(path)
            workers.append(start_worker(path))
            exits.append([])
        print(
            f"outlast: {len(workers)} workers serving http://{host}:{port} "
            f"(pids {[w.pid for w in workers]})",
            flush=True,
        )
        while not stop.is_set():
            for index, worker in enumerate(workers):
                if worker.poll() is None:
                    continue
                now = loop.time()
                exits[index] = [t for t in exits[index] if now - t < CRASH_WINDOW_SECONDS] + [now]
                if len(exits[index]) >= MAX_EXITS:
                    print(
                        f"outlast: worker {index} exited {len(exits[index])} times in "
                        f"{CRASH_WINDOW_SECONDS:.0f}s; stopping the site",
                        file=sys.stderr,
                        flush=True,
                    )
                    return 1
                workers[index] = start_worker(paths[index])
                print(
                    f"outlast: worker {index} (pid {worker.pid}) exited with "
                    f"{worker.returncode}; started it again as pid {workers[index].pid}",
                    file=sys.stderr,
                    flush=True,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        return 0
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
        for w in workers:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.kill()
        if node is not None:
            node.stop()


__all__ = ["serve_workers", "worker_config_text", "Path"]
