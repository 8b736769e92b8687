"""Outcome classification: what a handler's result or exception means for its job (no Redis)."""

import math

import pytest
from jobfleet import Backoff, PermanentError, RetryLater
from jobfleet.engine import ClaimedJob
from jobfleet.outcome import MAX_MESSAGE, MAX_TRACEBACK, backoff_of, classify, unknown_handler
from jobfleet.process_pool import ChildError, Raised
from jobfleet.settings import QueueSettings

QUEUE = QueueSettings(name="q", max_attempts=3, backoff=Backoff(base=2, cap=60, jitter="none"))


def job(attempt: int = 1, *, max_attempts: int | None = None, backoff: str | None = None):
    return ClaimedJob("j1", "send", "{}", attempt, max_attempts, None, backoff, "tok")


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_a_result_completes_the_job_with_its_json():
    assert classify(job(), QUEUE, result={"sent": True}) == ("completed", '{"sent":true}', None)
    assert classify(job(), QUEUE, result=None) == ("completed", "null", None)


def test_a_result_that_is_not_json_dead_letters_at_once():
    verdict = classify(job(), QUEUE, result={"when": object()})
    assert verdict.outcome == "dead"
    assert verdict.failure is not None
    assert verdict.failure.error_type == "PermanentError"
    assert verdict.failure.message.startswith("handler returned a result that is not JSON")
    assert verdict.failure.permanent_reason.startswith("permanent failure: handler returned")


def test_an_error_retries_after_the_queue_backoff_with_its_traceback():
    verdict = classify(job(attempt=2), QUEUE, error=raised(KeyError("to")))
    assert verdict.outcome == "retried"
    failure = verdict.failure
    assert failure is not None
    assert (failure.id, failure.token, failure.error_type) == ("j1", "tok", "KeyError")
    assert failure.message == "'to'"
    assert failure.delay_ms == 4000  # base 2 doubled once, no jitter
    assert failure.permanent_reason == ""
    assert "raise exc" in failure.traceback and failure.traceback.endswith("KeyError: 'to'\n")


def test_the_last_attempt_is_dead_and_the_job_limit_wins_over_the_queue():
    assert classify(job(attempt=3), QUEUE, error=ValueError()).outcome == "dead"
    assert classify(job(attempt=3, max_attempts=5), QUEUE, error=ValueError()).outcome == "retried"
    assert classify(job(attempt=1, max_attempts=1), QUEUE, error=ValueError()).outcome == "dead"


def test_permanent_error_dead_letters_with_its_reason():
    verdict = classify(job(), QUEUE, error=PermanentError("bad address"))
    assert verdict.outcome == "dead"
    assert verdict.failure is not None
    assert verdict.failure.permanent_reason == "permanent failure: bad address"


def test_retry_later_picks_the_delay_else_the_backoff():
    verdict = classify(job(), QUEUE, error=RetryLater("busy", delay=7.5))
    assert verdict.outcome == "retried" and verdict.failure is not None
    assert verdict.failure.delay_ms == 7500
    assert verdict.failure.error_type == "RetryLater"
    verdict = classify(job(), QUEUE, error=RetryLater("busy"))
    assert verdict.failure is not None and verdict.failure.delay_ms == 2000


def test_a_timeout_is_recorded_as_job_timeout():
    verdict = classify(job(), QUEUE, error=TimeoutError("job exceeded its timeout of 1 s"))
    assert verdict.outcome == "retried" and verdict.failure is not None
    assert verdict.failure.error_type == "JobTimeout"
    assert verdict.failure.message == "job exceeded its timeout of 1 s"


def test_a_child_process_error_keeps_its_type_and_traceback():
    exc = ChildError(Raised("ZeroDivisionError", "division by zero", "Traceback: child\n"))
    verdict = classify(job(), QUEUE, error=exc)
    assert verdict.failure is not None
    assert verdict.failure.error_type == "ZeroDivisionError"
    assert verdict.failure.traceback == "Traceback: child\n"


def test_message_and_traceback_are_bounded():
    verdict = classify(job(), QUEUE, error=ValueError("x" * (MAX_MESSAGE * 2)))
    assert verdict.failure is not None
    assert len(verdict.failure.message) == MAX_MESSAGE
    long_tb = ChildError(Raised("E", "m", "t" * (MAX_TRACEBACK + 10)))
    failure = classify(job(), QUEUE, error=long_tb).failure
    assert failure is not None and len(failure.traceback) == MAX_TRACEBACK
    failure = classify(job(), QUEUE, error=PermanentError("p" * MAX_MESSAGE)).failure
    assert failure is not None and len(failure.permanent_reason) == MAX_MESSAGE


def test_unknown_handler_dead_letters_at_once():
    verdict = unknown_handler(job(), QUEUE)
    assert verdict.outcome == "dead" and verdict.failure is not None
    assert verdict.failure.error_type == "UnknownHandler"
    assert verdict.failure.permanent_reason == "unknown handler 'send'"
    assert verdict.failure.traceback == ""


def test_a_job_backoff_replaces_the_queue_one():
    own = Backoff(kind="fixed", base=9, cap=9, jitter="none")
    assert backoff_of(job(backoff=own.model_dump_json()), QUEUE) == own
    assert backoff_of(job(), QUEUE) is QUEUE.backoff
    verdict = classify(job(attempt=2, backoff=own.model_dump_json()), QUEUE, error=OSError())
    assert verdict.failure is not None and verdict.failure.delay_ms == 9000


@pytest.mark.parametrize("attempt", [1, 2, 10])
def test_jittered_delays_stay_within_the_bound(attempt):
    queue = QueueSettings(name="q", backoff=Backoff(base=1, cap=5))
    failure = classify(job(attempt), queue, error=OSError()).failure
    assert failure is not None
    assert 0 <= failure.delay_ms <= math.ceil(queue.backoff.bound(attempt) * 1000)
