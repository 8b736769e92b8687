"""What an attempt's end means for its job: completed, retried or dead, and the failure record."""

from __future__ import annotations

import functools
import traceback
from typing import Any, Literal, NamedTuple

from .backoff import Backoff
from .engine import ClaimedJob, Failure
from .errors import PermanentError, RetryLater
from .job import encode_json
from .process_pool import ChildError
from .settings import QueueSettings

MAX_TRACEBACK = 16_384
MAX_MESSAGE = 4_096

Outcome = Literal["completed", "retried", "dead"]


class Verdict(NamedTuple):
    """An attempt's outcome: a completion's result JSON, or the failure to acknowledge."""

    outcome: Outcome
    result_json: str = ""
    failure: Failure | None = None


# Most handlers return nothing: one shared verdict spares building one per job (hot path).
COMPLETED_NULL = Verdict("completed", "null")


def classify(
    job: ClaimedJob,
    queue: QueueSettings,
    *,
    result: Any = None,
    error: BaseException | None = None,
) -> Verdict:
    """The outcome of an attempt that returned `result` or raised `error`.

    `PermanentError` and a result that is not JSON dead-letter at once; `RetryLater` picks
    the delay; a `TimeoutError` is recorded as `JobTimeout`; anything else retries after the
    job's (else the queue's) backoff until its attempts run out.
    """
    if error is None:
        if result is None:
            return COMPLETED_NULL
        try:
            encoded = encode_json(result)
        except (TypeError, ValueError) as exc:
            error = PermanentError(f"handler returned a result that is not JSON: {exc}")
        else:
            return Verdict("completed", encoded)
    if isinstance(error, PermanentError):
        return _from_exception(
            job, queue, error, permanent=f"permanent failure: {error}"[:MAX_MESSAGE]
        )
    if isinstance(error, RetryLater):
        return _from_exception(job, queue, error, delay=error.delay)
    if isinstance(error, TimeoutError):
        return _from_exception(job, queue, error, error_type="JobTimeout")
    return _from_exception(job, queue, error)


def unknown_handler(job: ClaimedJob, queue: QueueSettings) -> Verdict:
    """No handler has the job's name: dead-lettered at once, not retried forever."""
    return failed(
        job,
        queue,
        "UnknownHandler",
        f"no handler registered for job name {job.name!r}",
        "",
        permanent=f"unknown handler {job.name!r}",
    )


def failed(
    job: ClaimedJob,
    queue: QueueSettings,
    error_type: str,
    message: str,
    tb: str,
    *,
    permanent: str = "",
    delay: float | None = None,
) -> Verdict:
    """A failed attempt: dead when permanent or out of attempts, else retried after `delay`
    (default: the backoff's, drawn even for a dead job, which the claim script ignores)."""
    if delay is None:
        delay = backoff_of(job, queue).delay(job.attempt)
    failure = Failure(job.id, job.token, error_type, message, tb, int(delay * 1000), permanent)
    max_attempts = job.max_attempts or queue.max_attempts
    return Verdict("dead" if permanent or job.attempt >= max_attempts else "retried", "", failure)


def backoff_of(job: ClaimedJob, queue: QueueSettings) -> Backoff:
    """The job's own backoff (enqueued with one), else the queue's."""
    return _parse_backoff(job.backoff) if job.backoff else queue.backoff


@functools.lru_cache(maxsize=1024)
def _parse_backoff(raw: str) -> Backoff:
    # Jobs of one kind carry the same policy: parse each text once (Backoff is frozen).
    return Backoff.model_validate_json(raw)


def _from_exception(
    job: ClaimedJob,
    queue: QueueSettings,
    exc: BaseException,
    *,
    permanent: str = "",
    delay: float | None = None,
    error_type: str | None = None,
) -> Verdict:
    if isinstance(exc, ChildError):  # raised in a child process: its type, its traceback
        tb, error_type = exc.traceback_text[-MAX_TRACEBACK:], error_type or exc.type_name
    else:
        tb = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK:]
    return failed(
        job,
        queue,
        error_type or type(exc).__qualname__,
        str(exc)[:MAX_MESSAGE],
        tb,
        permanent=permanent,
        delay=delay,
    )
