"""Prometheus metrics of the worker runtime (one set per process)."""

from __future__ import annotations

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
IN_FLIGHT = Gauge("jobfleet_jobs_in_flight", "Jobs this worker is running now.", ["queue"])
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
)
