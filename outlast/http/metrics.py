"""Prometheus metrics of one worker, served at GET /_outlast/metrics.

Every app gets its own ``CollectorRegistry`` (several apps in one process,
as in tests, must not clash in the global one). Requests are labelled by the
route *template* (``/_matrix/client/v3/rooms/{room_id}/send/{event_type}/{txn_id}``),
never the raw path, so room ids and transaction ids cannot blow up the label
space; anything unrouted is ``unmatched``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from outlast.http.limits import RateLimits
from outlast.log.client import LogClient
from outlast.media.service import MediaRepository
from outlast.ops.health import Health
from outlast.view.barrier import Statistics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# /sync long-polls park for up to a minute: the buckets reach past it.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
REFRESH_TIMEOUT = 2.0
# Any other method is counted as OTHER, so made-up methods cannot grow the label space.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})

# No ``*_created`` series beside every counter: Prometheus does not need them.
disable_created_metrics()  # type: ignore[no-untyped-call]


def route_template(request: web.Request) -> str:
    route = getattr(request.match_info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None:
        return "unmatched"
    return str(resource.canonical)


class _LagCollector(Collector):
    """Projector lag per stream (log's last sequence minus the view's applied one),
    as the site's latest health measurement (about once a second) found it."""

    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "outlast_projector_lag_messages",
            "Log messages not yet applied to this worker's view, per stream",
            labels=["stream"],
        )
        for stream, lag in sorted(self.health.last_lag.items()):
            family.add_metric([stream], float(lag))
        yield family


class _BarrierCollector(Collector):
    """The read barrier's counters (outlast.view.barrier.Statistics)."""

    def __init__(self, stats: Statistics) -> None:
        self.stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        stats = self.stats
        for name, help_text, value in (
            ("questions", "Questions to a stream leader for its position", stats.questions),
            ("failed_questions", "Questions no current leader answered", stats.failed_questions),
            ("shared", "Waits served by a question another request asked", stats.shared),
            (
                "refused",
                "Requests answered 503: the view could not be shown current",
                stats.refused,
            ),
        ):
            yield CounterMetricFamily(f"outlast_read_barrier_{name}", help_text, value=value)


class _GuardCollector(Collector):
    """What the guards against hostile clients did: thumbnails rendered (each
    (media, size) once, however many ask at the same time), requests refused
    by a rate limit, by budget."""

    def __init__(self, media: MediaRepository, limits: RateLimits | None) -> None:
        self.media = media
        self.limits = limits

    def collect(self) -> Iterator[CounterMetricFamily]:
        renders = CounterMetricFamily(
            "outlast_thumbnail_renders", "Thumbnails rendered (not served from the cache)"
        )
        renders.add_metric([], float(self.media.renders))
        yield renders
        limited = CounterMetricFamily(
            "outlast_rate_limited",
            "Requests answered 429 M_LIMIT_EXCEEDED, by budget",
            labels=["budget"],
        )
        for budget, count in sorted((self.limits.refused if self.limits else {}).items()):
            limited.add_metric([budget], float(count))
        yield limited


class Metrics:
    """A worker's metrics: its requests, the site it serves, its health, its log writes,
    its read barrier, its thumbnails and rate limits (``waiting`` counts the parked
    /sync long-polls)."""

    def __init__(
        self,
        site: str,
        health: Health,
        waiting: Callable[[], int],
        log: LogClient,
        barrier: Statistics,
        media: MediaRepository,
        limits: RateLimits | None = None,
    ) -> None:
        self.health = health
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "outlast_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "outlast_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.sync_waiters = Gauge(
            "outlast_sync_waiters",
            "/sync long-polls parked on this worker",
            registry=self.registry,
        )
        self.sync_waiters.set_function(lambda: float(waiting()))
        self.publishes = Counter(
            "outlast_jetstream_publishes",
            "Appends to the log acknowledged by JetStream",
            registry=self.registry,
        )
        self.publish_errors = Counter(
            "outlast_jetstream_publish_errors",
            "Appends to the log that JetStream did not acknowledge, by kind "
            "(unavailable: no quorum, election or timeout; fence: a fenced write lost; "
            "error: other)",
            ["kind"],
            registry=self.registry,
        )
        for kind in ("unavailable", "fence", "error"):
            self.publish_errors.labels(kind)  # present at 0 before the first error
        self.info = Gauge(
            "outlast_site_info",
            "This worker's site (always 1)",
            ["site"],
            registry=self.registry,
        )
        self.info.labels(site).set(1)
        self.ready = Gauge(
            "outlast_site_ready",
            "1 when this site's last health measurement was ready",
            registry=self.registry,
        )
        self.ready.set_function(self._ready)
        self.registry.register(_LagCollector(health))
        self.registry.register(_BarrierCollector(barrier))
        self.registry.register(_GuardCollector(media, limits))
        log.observers.append(self.observe_publish)
        # Route templates, methods and statuses are few: this stays small.
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def _ready(self) -> float:
        report = self.health.last_report or {}
        return 1.0 if report.get("ready") else 0.0

    def observe_publish(self, subject: str, outcome: str) -> None:
        if outcome == "ok":
            self.publishes.inc()
        elif outcome != "cancelled":
            self.publish_errors.labels(outcome).inc()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = "error"
        try:
            response = await handler(request)
            status = str(response.status)
            return response
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except web.HTTPException as exc:
            status = str(exc.status)
            raise
        finally:
            route = route_template(request)
            method = request.method if request.method in METHODS else "OTHER"
            key = (method, route, status)
            children = self._children.get(key)
            if children is None:
                # labels() takes a lock and builds a key each call: look each series up once.
                children = self._children[key] = (
                    self.requests.labels(*key),
                    self.latency.labels(method, route),
                )
            children[0].inc()
            children[1].observe(time.perf_counter() - started)

    async def render(self) -> bytes:
        """The text exposition, with the health measurement (and so the lag) refreshed."""
        # Serve the last known values if the measurement fails or is slow.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.health.report(), REFRESH_TIMEOUT)
        return generate_latest(self.registry)


METRICS_KEY: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)


def install(app: web.Application, metrics: Metrics) -> None:
    """Time every request of ``app`` (outermost middleware) and keep the metrics on it."""
    app[METRICS_KEY] = metrics
    app.middlewares.insert(0, metrics.middleware)


CONTENT_TYPE = CONTENT_TYPE_LATEST
