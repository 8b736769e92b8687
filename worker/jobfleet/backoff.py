"""Retry delay schedules: exponential or fixed, with full jitter."""

from __future__ import annotations

import random
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .bounds import DAY, between

BackoffKind = Literal["exponential", "fixed"]


class Backoff(BaseModel):
    """How long to wait before retry number `attempt` (1 = the first retry).

    Exponential: ``min(cap, base * 2**(attempt-1))``; fixed: ``min(cap, base)``. With
    ``jitter="full"`` the delay is drawn uniformly from ``[0, that bound]`` so a fleet that
    failed together does not retry together (AWS's "full jitter").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: BackoffKind = "exponential"
    base: Annotated[float, between(0, DAY)] = Field(default=1.0, description="Seconds.")
    cap: Annotated[float, between(0, 7 * DAY)] = Field(default=300.0, description="Seconds.")
    jitter: Literal["full", "none"] = "full"

    @model_validator(mode="after")
    def _cap_covers_base(self) -> Backoff:
        if self.cap < self.base:
            raise ValueError(f"backoff cap ({self.cap}) must be >= base ({self.base})")
        return self

    def bound(self, attempt: int) -> float:
        """The largest delay retry `attempt` may get."""
        if self.kind == "fixed":
            return min(self.cap, self.base)
        # 2**exp overflows floats long after it passes any cap; clamp the exponent first.
        exp = min(max(attempt - 1, 0), 64)
        return min(self.cap, self.base * (2.0**exp))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry `attempt`."""
        bound = self.bound(attempt)
        if self.jitter == "none":
            return bound
        return (rng or random).uniform(0.0, bound)


class Retries:
    """The delays of one retry loop (reconnecting to Redis, say): the n-th failure in a row
    waits ``backoff.delay(n)``; a success resets the count. The default, `RECONNECT`, is
    1 s, 2 s, 4 s ... up to 30 s, with full jitter.

    >>> retries = Retries()
    >>> delay = retries.next_delay()  # after a failure
    >>> retries.reset()               # after a success
    """

    __slots__ = ("backoff", "failures")

    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = RECONNECT if backoff is None else backoff
        self.failures = 0

    def next_delay(self) -> float:
        """Count one more failure; seconds to wait before the next try."""
        self.failures += 1
        return self.backoff.delay(self.failures)

    def reset(self) -> None:
        self.failures = 0


# How every loop that waits for Redis (or the Kubernetes API) to come back backs off.
RECONNECT = Backoff(base=1.0, cap=30.0)
