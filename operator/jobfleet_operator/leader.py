"""Leader election on a coordination.k8s.io Lease, so two operator replicas never act at once.

The same protocol as client-go's leaderelection: a candidate takes the Lease when it is free,
released, or not renewed for `lease_duration` as observed on *our* clock (no clock-skew
assumptions); the leader renews every `retry_period` and gives up leadership when it could not
renew for `renew_deadline`. Every write carries the resourceVersion it read, so of two
candidates racing for the same Lease exactly one wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from .kube import Kube, KubeError, now_micro

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str = "jobfleet-operator"
    identity: str = ""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


class Elector:
    """Acquire, hold and release one Lease."""

    def __init__(
        self, kube: Kube, config: LeaseConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.kube = kube
        self.cfg = config
        self.clock = clock
        self.leading = False
        # What we last saw of someone else's Lease, and when (our clock).
        self._observed: tuple[str, float] | None = None

    @property
    def path(self) -> str:
        return (
            f"/apis/coordination.k8s.io/v1/namespaces/{self.cfg.namespace}/leases/{self.cfg.name}"
        )

    def _spec(self, acquire_time: str | None = None) -> dict[str, Any]:
        now = now_micro()
        return {
            "holderIdentity": self.cfg.identity,
            "leaseDurationSeconds": max(1, round(self.cfg.lease_duration)),
            "acquireTime": acquire_time or now,
            "renewTime": now,
        }

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when we hold the Lease afterwards."""
        lease = await self.kube.get(self.path)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.cfg.name, "namespace": self.cfg.namespace},
                "spec": self._spec(),
            }
            try:
                await self.kube.request("POST", self.path.rsplit("/", 1)[0], body=body)
            except KubeError as exc:
                if exc.status == 409:
                    return False  # another candidate created it first
                raise
            return True

        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        version = lease["metadata"]["resourceVersion"]
        mine = holder == self.cfg.identity
        if not mine and holder:
            now = self.clock()
            if self._observed is None or self._observed[0] != version:
                self._observed = (version, now)  # it moved: the holder is alive
                return False
            duration = float(spec.get("leaseDurationSeconds") or self.cfg.lease_duration)
            if now - self._observed[1] < duration:
                return False
            log.info("lease %s held by %s expired; taking over", self.cfg.name, holder)
        acquire = spec.get("acquireTime") if mine else None
        lease["spec"] = {**spec, **self._spec(acquire)}
        if not mine:
            lease["spec"]["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        try:
            await self.kube.request("PUT", self.path, body=lease)
        except KubeError as exc:
            if exc.status == 409:
                return False  # someone wrote in between; re-read next round
            raise
        return True

    async def acquire(self) -> None:
        """Wait until we lead."""
        log.info("waiting for leadership (lease %s/%s)", self.cfg.namespace, self.cfg.name)
        while True:
            try:
                if await self.try_acquire_or_renew():
                    self.leading = True
                    log.info("acquired leadership as %s", self.cfg.identity)
                    return
            except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("lease acquisition failed: %s", exc)
            await asyncio.sleep(self.cfg.retry_period)

    async def hold(self) -> None:
        """Renew until a renewal could not succeed within `renew_deadline`; then return.

        Each attempt gets only the time left until that deadline: a renewal is a GET and a PUT,
        and each may take the client's whole request timeout, so attempts checked only between
        them could keep a leader acting after its Lease expired and another replica took it.
        """
        last_renew = self.clock()
        while True:
            await asyncio.sleep(self.cfg.retry_period)
            left = self.cfg.renew_deadline - (self.clock() - last_renew)
            try:
                async with asyncio.timeout(max(left, 0.001)):
                    renewed = await self.try_acquire_or_renew()
                if renewed:
                    last_renew = self.clock()
                    continue
                log.error("lease %s was taken by another replica", self.cfg.name)
                break
            except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("lease renewal failed: %s", str(exc) or type(exc).__name__)
            if self.clock() - last_renew >= self.cfg.renew_deadline:
                log.error("could not renew the lease for %.0fs", self.cfg.renew_deadline)
                break
        self.leading = False

    async def release(self) -> None:
        """Hand the Lease over at once on a clean shutdown (the next replica need not wait)."""
        if not self.leading:
            return
        self.leading = False
        with contextlib.suppress(KubeError, aiohttp.ClientError, TimeoutError):
            lease = await self.kube.get(self.path)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.cfg.identity:
                lease["spec"]["holderIdentity"] = None
                lease["spec"]["leaseDurationSeconds"] = 1
                await self.kube.request("PUT", self.path, body=lease)
                log.info("released leadership")
