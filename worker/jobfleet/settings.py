"""Queue and worker settings: one model read from flags, environment and a config file."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from redis.asyncio.connection import parse_url

from .backoff import Backoff
from .bounds import (
    DAY,
    MIB,
    AttemptTimeout,
    GroupConcurrency,
    Partitions,
    PayloadBytes,
    Processes,
    Seconds,
    between,
)
from .bounds import MAX_PROCESSES as MAX_PROCESSES  # re-exported: the Queue's default uses it
from .cluster import is_cluster_url, parse_cluster_url
from .errors import ConfigError
from .redaction import redact_text as redact_text  # re-exported: still public here
from .redaction import redact_url as redact_url
from .redaction import url_password as url_password
from .sentinel import (
    OPTIONS,
    check_option_names,
    check_option_values,
    is_sentinel_url,
    option_names,
    parse_sentinel_url,
)

# The names of the priority levels (job.Priority), highest first.
PriorityName = Literal["critical", "high", "normal", "low", "batch"]
PRIORITY_NAMES: tuple[str, ...] = get_args(PriorityName)
BreakerScope = Literal["queue", "handler"]
Isolation = Literal["thread", "process"]
WorkerMode = Literal["inProcess", "sidecar"]
LogFormat = Literal["text", "json"]
# asyncio's own loop, or uvloop (the `jobfleet[uvloop]` extra; jobfleet.event_loop runs it).
EventLoop = Literal["asyncio", "uvloop"]
# Which job outcomes get a log line: every one, all but completions (the default: a line per
# completed job costs more CPU than a no-op job, bench/RESULTS.md), or none.
LogJobs = Literal["all", "failures", "none"]

QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Group names become part of Redis keys and hash fields (lua/lib.lua G_LIMITS '<group>:<x>'):
# no ':' (it separates the field), no spaces or control characters.
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
GROUP_NAME_RULE = (
    "1-128 letters, digits, '.', '_', '@', '+' or '-', starting with a letter or digit"
)
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# The query options of redis://, rediss:// and unix://: a Sentinel URL's, and the database.
URL_OPTIONS = OPTIONS | {"db"}


def check_queue_name(name: str) -> str:
    """Queue names become part of Redis keys and Kubernetes names: keep them plain."""
    if not isinstance(name, str) or not QUEUE_NAME.match(name):
        raise ConfigError(
            f"invalid queue name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_group_name(name: object) -> str:
    """A job group's name (`enqueue(group=...)`, `Client.set_group_limits`), checked before
    anything is written."""
    if not isinstance(name, str):
        raise TypeError(f"group must be a str, not {type(name).__name__}")
    if not GROUP_NAME.match(name):
        raise ConfigError(f"invalid group name {name!r}: use {GROUP_NAME_RULE}")
    return name


# What a raw '/', '?' or '#' in a password looks like: it ends the host part early (RFC 3986,
# and every other Redis client reads the URL the same way), leaving an '@' after it.
RAW_PASSWORD_HINT = (
    "malformed Redis URL: its password seems to contain a raw '/', '?' or '#', which end the "
    "host part of a URL; percent-encode the password ('/' as %2F, '?' as %3F, '#' as %23, "
    "'%' as %25, '@' as %40) or leave it out of the URL and set $JOBFLEET_REDIS_PASSWORD "
    "(on Kubernetes, the Queue's redis.passwordSecretRef)"
)


def check_redis_url(url: str) -> str:
    """Reject a malformed Redis URL before anything connects; never echo any part of it."""
    try:
        _check_url_shape(url)
    except ConfigError as exc:
        message = str(exc)
    else:
        return url
    _, _, rest = url.partition("://")
    if "@" in rest and "@" not in re.split(r"[/?#]", rest, maxsplit=1)[0]:
        message = RAW_PASSWORD_HINT
    raise ConfigError(message)


def _check_url_shape(url: str) -> None:
    if is_sentinel_url(url):
        parse_sentinel_url(url)
        return
    if is_cluster_url(url):
        parse_cluster_url(url)
        return
    # urlsplit's own messages quote the port, which may be the start of a password.
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError("malformed Redis URL: invalid IPv6 address") from None
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("malformed Redis URL: port must be a number from 1 to 65535") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        given = parts.scheme + "://" if parts.scheme else "missing"
        raise ConfigError(
            "malformed Redis URL: scheme must be redis://, rediss://, unix://, "
            "redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://, "
            f"not {given}"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError("malformed Redis URL: no host")
    if parts.scheme == "unix" and not parts.path:
        raise ConfigError("malformed Redis URL: unix:// needs a socket path")
    if port is not None and not 0 < port < 65536:
        raise ConfigError("malformed Redis URL: port out of range")
    db = parts.path.lstrip("/") if parts.scheme != "unix" else ""
    if db and not db.isdigit():
        raise ConfigError("malformed Redis URL: database must be a number")
    check_option_names(option_names(parts.query), URL_OPTIONS)
    check_option_values(lambda: parse_url(url))


class Retention(BaseModel):
    """How many finished jobs to keep, and for how long, so `get` can report them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    completed_count: Annotated[int, between(0, 10_000_000)] = 10_000
    completed_age: Seconds = Field(default=86_400.0, description="Seconds.")
    dead_count: Annotated[int, between(0, 1_000_000_000)] | None = Field(
        default=None, description="None keeps dead letters until replayed or purged."
    )
    dead_age: Seconds | None = Field(default=None, description="Seconds; None keeps them.")


class RateLimit(BaseModel):
    """At most `max` job starts per `period` seconds, fleet-wide, in a sliding window.

    With `key_field`, each value of that payload field (a tenant, a channel) gets a window of
    its own; a job may also carry its key from enqueue (`rate_key=`). Jobs without a key share
    the queue's window. Jobs over the limit stay waiting: they are never failed or retried.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max: Annotated[int, between(1, 1_000_000)]
    period: Annotated[float, between(0, DAY, above=True)] = Field(description="Seconds.")
    key_field: str | None = Field(default=None, min_length=1, max_length=200)


class GroupRateLimit(BaseModel):
    """At most `max` job starts per `period` seconds for each job group, fleet-wide, in a
    sliding window per group. A group over its limit is held: its jobs wait (as `held`), the
    other groups go on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max: Annotated[int, between(1, 1_000_000)]
    period: Annotated[float, between(0, DAY, above=True)] = Field(description="Seconds.")


class CircuitBreaker(BaseModel):
    """Fleet-wide breaker: after enough failures stop starting jobs, then probe and recover.

    CLOSED -> OPEN after `failure_threshold` failed attempts within `window` seconds (or, with
    `failure_ratio`, when that share of the window's finished attempts failed, with at least
    `failure_threshold` of them). OPEN holds jobs for `reset_timeout` seconds, then HALF_OPEN
    lets `half_open_probes` jobs through: a success closes the breaker, a failure reopens it.
    Permanent failures (bad input) do not count: they say nothing about the dependency.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: BreakerScope = "queue"
    failure_threshold: Annotated[int, between(1, 100_000)] = 5
    failure_ratio: Annotated[float, between(0, 1, above=True)] | None = None
    window: Annotated[float, between(0, DAY, above=True)] = Field(
        default=60.0, description="Seconds."
    )
    reset_timeout: Annotated[float, between(0, DAY, above=True)] = Field(
        default=30.0, description="Seconds."
    )
    half_open_probes: Annotated[int, between(1, 1000)] = 1


class CronSchedule(BaseModel):
    """Enqueue one job per tick of a cron expression, however many workers run it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    cron: str = Field(
        min_length=1,
        max_length=128,
        description="Five fields (minute hour day month weekday), a sixth for seconds, or "
        "@hourly/@daily/...",
    )
    timezone: str = "UTC"
    job: str = Field(min_length=1, max_length=200, description="Handler name of each job.")
    payload: Any = None
    priority: PriorityName = "normal"
    enabled: bool = True
    missed: Literal["skip", "run_once"] = Field(
        default="skip", description="After downtime: skip missed ticks, or run the last once."
    )


class QueueSettings(BaseModel):
    """What a queue promises its jobs; shared by every worker of the queue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "default"
    concurrency: Annotated[int, between(1, 10_000)] = Field(
        default=50, description="Jobs in flight per worker."
    )
    max_attempts: Annotated[int, between(1, 1000)] = 5
    backoff: Backoff = Backoff()
    job_timeout: AttemptTimeout | None = Field(default=None, description="Seconds per attempt.")
    lease: Annotated[float, between(0.2, 3600)] = Field(
        default=30.0, description="Seconds a claim lasts."
    )
    poison_after: Annotated[int, between(1, 100)] = Field(
        default=3, description="Lease expiries before a job is dead-lettered."
    )
    max_payload_bytes: PayloadBytes = MIB
    retention: Retention = Retention()
    rate_limit: RateLimit | None = None
    circuit_breaker: CircuitBreaker | None = None
    group_concurrency: GroupConcurrency | None = Field(
        default=None,
        description="Jobs of one group in flight at once, fleet-wide (None: no limit); "
        "`Client.set_group_limits` overrides it per group.",
    )
    group_rate_limit: GroupRateLimit | None = Field(
        default=None, description="Job starts per period for each group, fleet-wide."
    )
    schedules: list[CronSchedule] = Field(default_factory=list)
    isolation: Isolation = Field(
        default="thread",
        description="Where sync handlers run: 'thread', a thread pool (a thread past its "
        "timeout cannot be stopped: its job waits for it), or 'process', child processes "
        "killed at the timeout. Async handlers always run on the event loop.",
    )
    partitions: Partitions = Field(
        default=1,
        description="Sub-queues of this logical queue, each with its own hash tag (a Redis "
        "Cluster slot), so one queue can use several shards (docs/partitions.md). Fixed "
        "once workers ran: changing it needs a migration.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_queue_name(v)

    @model_validator(mode="after")
    def _partitioned_rate_limit(self) -> QueueSettings:
        # The shared window cannot span partitions (slots): each enforces max // K, so the
        # logical queue never exceeds max; below K starts per period a partition would get 0.
        rl = self.rate_limit
        if rl is not None and rl.max < self.partitions:
            raise ValueError(
                f"rate_limit.max ({rl.max}) must be at least partitions ({self.partitions}): "
                "each partition enforces max // partitions of the queue's shared window"
            )
        return self


class WorkerSettings(BaseModel):
    """Everything `jobfleet worker` needs; the operator mounts it as JSON."""

    # A validation error would otherwise quote the input: the Redis URL and its password.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    redis_url: str = DEFAULT_REDIS_URL
    queue: QueueSettings = QueueSettings()
    handlers: list[str] = Field(default_factory=list, description="Modules to import.")
    mode: WorkerMode = "inProcess"
    sidecar_url: str = "http://127.0.0.1:8000"
    http_host: str = "0.0.0.0"
    http_port: Annotated[int, between(0, 65535)] | None = Field(
        default=8080, description="None disables."
    )
    grace_period: Seconds = Field(
        default=30.0, description="Seconds between SIGTERM and SIGKILL (the pod's grace)."
    )
    shutdown_margin: Seconds = Field(
        default=2.0, description="Seconds before the grace ends to release unfinished jobs."
    )
    batch_size: Annotated[int, between(1, 1000)] = Field(
        default=50,
        description="Max jobs claimed per call (at most half the concurrency while no job runs).",
    )
    sync_threads: Annotated[int, between(1, 1024)] = 32
    processes: Processes = Field(
        default=1,
        description="Worker processes of this pod under one supervisor that owns the HTTP "
        "port (1: this process is the worker, as without the option).",
    )
    event_loop: EventLoop = Field(
        default="asyncio",
        description="The event loop the worker (each process of it) runs on: asyncio's own, "
        "or uvloop (needs the jobfleet[uvloop] extra), lighter per job for I/O-bound handlers "
        "at low concurrency (bench/RESULTS.md).",
    )
    allow_volatile_eviction: bool = Field(
        default=False,
        description="Run on a Redis whose maxmemory-policy is volatile-*, accepting that it "
        "may evict dedup keys, rate-limit windows and circuit-breaker state.",
    )
    log_format: LogFormat = Field(
        default="text", description="Log lines as text, or one JSON object per line."
    )
    log_jobs: LogJobs = Field(
        default="failures",
        description="Outcome lines for every job ('all'), every outcome but completed "
        "('failures': retried, dead, released, lost, abandoned), or none.",
    )
    log_payload: bool = Field(
        default=False, description="Put each job's payload in its outcome log line."
    )

    @field_validator("redis_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_redis_url(v)


ENV_PREFIX = "JOBFLEET_"


def boolean(raw: str) -> bool:
    """An environment variable's yes or no."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _env_overrides(env: dict[str, str]) -> dict[str, Any]:
    """Map JOBFLEET_* variables onto the settings tree."""
    out: dict[str, Any] = {}
    queue: dict[str, Any] = {}
    simple: dict[str, tuple[str, Callable[[str], Any]]] = {
        "REDIS_URL": ("redis_url", str),
        "HTTP_PORT": ("http_port", int),
        "MODE": ("mode", str),
        "SIDECAR_URL": ("sidecar_url", str),
        "GRACE_PERIOD": ("grace_period", float),
        "BATCH_SIZE": ("batch_size", int),
        "PROCESSES": ("processes", int),
        "EVENT_LOOP": ("event_loop", str),
        "ALLOW_VOLATILE_EVICTION": ("allow_volatile_eviction", boolean),
        "LOG_FORMAT": ("log_format", str),
        "LOG_PAYLOAD": ("log_payload", boolean),
        "LOG_JOBS": ("log_jobs", str),
    }
    for key, (field, conv) in simple.items():
        if (raw := env.get(ENV_PREFIX + key)) not in (None, ""):
            try:
                out[field] = conv(raw)
            except ValueError:
                raise ConfigError(f"{ENV_PREFIX}{key}: not a valid {conv.__name__}") from None
    if handlers := env.get(ENV_PREFIX + "HANDLERS"):
        out["handlers"] = [h.strip() for h in handlers.split(",") if h.strip()]
    for key, field, conv in (
        ("QUEUE", "name", str),
        ("CONCURRENCY", "concurrency", int),
        ("MAX_ATTEMPTS", "max_attempts", int),
        ("JOB_TIMEOUT", "job_timeout", float),
        ("LEASE", "lease", float),
        ("ISOLATION", "isolation", str),
        ("PARTITIONS", "partitions", int),
    ):
        if (raw := env.get(ENV_PREFIX + key)) not in (None, ""):
            try:
                queue[field] = conv(raw)
            except ValueError:
                raise ConfigError(f"{ENV_PREFIX}{key}: not a valid {conv.__name__}") from None
    if queue:
        out["queue"] = queue
    return out


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> WorkerSettings:
    """Build worker settings; later sources win: file, then environment, then flags.

    The file comes from `config_file`, else `$JOBFLEET_CONFIG`; `$JOBFLEET_SETTINGS` may hold
    the same JSON inline (how the operator delivers it through a ConfigMap).
    """
    env = dict(os.environ) if env is None else env
    data: dict[str, Any] = {}
    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
    if inline := env.get(ENV_PREFIX + "SETTINGS"):
        try:
            data = _merge(data, json.loads(inline))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{ENV_PREFIX}SETTINGS is not valid JSON: {exc}") from None
    data = _merge(data, _env_overrides(env))
    data = _merge(data, overrides or {})
    try:
        return WorkerSettings.model_validate(data)
    except ValidationError as exc:
        message = format_validation_error(exc)
    # Raised outside the handler, so the ValidationError is not its __context__.
    raise ConfigError(message)


def format_validation_error(exc: ValidationError) -> str:
    """One readable line per problem, with the dotted path of the field."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "settings"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        lines.append(f"{loc}: {msg}")
    return "invalid settings: " + "; ".join(lines)
