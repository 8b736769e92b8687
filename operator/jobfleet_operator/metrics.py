"""The operator's Prometheus metrics per queue, and its health + metrics HTTP endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

DEFAULT_PORT = 8081
PORT_ENV = "JOBFLEET_HTTP_PORT"
LABELS = ("namespace", "queue")


class Metrics:
    """Gauges and counters labelled by namespace and Queue name."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        p = "jobfleet_operator_"
        self.backlog = Gauge(
            p + "queue_backlog", "Waiting plus in-flight jobs.", LABELS, registry=r
        )
        self.waiting = Gauge(p + "queue_waiting", "Jobs waiting for a worker.", LABELS, registry=r)
        self.in_flight = Gauge(p + "queue_in_flight", "Jobs being run.", LABELS, registry=r)
        self.oldest_wait = Gauge(
            p + "queue_oldest_wait_seconds", "Age of the oldest waiting job.", LABELS, registry=r
        )
        self.throughput = Gauge(
            p + "queue_throughput", "Completions per second (recent window).", LABELS, registry=r
        )
        self.desired = Gauge(
            p + "queue_desired_replicas", "The autoscaler's decision.", LABELS, registry=r
        )
        self.replicas = Gauge(
            p + "queue_replicas", "Replicas of the worker Deployment.", LABELS, registry=r
        )
        self.redis_up = Gauge(
            p + "queue_redis_up", "1 when the last read of the queue succeeded.", LABELS, registry=r
        )
        self.scale_events = Counter(
            p + "scale_events", "Replica changes made.", (*LABELS, "direction"), registry=r
        )
        self.sla_breaches = Counter(
            p + "sla_breaches", "Times a queue's oldest wait crossed its SLA.", LABELS, registry=r
        )
        self.leader = Gauge(p + "leader", "1 while this replica is the acting one.", registry=r)
        self._per_queue = (
            self.backlog,
            self.waiting,
            self.in_flight,
            self.oldest_wait,
            self.throughput,
            self.desired,
            self.replicas,
            self.redis_up,
            self.sla_breaches,
        )

    def track(self, namespace: str, queue: str) -> None:
        """Start a Queue's counters at 0: increase() over a series born at 1 is 0, so without
        the zero sample a queue's first SLA breach (or scale) would never show in alerts."""
        self.sla_breaches.labels(namespace, queue)
        for direction in ("up", "down"):
            self.scale_events.labels(namespace, queue, direction)

    def forget(self, namespace: str, queue: str) -> None:
        """Drop a deleted Queue's series so dashboards do not show ghosts."""
        for metric in self._per_queue:
            with contextlib.suppress(KeyError):
                metric.remove(namespace, queue)
        for direction in ("up", "down"):
            with contextlib.suppress(KeyError):
                self.scale_events.remove(namespace, queue, direction)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def http_port(env: dict[str, str] | None = None) -> int:
    raw = (os.environ if env is None else env).get(PORT_ENV, "")
    return int(raw) if raw.strip() else DEFAULT_PORT


async def serve(
    metrics: Metrics,
    *,
    alive: Callable[[], bool],
    ready: Callable[[], bool],
    host: str = "0.0.0.0",
    port: int | None = None,
) -> web.AppRunner:
    """`/healthz` (liveness), `/readyz` and `/metrics` on one port; returns the runner to stop."""

    async def healthz(_: web.Request) -> web.Response:
        ok = alive()
        return web.Response(status=200 if ok else 503, text="ok\n" if ok else "unhealthy\n")

    async def readyz(_: web.Request) -> web.Response:
        ok = ready()
        return web.Response(status=200 if ok else 503, text="ready\n" if ok else "not ready\n")

    async def prometheus(_: web.Request) -> web.Response:
        body = await asyncio.to_thread(metrics.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prometheus)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, http_port() if port is None else port)
    await site.start()
    return runner
