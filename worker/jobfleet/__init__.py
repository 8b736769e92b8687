"""jobfleet: Kubernetes-native background jobs on Redis."""

from .backoff import Backoff
from .client import Client, DeadLetters, SyncClient
from .context import JobContext
from .errors import (
    ConfigError,
    JobfleetError,
    JobNotFound,
    PayloadError,
    PermanentError,
    RetryLater,
    UnsafeRedisError,
    WaitTimeout,
)
from .job import JobError, JobInfo, JobSpec, JobState, Priority
from .registry import Registry, handler
from .settings import (
    CircuitBreaker,
    CronSchedule,
    QueueSettings,
    RateLimit,
    Retention,
    WorkerSettings,
    load_settings,
)
from .stats import QueueStats, WorkerInfo

__version__ = "0.1.0"

__all__ = [
    "Backoff",
    "CircuitBreaker",
    "Client",
    "ConfigError",
    "CronSchedule",
    "DeadLetters",
    "JobContext",
    "JobError",
    "JobInfo",
    "JobNotFound",
    "JobSpec",
    "JobState",
    "JobfleetError",
    "PayloadError",
    "PermanentError",
    "Priority",
    "QueueSettings",
    "QueueStats",
    "RateLimit",
    "Registry",
    "Retention",
    "RetryLater",
    "SyncClient",
    "UnsafeRedisError",
    "WaitTimeout",
    "WorkerInfo",
    "WorkerSettings",
    "handler",
    "load_settings",
]
