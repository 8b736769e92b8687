"""Lease leader election: one leader at a time, takeover on expiry or release."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from jobfleet_operator.kube import KubeError
from jobfleet_operator.leader import Elector, LeaseConfig


class LeaseStore:
    """The API server's optimistic concurrency for one object: resourceVersion must match."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.version = 0

    async def get(self, path: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.obj)

    async def request(
        self, method: str, path: str, *, body: Any = None, **_: Any
    ) -> dict[str, Any]:
        if method == "POST":
            if self.obj is not None:
                raise KubeError(409, "AlreadyExists", "lease exists")
            return self._store(body)
        if method == "PUT":
            assert self.obj is not None
            if body["metadata"].get("resourceVersion") != self.obj["metadata"]["resourceVersion"]:
                raise KubeError(409, "Conflict", "the object has been modified")
            return self._store(body)
        raise AssertionError(method)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.obj = copy.deepcopy(body)
        self.obj["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.obj)

    @property
    def holder(self) -> str | None:
        return (self.obj or {}).get("spec", {}).get("holderIdentity")


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def elector(store: LeaseStore, clock: Clock, name: str) -> Elector:
    cfg = LeaseConfig(namespace="ops", identity=name, lease_duration=15)
    return Elector(store, cfg, clock)  # type: ignore[arg-type]


async def test_first_candidate_wins_the_second_waits() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    assert store.holder == "a"
    assert await a.try_acquire_or_renew()  # renewal


async def test_takeover_only_after_the_lease_was_not_renewed_for_its_duration() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()  # b starts observing
    clock.t = 10
    await a.try_acquire_or_renew()  # a renews: b's observation restarts
    assert not await b.try_acquire_or_renew()
    clock.t = 24
    assert not await b.try_acquire_or_renew()  # 14 s since the renewal b saw
    clock.t = 25.5
    assert await b.try_acquire_or_renew()  # a went silent for 15 s
    assert store.holder == "b"
    assert store.obj is not None and store.obj["spec"]["leaseTransitions"] == 1


async def test_release_hands_over_at_once() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    await a.acquire()
    await a.release()
    assert store.holder is None
    assert await b.try_acquire_or_renew()


class HangingLeaseStore(LeaseStore):
    """A Lease API that stops answering once `hang` is set: each call waits until cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.hang = False
        self.cancelled_calls = 0

    async def _wait_if_hanging(self) -> None:
        if self.hang:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled_calls += 1
                raise

    async def get(self, path: str) -> dict[str, Any] | None:
        await self._wait_if_hanging()
        return await super().get(path)

    async def request(
        self, method: str, path: str, *, body: Any = None, **kw: Any
    ) -> dict[str, Any]:
        await self._wait_if_hanging()
        return await super().request(method, path, body=body, **kw)


async def test_hold_gives_up_within_the_renew_deadline_when_the_api_hangs() -> None:
    # The defaults' proportions (15/10/2 s), scaled down. A renewal is a GET and a PUT, each of
    # which may take the client's whole request timeout; if hold() only looked at the deadline
    # between attempts, a hanging API would keep this replica leading past its Lease's expiry,
    # when another replica may take the Lease and act too. Here the calls never answer at all.
    cfg = LeaseConfig(
        namespace="ops", identity="a", lease_duration=3.0, renew_deadline=0.5, retry_period=0.1
    )
    store = HangingLeaseStore()
    a = Elector(store, cfg)  # type: ignore[arg-type]
    await a.acquire()
    store.hang = True
    # The bound is the property itself: leadership ends before the Lease can expire for others
    # (before the fix, hold() waited on the hung call forever and this raised TimeoutError).
    await asyncio.wait_for(a.hold(), timeout=cfg.lease_duration)
    assert not a.leading
    assert store.cancelled_calls >= 1  # the hung renewal was abandoned, not waited out
    assert store.holder == "a"  # nothing was written after the API stopped answering
