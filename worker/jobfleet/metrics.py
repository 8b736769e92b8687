"""Prometheus metrics of the worker runtime (one set per process, summed per pod).

Under `--processes N` each child writes its values to files in the supervisor's
PROMETHEUS_MULTIPROC_DIR and the supervisor serves their aggregate (prometheus-client's
multiprocess mode): counters and histograms are summed, including those of children that
died (so rates stay monotonic across a restart); each gauge says below how its children's
values combine, counting live children only. Outside a supervisor the modes do nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram

JOBS = Counter(
    "jobfleet_jobs_total",
    "Job attempts finished, by outcome (completed, retried, dead, released, lost, abandoned).",
    ["queue", "handler", "outcome"],
)
DURATION = Histogram(
    "jobfleet_job_duration_seconds",
    "Wall time of one handler call.",
    ["queue", "handler"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
TIMEOUTS = Counter(
    "jobfleet_job_timeouts_total",
    "Attempts that passed their timeout, counted at the deadline (a sync handler in a thread "
    "runs on and its job fails only once it returns).",
    ["queue", "handler"],
)
IN_FLIGHT = Gauge(
    "jobfleet_jobs_in_flight",
    "Jobs this worker is running now.",
    ["queue"],
    multiprocess_mode="livesum",  # the pod's jobs in flight
)
RECOVERIES = Counter(
    "jobfleet_lease_recoveries_total",
    "Leases this worker found expired (the lease lost here, or recovered from a dead worker).",
    ["queue", "kind"],
)
REDIS_ERRORS = Counter(
    "jobfleet_redis_errors_total", "Failed calls to Redis (each is retried).", ["queue"]
)
STALE_ACKS = Counter(
    "jobfleet_stale_acks_total",
    "Outcomes Redis rejected because the job's lease had moved on (fencing).",
    ["queue"],
)
CIRCUIT = Gauge(
    "jobfleet_circuit_state",
    "Circuit breaker of a scope ('*' = the whole queue): 0 closed, 0.5 half-open, 1 open.",
    ["queue", "scope"],
    multiprocess_mode="livemax",  # a fleet-wide state: the same in each child
)
FAILURES = Counter(
    "jobfleet_job_failures_total",
    "Failed attempts (retried or dead-lettered) by error type: at most MAX_ERROR_TYPES types "
    "per queue, later ones counted as 'other'.",
    ["queue", "handler", "error_type", "outcome"],
)
CLAIM_SECONDS = Histogram(
    "jobfleet_redis_claim_seconds",
    "Round trip of the worker's claim call (acknowledgements + claim in one script), timed "
    "around the call it makes anyway; the idle wait's claim (behind a BLPOP) is not counted.",
    ["queue"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
QUEUE_JOBS = Gauge(
    "jobfleet_queue_jobs",
    "Jobs of the queue by state (waiting, delayed, held, active, dead), read by every worker "
    "every DEPTH_INTERVAL seconds: the same value from each, so aggregate with max by (queue).",
    ["queue", "state"],
    multiprocess_mode="livemax",  # the same queue read by each child
)
QUEUE_OLDEST_WAIT = Gauge(
    "jobfleet_queue_oldest_wait_seconds",
    "Seconds the queue's oldest waiting job has been due (as QUEUE_JOBS: max by (queue)).",
    ["queue"],
    multiprocess_mode="livemax",
)
GROUP_JOBS = Gauge(
    "jobfleet_group_jobs",
    "Waiting jobs (held ones included) of the TOP_GROUPS job groups with the most, the rest "
    "summed as group '~other' (a label no group name can take); read with QUEUE_JOBS "
    "(max by (queue, group)).",
    ["queue", "group"],
)
QUEUE_GROUPS = Gauge(
    "jobfleet_queue_groups",
    "Job groups with waiting jobs ('with_work') and those held by their limits or paused "
    "('held'); read with QUEUE_JOBS.",
    ["queue", "state"],
)

# Error types are the exception class names handlers raise: unbounded in principle. Each queue
# gets this many distinct label values; the rest share one, so a handler that raises a new
# class per call cannot grow the series without end.
MAX_ERROR_TYPES = 20
OTHER_ERROR_TYPE = "other"
DEPTH_STATES = ("waiting", "delayed", "held", "active", "dead")
DEPTH_INTERVAL = 15.0  # seconds between a worker's reads of the queue's counts
# Group names are the tenants' ids: unbounded. Only the groups inspect names (engine.TOP_GROUPS,
# the most waiting jobs) get a series; the others are summed as OTHER_GROUP, and a group that
# leaves the top loses its series, so a queue never has more than TOP_GROUPS + 1. The label
# starts with '~', which settings.GROUP_NAME refuses as a first character: a tenant named
# 'other' keeps its own series (tests/unit/test_signal_parts.py).
OTHER_GROUP = "~other"
_group_series: dict[str, set[str]] = {}


class ErrorTypeLabels:
    """The error_type label of one queue: the first MAX_ERROR_TYPES types seen by this
    process keep their names, any later one becomes OTHER_ERROR_TYPE."""

    def __init__(self, cap: int = MAX_ERROR_TYPES) -> None:
        self.cap = cap
        self._seen: set[str] = set()

    def label(self, error_type: str) -> str:
        if error_type in self._seen:
            return error_type
        if len(self._seen) < self.cap:
            self._seen.add(error_type)
            return error_type
        return OTHER_ERROR_TYPE


def report_depth(queue: str, raw: Mapping[str, str | int]) -> None:
    """Set the depth gauges from an `Engine.inspect` reply."""
    for state in DEPTH_STATES:
        QUEUE_JOBS.labels(queue, state).set(float(raw.get(state, 0)))
    oldest = max(
        (int(v) for k, v in raw.items() if k.startswith("oldest_ms:")),
        default=0,
    )
    QUEUE_OLDEST_WAIT.labels(queue).set(oldest / 1000.0)
    if "groups" in raw:
        report_groups(queue, raw)


def report_groups(queue: str, raw: Mapping[str, str | int]) -> None:
    """The group gauges from an inspect reply of a queue with groups."""
    QUEUE_GROUPS.labels(queue, "with_work").set(float(raw["groups"]))
    QUEUE_GROUPS.labels(queue, "held").set(float(raw.get("groups_held", 0)))
    top = {k[6:]: int(v) for k, v in raw.items() if k.startswith("group:")}
    for group, n in top.items():
        GROUP_JOBS.labels(queue, group).set(n)
    GROUP_JOBS.labels(queue, OTHER_GROUP).set(int(raw.get("group_jobs", 0)) - sum(top.values()))
    for gone in _group_series.get(queue, set()) - top.keys():
        GROUP_JOBS.remove(queue, gone)
    _group_series[queue] = set(top)
