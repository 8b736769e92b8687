"""OpenTelemetry spans for enqueue (PRODUCER) and execution (CONSUMER), when `jobfleet[otel]`
is installed and an SDK has set a tracer provider; otherwise every function here is a cheap
no-op, and jobfleet never imports opentelemetry itself.

The producer's W3C trace context travels in the job hash (`trace`, written by enqueue.lua
from `EncodedJob.trace`), so a worker on another host links its span to the enqueue's. Every
attempt's span links to that producer context, the job's one fixed point: a retry's span is
found beside the earlier attempts' through the shared link and `messaging.message.id`
(linking attempt to attempt would need each failure to write its span's context back).
Names and attributes follow OpenTelemetry's messaging semantic conventions.

When a worker looks: once per claim, not per job (`Consumer.active`). A provider set after the
worker started (by a handler module at import, or later by the application) traces the jobs
of every claim from then on; once seen, it is never asked for again, since OpenTelemetry sets
the global provider once per process and never unsets it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .version import VERSION

if TYPE_CHECKING:
    from .engine import ClaimedJob, EncodedJob

SYSTEM = "jobfleet"
TRACER_NAME = "jobfleet"
TRACEPARENT = "traceparent"


def _installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry") is not None
    except ImportError:
        return False


AVAILABLE = _installed()


def _trace() -> Any | None:
    """`opentelemetry.trace` once a tracer provider is set, else None.

    A provider can only be set by code that imported opentelemetry.trace, so until something
    in the process has, nothing could be recorded: looking in sys.modules spares jobfleet the
    import (tens of milliseconds at start-up) and every job a no-op span (several µs).
    """
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None or isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return None
    return trace


def _propagator() -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


def _error(span: Any, exc: BaseException | None, error_type: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    if exc is not None:
        span.record_exception(exc)
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, error_type))


# What `publish` returns while nothing traces: a generator's context manager costs every
# enqueue about 2 µs, this one a fraction of that (nullcontext holds no state: reusable).
_UNTRACED: contextlib.AbstractContextManager[None] = contextlib.nullcontext()


def publish(queue: str, jobs: Sequence[EncodedJob]) -> contextlib.AbstractContextManager[None]:
    """A PRODUCER span `<queue> publish` around an enqueue; its context goes into each job."""
    trace = _trace()
    if trace is None or not jobs:
        return _UNTRACED
    return _publish(trace, queue, jobs)


@contextlib.contextmanager
def _publish(trace: Any, queue: str, jobs: Sequence[EncodedJob]) -> Iterator[None]:
    attrs: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.destination.name": queue,
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
    }
    if len(jobs) == 1:
        attrs["messaging.message.id"] = jobs[0].id
    else:
        attrs["messaging.batch.message_count"] = len(jobs)
    tracer = trace.get_tracer(TRACER_NAME, VERSION)
    with tracer.start_as_current_span(
        f"{queue} publish", kind=trace.SpanKind.PRODUCER, attributes=attrs
    ) as span:
        carrier: dict[str, str] = {}
        _propagator().inject(carrier)
        parent = carrier.get(TRACEPARENT, "")
        for job in jobs:
            job.trace = parent
        try:
            yield
        except BaseException as exc:
            _error(span, exc, type(exc).__name__)
            raise


def producer_link(traceparent: str | None) -> list[Any]:
    """The link to the enqueue's span, from the job's stored traceparent ([] if none)."""
    trace = _trace()
    if trace is None or not traceparent:
        return []
    ctx = _propagator().extract({TRACEPARENT: traceparent})
    span_context = trace.get_current_span(ctx).get_span_context()
    return [trace.Link(span_context)] if span_context.is_valid else []


class Consumer:
    """The CONSUMER spans of one worker's jobs, from start to outcome."""

    def __init__(self, queue: str, worker_id: str) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self._spans: dict[str, Any] = {}
        self._on = False  # a provider was seen: true for the rest of the process

    @staticmethod
    def build(queue: str, worker_id: str) -> Consumer | None:
        """None without opentelemetry installed (then the worker never asks again)."""
        return Consumer(queue, worker_id) if AVAILABLE else None

    def active(self) -> bool:
        """Whether spans would be recorded now (a provider set later counts from then).

        The worker asks once per claim: asking OpenTelemetry costs a few µs once it is
        imported (redis-py imports it when installed), too much for every job. True is
        remembered: the global provider, once set, stays.
        """
        if not self._on:
            self._on = _trace() is not None
        return self._on

    def start(self, job: ClaimedJob) -> None:
        trace = _trace()
        if trace is None:
            return
        span = trace.get_tracer(TRACER_NAME, VERSION).start_span(
            f"{self.queue} process",
            kind=trace.SpanKind.CONSUMER,
            links=producer_link(job.trace),
            attributes={
                "messaging.system": SYSTEM,
                "messaging.destination.name": self.queue,
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.message.id": job.id,
                "messaging.consumer.group.name": self.queue,
                "messaging.client.id": self.worker_id,
                "jobfleet.job.name": job.name,
                "jobfleet.job.attempt": job.attempt,
            },
        )
        self._spans[job.id] = span

    @contextlib.contextmanager
    def current(self, job_id: str) -> Iterator[None]:
        """Make the job's span current while its handler runs (its own spans are children)."""
        span = self._spans.get(job_id)
        if span is None:
            yield
            return
        from opentelemetry import context, trace

        token = context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            context.detach(token)

    def error(self, job_id: str, exc: BaseException | None, error_type: str) -> None:
        span = self._spans.get(job_id)
        if span is not None:
            _error(span, exc, error_type)

    def end(self, job_id: str, outcome: str) -> None:
        span = self._spans.pop(job_id, None)
        if span is not None:
            span.set_attribute("jobfleet.job.outcome", outcome)
            span.end()
