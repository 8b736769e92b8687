"""Every Queue the API server accepts renders worker settings that the worker accepts.

Property-based: the Queues are drawn from the generated CRD's own schema (its bounds, enums,
patterns and lengths), so a bound of the CRD wider than the engine's, or a value the
operator renders differently from what the spec says, shows up here.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jobfleet.settings import WorkerSettings
from jobfleet_operator import crd
from jobfleet_operator.deployment import QueueRef, worker_settings
from jobfleet_operator.spec import QueueSpec
from pydantic import ValidationError

Q = QueueRef(name="emails", namespace="shop", uid="u-1")
SCHEMA = crd.schema_of(QueueSpec)
# The parts of a Queue that become worker settings (the rest is Kubernetes-only).
ENGINE_FACING = (
    "queueName",
    "concurrency",
    "retry",
    "jobTimeoutSeconds",
    "isolation",
    "leaseSeconds",
    "maxStalls",
    "maxPayloadBytes",
    "rateLimit",
    "circuitBreaker",
    "retention",
    "schedules",
)
# CEL cannot parse cron or know time zones: those two are drawn from valid ones.
CRONS = ["*/5 * * * *", "0 3 * * MON-FRI", "@hourly", "30 2 1 * *", " @daily ", "0 0 29 2 *"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def from_schema(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values a structural schema node accepts (the subset of OpenAPI the CRD uses)."""
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return JSON
    kind = node.get("type")
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(node.get("minimum", -(2**31)), node.get("maximum", 2**31))
    if kind == "number":
        return st.floats(
            node.get("minimum", -1e9),
            node.get("maximum", 1e9),
            exclude_min=node.get("exclusiveMinimum") is True,
            allow_nan=False,
        )
    if kind == "string":
        low, high = node.get("minLength", 0), node.get("maxLength", 40)
        if "pattern" in node:
            return st.from_regex(node["pattern"], fullmatch=True).filter(
                lambda s: low <= len(s) <= high
            )
        return st.text(min_size=low, max_size=min(high, 40))
    if kind == "array":
        return st.lists(from_schema(node["items"]), max_size=min(node.get("maxItems", 3), 3))
    if kind == "object":
        return record(node)
    raise AssertionError(f"no strategy for {node}")


def record(node: dict[str, Any], **drawn: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Objects of an object node, each property from its schema unless `drawn` says."""
    props = node.get("properties", {})
    fields = {k: drawn[k] if k in drawn else from_schema(v) for k, v in props.items()}
    required = set(node.get("required", ()))
    return st.fixed_dictionaries(
        {k: v for k, v in fields.items() if k in required},
        optional={k: v for k, v in fields.items() if k not in required},
    )


PROPS = SCHEMA["properties"]
SCHEDULE = record(
    PROPS["schedules"]["items"], cron=st.sampled_from(CRONS), timezone=st.sampled_from(ZONES)
)
WORKER = record(
    {"properties": {k: PROPS["worker"]["properties"][k] for k in ("batchSize", "eventLoop")}},
).map(lambda w: {"image": "acme/jobs:1", "handlers": ["acme.jobs"], **w})
QUEUES = st.builds(
    lambda queue, worker: {"redis": {"url": "redis://redis:6379/0"}, "worker": worker, **queue},
    record(
        {"properties": {k: PROPS[k] for k in ENGINE_FACING}},
        schedules=st.lists(SCHEDULE, max_size=3, unique_by=lambda s: s["name"]),
    ),
    WORKER,
)


def valid_spec(body: dict[str, Any]) -> QueueSpec:
    try:
        return QueueSpec.model_validate(body)
    except ValidationError as exc:
        # What CEL refuses too (the cross-field rules), and cron/time zones CEL cannot check.
        cel_twins = ("maxDelaySeconds must be >=", "schedule '")
        assume(not any(twin in str(exc) for twin in cel_twins))
        raise


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(QUEUES)
def test_every_valid_queue_renders_settings_that_validate_and_round_trip(
    body: dict[str, Any],
) -> None:
    spec = valid_spec(body)
    rendered = worker_settings(Q, spec)

    again = WorkerSettings.model_validate(rendered.model_dump())
    assert again == rendered
    assert WorkerSettings.model_validate_json(rendered.model_dump_json()) == rendered

    queue = rendered.queue
    assert queue.name == spec.queue(Q.name)
    assert rendered.batch_size == spec.worker.batch_size
    assert rendered.event_loop == spec.worker.event_loop
    assert (queue.concurrency, queue.isolation) == (spec.concurrency, spec.isolation)
    assert (queue.job_timeout, queue.lease) == (spec.job_timeout_seconds, spec.lease_seconds)
    assert (queue.poison_after, queue.max_payload_bytes) == (
        spec.max_stalls,
        spec.max_payload_bytes,
    )

    retry, backoff = spec.retry, queue.backoff
    assert queue.max_attempts == retry.max_attempts
    assert (backoff.kind, backoff.base, backoff.cap) == (
        retry.backoff,
        retry.base_delay_seconds,
        retry.max_delay_seconds,
    )
    assert backoff.jitter == ("full" if retry.jitter else "none")

    kept, completed, dead = queue.retention, spec.retention.completed, spec.retention.dead_letters
    assert (kept.completed_count, kept.completed_age) == (
        completed.max_count,
        completed.max_age_seconds,
    )
    assert (kept.dead_count, kept.dead_age) == (dead.max_count, dead.max_age_seconds)

    if spec.rate_limit is None:
        assert queue.rate_limit is None
    else:
        limit = queue.rate_limit
        assert limit is not None
        assert (limit.max, limit.period, limit.key_field) == (
            spec.rate_limit.max,
            spec.rate_limit.period_seconds,
            spec.rate_limit.key,
        )

    breaker, tripped = spec.circuit_breaker, queue.circuit_breaker
    if breaker is None or tripped is None:
        assert breaker is None and tripped is None
    else:
        assert (tripped.scope, tripped.failure_threshold, tripped.failure_ratio) == (
            breaker.scope,
            breaker.failure_threshold,
            breaker.failure_ratio,
        )
        assert (tripped.window, tripped.reset_timeout, tripped.half_open_probes) == (
            breaker.window_seconds,
            breaker.reset_timeout_seconds,
            breaker.half_open_probes,
        )

    assert len(queue.schedules) == len(spec.schedules)
    for ours, theirs in zip(spec.schedules, queue.schedules, strict=True):
        assert (theirs.name, theirs.cron, theirs.timezone, theirs.job) == (
            ours.name,
            ours.cron,
            ours.timezone,
            ours.job,
        )
        assert (theirs.payload, theirs.priority, theirs.enabled) == (
            ours.payload,
            ours.priority,
            ours.enabled,
        )
        assert theirs.missed == ("run_once" if ours.missed == "runOnce" else "skip")
