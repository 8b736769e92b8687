"""The worker's HTTP port: liveness, readiness, Prometheus metrics and the status document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest


class HealthServer:
    """`/healthz` (the process is alive), `/readyz` (it may get work), `/metrics`, and
    `/status` (JSON, see jobfleet.status) when given a `status` callable. `/metrics` serves
    `registry` (the process's own metrics unless told otherwise: a supervisor's aggregate)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        alive: Callable[[], bool],
        ready: Callable[[], bool],
        status: Callable[[], dict[str, Any]] | None = None,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.host, self.port = host, port
        self._registry = registry
        self._alive, self._ready, self._status = alive, ready, status
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        if status is not None:
            app.router.add_get("/status", self._status_doc)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0 and self._runner.addresses:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _healthz(self, _: web.Request) -> web.Response:
        ok = self._alive()
        return web.Response(text="ok\n" if ok else "stuck\n", status=200 if ok else 503)

    async def _readyz(self, _: web.Request) -> web.Response:
        ok = self._ready()
        return web.Response(text="ready\n" if ok else "not ready\n", status=200 if ok else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status_doc(self, _: web.Request) -> web.Response:
        assert self._status is not None
        return web.json_response(self._status())
