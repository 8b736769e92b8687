"""A queue's vital signs, as `Client.inspect` reads them in one call (the autoscaler's input),
and its workers, as `Client.workers` does (the scale-in's input)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .job import JobInfo
from .settings import GroupRateLimit

ListState = Literal["waiting", "delayed", "held", "active", "completed", "dead", "cancelled"]
LIST_STATES: tuple[str, ...] = ListState.__args__  # type: ignore[attr-defined]  # Literal's


class CircuitState(BaseModel):
    """One circuit breaker as inspect sees it."""

    state: Literal["closed", "open", "half_open"]
    until: float | None = Field(default=None, description="When an open circuit half-opens.")
    trips: int = 0


class QueueStats(BaseModel):
    """Counts and rates of one queue at one instant of the Redis clock."""

    queue: str
    time: float = Field(description="Redis server time (Unix seconds) of the snapshot.")
    waiting: int = Field(description="Due jobs not yet claimed (the `ready` set).")
    waiting_by_priority: dict[str, int] = Field(default_factory=dict)
    delayed: int = Field(description="Jobs scheduled for later, including retry backoff.")
    active: int = Field(description="Jobs claimed by a worker and not yet finished.")
    dead: int = Field(description="Dead letters kept for inspection and replay.")
    completed: int = Field(description="Finished jobs still kept by retention.")
    cancelled: int = Field(default=0, description="Cancelled jobs still kept by retention.")
    oldest_wait: float = Field(
        description="Seconds the oldest waiting job has been due (0 if none)."
    )
    oldest_wait_by_priority: dict[str, float] = Field(default_factory=dict)
    completed_total: int = Field(description="Jobs completed since the queue was created.")
    failed_total: int = Field(description="Failed attempts since the queue was created.")
    dead_total: int = Field(description="Jobs dead-lettered since the queue was created.")
    recovered_total: int = Field(description="Expired leases recovered since creation.")
    cancelled_total: int = Field(default=0, description="Jobs cancelled since creation.")
    removed_total: int = Field(
        default=0, description="Jobs removed (`remove`, `clear`) since creation."
    )
    throughput: float = Field(description="Completions per second over the recent window.")
    failure_rate: float = Field(description="Failed attempts per second over the recent window.")
    window: float = Field(description="Seconds the rates were measured over.")
    workers: int = Field(description="Workers that renewed their registration recently.")
    paused: bool = False
    held: int = Field(
        default=0,
        description="Waiting jobs held back by a rate limit or an open circuit breaker; more "
        "workers would not start them sooner.",
    )
    circuits: dict[str, CircuitState] = Field(
        default_factory=dict, description="Circuit breakers by scope ('*' = the whole queue)."
    )
    groups: int = Field(default=0, description="Job groups with waiting jobs (held ones too).")
    groups_held: int = Field(
        default=0, description="Groups held by their limits or paused (their jobs are `held`)."
    )
    top_groups: dict[str, int] = Field(
        default_factory=dict, description="The groups with the most waiting jobs (at most 10)."
    )

    @property
    def backlog(self) -> int:
        """Work that still needs a worker: waiting plus in flight."""
        return self.waiting + self.active

    @property
    def per_worker_throughput(self) -> float | None:
        """Measured completions per second per live worker, or None when unknown."""
        if self.workers <= 0 or self.throughput <= 0:
            return None
        return self.throughput / self.workers


class WorkerInfo(BaseModel):
    """One live worker of a queue (registered and renewed recently)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(
        description="`<hostname>:<pid>:<nonce>`; on Kubernetes the hostname is the pod's name."
    )
    in_flight: int = Field(description="Jobs it holds right now.")
    draining: bool = Field(
        default=False,
        description="Drained (`Client.drain_workers`): it finishes and renews what it holds "
        "but claims nothing new.",
    )

    @property
    def hostname(self) -> str:
        """The host (pod) the worker runs on."""
        return self.id.split(":", 1)[0]


class JobPage(BaseModel):
    """One page of `Client.jobs`: the jobs, and the cursor of the next page."""

    jobs: list[JobInfo]
    next_cursor: str | None = Field(
        description="Pass to `Client.jobs(cursor=)` for the next page; None: no more."
    )


class CronInfo(BaseModel):
    """One cron schedule a queue's workers run, as they published it."""

    name: str
    cron: str
    timezone: str
    job: str = Field(description="The handler name of the job each tick enqueues.")
    next_tick: float | None = Field(description="The next tick (Unix seconds), None if none.")
    last_tick: float | None = Field(description="The last tick enqueued (Unix seconds).")


class GroupStats(BaseModel):
    """One job group of a queue (`Client.group_stats`)."""

    queue: str
    group: str
    waiting: int = Field(description="Jobs of the group waiting (held ones included).")
    active: int = Field(description="Jobs of the group in flight (what group_concurrency caps).")
    held: Literal["paused", "concurrency", "rate"] | None = Field(
        default=None, description="Why the group starts no job now; None when it may."
    )
    paused: bool = False
    concurrency: int | None = Field(default=None, description="Run-time override, if any.")
    rate_limit: GroupRateLimit | None = Field(default=None, description="Run-time override.")
    weight: int = 1
