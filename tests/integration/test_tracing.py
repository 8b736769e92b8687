"""OpenTelemetry (jobfleet[otel]): spans of enqueue and execution through a real redis-server
and a real worker, collected by the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import jobfleet
import pytest
from jobfleet.worker import Worker
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from waiting import until

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    # The global provider can be set once per process: the first test sets it for all.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def of_kind(exporter: InMemorySpanExporter, kind: SpanKind, queue: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.kind == kind and (s.attributes or {}).get("messaging.destination.name") == queue
    ]


async def test_enqueue_and_attempts_are_linked_spans(
    redis_url: str, run_worker: Callable[..., Worker], spans: InMemorySpanExporter
) -> None:
    queue = "traced"
    registry = jobfleet.Registry()
    tracer = trace.get_tracer("test")

    @registry.handler("flaky")
    async def flaky(job: jobfleet.JobContext) -> None:
        with tracer.start_as_current_span("inside"):
            if job.attempt == 1:
                raise jobfleet.RetryLater("later", delay=0)
            raise ValueError("still broken")

    @registry.handler("ok")
    async def ok(job: jobfleet.JobContext) -> None:
        pass

    async with jobfleet.Client(redis_url, queue=queue) as client:
        flaky_id = await client.enqueue("flaky", {"n": 1}, max_attempts=2)
        ok_id = await client.enqueue("ok")
        run_worker(registry, queue={"name": queue})
        await client.wait(flaky_id, timeout=60)
        await client.wait(ok_id, timeout=60)

    async def ended() -> bool:
        return len(of_kind(spans, SpanKind.CONSUMER, queue)) == 3

    await until(ended, what="three consumer spans")
    producers = {
        s.attributes["messaging.message.id"]: s for s in of_kind(spans, SpanKind.PRODUCER, queue)
    }  # type: ignore[index]
    assert set(producers) == {flaky_id, ok_id}
    for job_id, span in producers.items():
        assert span.name == f"{queue} publish"
        assert span.attributes is not None
        assert span.attributes["messaging.system"] == "jobfleet"
        assert span.attributes["messaging.operation.type"] == "send"
        assert span.attributes["messaging.message.id"] == job_id
    consumers = of_kind(spans, SpanKind.CONSUMER, queue)
    by_job: dict[str, list[ReadableSpan]] = {}
    for span in consumers:
        assert span.attributes is not None
        by_job.setdefault(str(span.attributes["messaging.message.id"]), []).append(span)
    for job_id, attempts in by_job.items():
        producer = producers[job_id].get_span_context()
        for span in attempts:
            assert span.name == f"{queue} process"
            assert span.attributes is not None
            assert span.attributes["messaging.system"] == "jobfleet"
            assert span.attributes["messaging.operation.type"] == "process"
            # Each attempt links to the enqueue's span (the job's one fixed point).
            assert [(link.context.trace_id, link.context.span_id) for link in span.links] == [
                (producer.trace_id, producer.span_id)
            ]
    ok_span = by_job[ok_id][0]
    assert ok_span.status.status_code != StatusCode.ERROR
    assert (
        ok_span.attributes is not None and ok_span.attributes["jobfleet.job.outcome"] == "completed"
    )
    first, second = sorted(by_job[flaky_id], key=lambda s: s.attributes["jobfleet.job.attempt"])  # type: ignore[index]
    assert [s.attributes["jobfleet.job.outcome"] for s in (first, second)] == ["retried", "dead"]  # type: ignore[index]
    for span, error_type in ((first, "RetryLater"), (second, "ValueError")):
        assert span.status.status_code == StatusCode.ERROR
        assert span.attributes is not None and span.attributes["error.type"] == error_type
        assert [e.name for e in span.events] == ["exception"]
    # The handler's own span is a child of its attempt's span.
    inside = [s for s in spans.get_finished_spans() if s.name == "inside"]
    assert {s.parent.span_id for s in inside if s.parent} == {
        first.context.span_id,
        second.context.span_id,
    }


async def test_a_provider_set_after_the_worker_started_traces_the_jobs_claimed_after(
    client: jobfleet.Client, redis_url: str, spawn_worker
) -> None:
    """The worker looks for a provider once per claim (tracing.Consumer.active): in a real
    worker process with none set, a first job runs untraced and sets one (as an application
    setting up OpenTelemetry late would); a job enqueued after it is traced."""
    worker = spawn_worker(redis_url, queue={"concurrency": 4})
    first = await client.enqueue("span-state", "install")
    await client.wait(first, timeout=60)
    later = await client.enqueue_many([{"name": "span-state", "payload": i} for i in range(3)])
    for job_id in later:
        await client.wait(job_id, timeout=60)
    states = dict(str(r).split(":") for r in await client.conn.lrange("spans", 0, -1))
    assert states == {first: "0", **{job_id: "1" for job_id in later}}, worker.output()
    assert worker.terminate() == 0
