"""jobfleet: Kubernetes-native background jobs on Redis.

The public API is what this package exports (`__all__`), plus the modules
`jobfleet.settings` (the settings models), `jobfleet.errors`, `jobfleet.stats`,
`jobfleet.backoff`, `jobfleet.waits` and `jobfleet.redaction` (hiding secrets in text).
Every other module is internal and may change; the operator is held to this list by an
import-linter contract (pyproject.toml).

Besides the application API (Client, handler, JobContext ...), the pieces a deployment
tool needs to reach a queue's Redis the way the workers do:

- `connect(url, ...)`: the asyncio Redis client jobfleet uses (URL checks, credentials from
  `PASSWORD_ENV` / `SENTINEL_PASSWORD_ENV`, Sentinel, retries), to pass to `Client(connection=)`;
- `url_password(url)`: the password inside a Redis URL, to hide it in anything shown;
- `MASTER_NAME_PATTERN`: what a Sentinel master name may look like (a regular expression);
- `REDIS_DOWN`: the exceptions an unreachable Redis raises;
- `compile_schedule(cron, tz)`: the check a cron schedule and its time zone must pass.
"""

from .backoff import Backoff
from .client import Client, DeadLetters, SyncClient
from .connection import PASSWORD_ENV, REDIS_DOWN, connect
from .context import JobContext
from .cron import compile_schedule
from .errors import (
    ConfigError,
    JobActive,
    JobfleetError,
    JobNotFound,
    JobStateError,
    PayloadError,
    PermanentError,
    QueueBusy,
    RetryLater,
    UnsafeRedisError,
    WaitTimeout,
)
from .hooks import FailedJob
from .job import JobError, JobInfo, JobSpec, JobState, Priority
from .registry import Registry, handler, on_failure
from .sentinel import MASTER_NAME_PATTERN, SENTINEL_PASSWORD_ENV
from .settings import (
    CircuitBreaker,
    CronSchedule,
    GroupRateLimit,
    QueueSettings,
    RateLimit,
    Retention,
    WorkerSettings,
    load_settings,
    url_password,
)
from .stats import CronInfo, GroupStats, JobPage, QueueStats, WorkerInfo
from .version import VERSION

__version__ = VERSION

__all__ = [
    "MASTER_NAME_PATTERN",
    "PASSWORD_ENV",
    "REDIS_DOWN",
    "SENTINEL_PASSWORD_ENV",
    "Backoff",
    "CircuitBreaker",
    "Client",
    "ConfigError",
    "CronInfo",
    "CronSchedule",
    "DeadLetters",
    "FailedJob",
    "GroupRateLimit",
    "GroupStats",
    "JobActive",
    "JobContext",
    "JobError",
    "JobInfo",
    "JobNotFound",
    "JobPage",
    "JobSpec",
    "JobState",
    "JobStateError",
    "JobfleetError",
    "PayloadError",
    "PermanentError",
    "Priority",
    "QueueBusy",
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
    "compile_schedule",
    "connect",
    "handler",
    "load_settings",
    "on_failure",
    "url_password",
]
