"""Exceptions raised by jobfleet, one per kind of mistake or failure."""

from __future__ import annotations


class JobfleetError(Exception):
    """Base class of every error jobfleet raises on purpose."""


class ConfigError(JobfleetError, ValueError):
    """A setting, URL or option is invalid; nothing was contacted or written."""


class PayloadError(JobfleetError, ValueError):
    """A job payload cannot be stored: not JSON-serializable or over the size limit."""


class UnsafeRedisError(JobfleetError):
    """The Redis server is configured so that it could silently drop jobs."""


class JobNotFound(JobfleetError, LookupError):
    """No job with that id exists in the queue (never enqueued, or trimmed by retention)."""


class JobStateError(JobfleetError):
    """The job is in a state that does not allow this (retrying a job that is not dead,
    cancelling a finished one); `state` is the state it is in."""

    def __init__(self, message: str, *, job_id: str, state: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.state = state


class JobActive(JobStateError):
    """The job is running on a worker, which this verb must not disturb (remove): cancel it."""

    def __init__(self, message: str, *, job_id: str) -> None:
        super().__init__(message, job_id=job_id, state="active")


class QueueBusy(JobfleetError):
    """The queue has jobs running, so it cannot be obliterated without `force`."""

    def __init__(self, message: str, *, queue: str, active: int) -> None:
        super().__init__(message)
        self.queue = queue
        self.active = active


class WaitTimeout(JobfleetError, TimeoutError):
    """`Client.wait` gave up before the job reached a final state."""


class PermanentError(Exception):
    """Raise from a handler to dead-letter the job at once, without further retries.

    Use it for failures that no retry can fix: a malformed payload, a resource that no longer
    exists, a request the remote side rejected as invalid.
    """


class RetryLater(Exception):
    """Raise from a handler to retry after `delay` seconds instead of the backoff schedule.

    The attempt still counts towards `max_attempts`.
    """

    def __init__(self, message: str = "", *, delay: float | None = None) -> None:
        from .bounds import Seconds, check  # bounds imports this module

        super().__init__(message)
        # Checked here, in the handler that raises it: the worker turns the delay into
        # milliseconds, which an inf or nan would crash. A bad one fails the attempt instead.
        self.delay: float | None = None if delay is None else check("delay", Seconds, delay)
