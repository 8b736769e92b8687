"""The Queue resource's spec and status: one pydantic model, the single source of the CRD."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from jobfleet import MASTER_NAME_PATTERN, compile_schedule
from jobfleet.backoff import Backoff, BackoffKind
from jobfleet.errors import ConfigError
from jobfleet.settings import (
    MAX_PROCESSES,
    QUEUE_NAME,
    BreakerScope,
    CircuitBreaker,
    CronSchedule,
    EventLoop,
    GroupRateLimit,
    Isolation,
    PriorityName,
    QueueSettings,
    RateLimit,
    Retention,
    WorkerMode,
    WorkerSettings,
    check_redis_url,
)
from jobfleet.settings import PRIORITY_NAMES as PRIORITY_NAMES
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

GROUP = "jobfleet.dev"
VERSION = "v1alpha1"
KIND = "Queue"
PLURAL = "queues"
SINGULAR = "queue"
SHORT_NAMES = ["jfq"]
CATEGORIES = ["jobfleet"]

# Five whitespace-separated fields of cron characters, or one of the @-macros. CEL (RE2) cannot
# parse cron fully, so the API server checks the shape and the reconciler checks the meaning.
CRON_SHAPE = (
    r"^\s*(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
    r"|([0-9A-Za-z*/,?-]+\s+){4}[0-9A-Za-z*/,?-]+)\s*$"
)
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
PYTHON_MODULE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
# host[:port] of a Sentinel or a cluster node: a DNS name or an address ([brackets] for
# IPv6), port 1-65535.
SENTINEL_NODE = (
    r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?)"
    r"(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?$"
)
# The Redis queue name (spec.queueName, else metadata.name) must never change: the jobs of
# the old queue would be stranded. A root rule, since only the root sees metadata.name.
QUEUE_NAME_STABLE = (
    "(has(oldSelf.spec.queueName) ? oldSelf.spec.queueName : oldSelf.metadata.name) == "
    "(has(self.spec.queueName) ? self.spec.queueName : self.metadata.name)"
)
# K decides where every job of the queue lives: a new K would strand the jobs already placed
# by the old one, so the API server refuses the change and points at the migration.
PARTITIONS_DOC = "docs/partitions.md"
PARTITIONS_FIXED = (
    "spec.partitions cannot change after creation (jobs already placed in the old "
    f"partitions would be stranded): drain and recreate the queue, or move to a second Queue, "
    f"as {PARTITIONS_DOC} describes"
)
# A queue-wide rate limit's window cannot span partitions (slots): each enforces max // K.
PARTITIONED_RATE = (
    "rateLimit.max must be at least spec.partitions: each partition enforces "
    "max / partitions of the queue-wide window"
)
MAX_NAME = 54  # "<name>-jobfleet" must stay a valid DNS label (63)


@dataclass(frozen=True)
class EngineField:
    """Marks a spec field as the engine's field `name` of `model` (for `engine_values`)."""

    model: type[BaseModel]
    name: str


def engine_field(model: type[BaseModel], name: str, **spec_only: Any) -> Any:
    """Field `name` of the engine's `model`, for a spec field of another name: its default,
    bounds, checks and their messages come from the engine (and so do the CRD's), the spec
    adding only `spec_only` (a description for `kubectl explain`, a Kubernetes-only limit).

    The spec field's annotation is the engine field's without its bounds (`float | None`
    for `Annotated[float, between(...)] | None`); the bounds of an optional field move
    outside the `| None`, where they let None through.
    """
    info = model.model_fields[name]
    inner = [
        meta
        for arg in get_args(info.annotation)
        if get_origin(arg) is Annotated
        for meta in arg.__metadata__
    ]
    field = FieldInfo.merge_field_infos(info, Field(**spec_only))
    field.metadata = [*field.metadata, *inner, EngineField(model, name)]
    return field


def engine_values(part: BaseModel, model: type[BaseModel]) -> dict[str, Any]:
    """The values of `part`'s fields that are `model`'s fields, under the engine's names."""
    out = {}
    for attr, info in type(part).model_fields.items():
        for meta in info.metadata:
            if isinstance(meta, EngineField) and meta.model is model:
                out[meta.name] = getattr(part, attr)
    return out


def cel(rule: str, message: str, **extra: str) -> dict[str, str]:
    """One `x-kubernetes-validations` entry; the message is what `kubectl apply` prints."""
    return {"rule": rule, "message": message, **extra}


def _rules(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


class SpecModel(BaseModel):
    """Base of every part of the spec: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )


# Kubernetes quantities ("500m", "1Gi") and plain numbers are both valid resource amounts.
Quantity = Annotated[int | str, Field(json_schema_extra={"x-kubernetes-int-or-string": True})]


class SecretKeyRef(SpecModel):
    """A key of a Secret in the Queue's namespace."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="Name of the Secret."
    )
    key: str = Field(
        min_length=1, max_length=253, pattern=SECRET_KEY, description="Key within the Secret."
    )


class RedisTLS(SpecModel):
    """TLS towards Redis (`rediss://`; with Sentinel, towards the Sentinels and the master)."""

    enabled: bool = Field(default=False, description="Connect with TLS.")
    insecure_skip_verify: bool = Field(
        default=False, description="Do not verify the server certificate (testing only)."
    )


class RedisSentinel(SpecModel):
    """A master that Redis Sentinel watches: workers and the operator ask the Sentinels
    where it is, and follow it when they fail over to a replica."""

    master_name: str = Field(
        min_length=1,
        max_length=100,
        pattern=MASTER_NAME_PATTERN,
        description="The name the Sentinels monitor the master under (`sentinel monitor <name>`).",
    )
    nodes: list[Annotated[str, Field(min_length=1, max_length=260, pattern=SENTINEL_NODE)]] = Field(
        min_length=1,
        max_length=16,
        description="Sentinels as host:port (port 26379 when left out; [::1]:26379 for IPv6).",
        json_schema_extra={"x-kubernetes-list-type": "set"},  # the API server refuses repeats
    )
    db: int = Field(default=0, ge=0, le=1_000_000, description="Database number on the master.")
    password_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="A Secret key holding the Sentinels' own password (`requirepass` in "
        "sentinel.conf); the master's password is redis.passwordSecretRef.",
    )

    @field_validator("nodes")
    @classmethod
    def _unique(cls, nodes: list[str]) -> list[str]:
        if len(set(nodes)) != len(nodes):
            raise ValueError("redis.sentinel.nodes must not repeat a Sentinel")
        return nodes

    def url(self) -> str:
        """The `redis+sentinel://` URL of this master; no password: those come from Secrets,
        TLS from redis.tls."""
        return f"redis+sentinel://{','.join(self.nodes)}/{self.master_name}/{self.db}"


class RedisClusterSpec(SpecModel):
    """A Redis Cluster: workers and the operator discover it from these nodes, send each
    command to the node owning its queue's slot, and follow failovers and resharding."""

    nodes: list[Annotated[str, Field(min_length=1, max_length=260, pattern=SENTINEL_NODE)]] = Field(
        min_length=1,
        max_length=64,
        description="Seed nodes as host:port (port 6379 when left out; [::1]:6379 for IPv6): "
        "any reachable one tells the rest of the cluster.",
        json_schema_extra={"x-kubernetes-list-type": "set"},  # the API server refuses repeats
    )

    @field_validator("nodes")
    @classmethod
    def _unique(cls, nodes: list[str]) -> list[str]:
        if len(set(nodes)) != len(nodes):
            raise ValueError("redis.cluster.nodes must not repeat a node")
        return nodes

    def url(self) -> str:
        """The `redis+cluster://` URL of these nodes; no password (it comes from a Secret),
        TLS from redis.tls."""
        return f"redis+cluster://{','.join(self.nodes)}/"


REDIS_SOURCES = "set exactly one of redis.url, redis.urlSecretRef, redis.sentinel and redis.cluster"
URL_SCHEMES = (
    "redis.url must start with redis://, rediss://, unix://, redis+sentinel://, "
    "rediss+sentinel://, redis+cluster:// or rediss+cluster://"
)


class RedisSpec(SpecModel):
    """Where the queue lives. The password never appears in the Queue, only in a Secret."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            cel(
                "[has(self.url), has(self.urlSecretRef), has(self.sentinel), has(self.cluster)]"
                ".filter(x, x).size() == 1",
                REDIS_SOURCES,
            ),
            cel(
                "!has(self.url) || self.url.matches("
                "'^(redis|rediss|unix|rediss?[+]sentinel|rediss?[+]cluster)://')",
                URL_SCHEMES,
            ),
            cel(
                "!has(self.url) || !self.url.matches('^[a-z+]+://[^/@]*:[^/@]*@')",
                "redis.url must not contain a password: put it in a Secret and set "
                "redis.passwordSecretRef",
            ),
        )
    )

    url: str | None = Field(
        default=None,
        max_length=2048,
        description="Redis URL without password, e.g. redis://redis.jobfleet:6379/0.",
    )
    url_secret_ref: SecretKeyRef | None = Field(
        default=None, description="A Secret key holding the whole Redis URL (may hold a password)."
    )
    sentinel: RedisSentinel | None = Field(
        default=None, description="Find the master through Redis Sentinel instead of a URL."
    )
    cluster: RedisClusterSpec | None = Field(
        default=None, description="A Redis Cluster (cluster mode) instead of one server."
    )
    password_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="A Secret key holding the Redis password (of the master; of every "
        "node of a cluster).",
    )
    tls: RedisTLS = Field(default_factory=RedisTLS)
    allow_volatile_eviction: bool = Field(
        default=False,
        description="Let workers run on a volatile-* maxmemory-policy, which may evict dedup "
        "keys (duplicates admitted), rate-limit windows and circuit-breaker state.",
    )

    @model_validator(mode="after")
    def _check(self) -> RedisSpec:
        sources = (self.url, self.url_secret_ref, self.sentinel, self.cluster)
        if sum(s is not None for s in sources) != 1:
            raise ValueError(REDIS_SOURCES)
        if self.url is not None:
            try:
                check_redis_url(self.url)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
            if urlsplit(self.url).password is not None:
                raise ValueError(
                    "redis.url must not contain a password: put it in a Secret and set "
                    "redis.passwordSecretRef"
                )
        if self.sentinel is not None:
            try:
                check_redis_url(self.sentinel.url())
            except ConfigError as exc:
                raise ValueError(f"redis.sentinel: {exc}") from None
        if self.cluster is not None:
            try:
                check_redis_url(self.cluster.url())
            except ConfigError as exc:
                raise ValueError(f"redis.cluster: {exc}") from None
        return self

    def plain_url(self) -> str | None:
        """The URL of where the queue lives, without TLS or password; None when it comes
        from a Secret."""
        if self.sentinel is not None:
            return self.sentinel.url()
        if self.cluster is not None:
            return self.cluster.url()
        return self.url


class EnvVar(SpecModel):
    """An environment variable, as in a Pod (`value` or `valueFrom`)."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            cel("!(has(self.value) && has(self.valueFrom))", "set value or valueFrom, not both")
        )
    )

    name: str = Field(min_length=1, max_length=256, pattern=ENV_NAME, description="Variable name.")
    value: str | None = Field(
        default=None, max_length=65536, description="Literal value; $(VAR) references expand."
    )
    value_from: dict[str, Any] | None = Field(
        default=None, description="As in a Pod: secretKeyRef, configMapKeyRef, fieldRef, ..."
    )


class Resources(SpecModel):
    """Compute resources of a container, as in a Pod."""

    requests: dict[str, Quantity] | None = Field(
        default=None, description="Minimum resources, e.g. {cpu: 250m, memory: 256Mi}."
    )
    limits: dict[str, Quantity] | None = Field(default=None, description="Maximum resources.")


class SidecarSpec(SpecModel):
    """The user's handler container in sidecar mode; it serves `POST /jobs/<name>`."""

    image: str = Field(
        min_length=1, max_length=512, description="Image of the handler server (any language)."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None, description="As in a Pod; the cluster default when unset."
    )
    command: list[Annotated[str, Field(max_length=4096)]] | None = Field(
        default=None, max_length=64, description="Entrypoint; the image's when unset."
    )
    args: list[Annotated[str, Field(max_length=4096)]] | None = Field(
        default=None, max_length=256, description="Arguments; the image's when unset."
    )
    port: int = Field(default=8000, ge=1, le=65535, description="Port it serves jobs on.")
    readiness_path: str | None = Field(
        default=None,
        max_length=1024,
        pattern=r"^/",
        description="HTTP path of its readiness probe; none when unset.",
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=256,
        description="Environment variables of the container.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    resources: Resources | None = None


CPU_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m?)$")


def cpu_cores(amount: int | str) -> float | None:
    """A Kubernetes CPU quantity in cores ("1500m" -> 1.5, "2" -> 2.0), None if unreadable."""
    if isinstance(amount, int):
        return float(amount)
    m = CPU_QUANTITY.match(amount.strip())
    if m is None:
        return None
    return float(m.group(1)) / (1000.0 if m.group(2) else 1.0)


def default_processes(resources: Resources | None) -> int:
    """Worker processes of a pod whose Queue does not say: one per core of the worker
    container's CPU limit, rounded up (a 1.5-core limit gets 2: the second process uses the
    half core the first cannot); 1 without a limit, at most MAX_PROCESSES."""
    limit = (resources.limits or {}).get("cpu") if resources is not None else None
    cores = cpu_cores(limit) if limit is not None else None
    if cores is None or cores <= 0:
        return 1
    return max(1, min(MAX_PROCESSES, math.ceil(cores)))


class WorkerSpec(SpecModel):
    """The worker pods: image, handlers and pod settings."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            cel(
                "self.mode != 'sidecar' || has(self.sidecar)",
                "worker.sidecar is required when worker.mode is sidecar",
            ),
            cel(
                "self.mode == 'sidecar' || !has(self.sidecar)",
                "worker.sidecar is only allowed when worker.mode is sidecar",
            ),
            cel(
                "self.mode == 'sidecar' || (has(self.handlers) && size(self.handlers) > 0)",
                "worker.handlers must name at least one Python module in inProcess mode",
            ),
        )
    )

    image: str = Field(min_length=1, max_length=512, description="The jobfleet worker image.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None, description="As in a Pod; the cluster default when unset."
    )
    image_pull_secrets: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list, max_length=16, description="Names of image pull Secrets."
    )
    mode: WorkerMode = engine_field(
        WorkerSettings,
        "mode",
        description="inProcess: Python handlers in the worker image; sidecar: any language, "
        "served over HTTP by the sidecar container.",
    )
    handlers: list[Annotated[str, Field(max_length=200, pattern=PYTHON_MODULE)]] = Field(
        default_factory=list, max_length=64, description="Python modules the worker imports."
    )
    sidecar: SidecarSpec | None = None
    batch_size: int = engine_field(
        WorkerSettings, "batch_size", description="Max jobs claimed per call."
    )
    processes: int | None = engine_field(
        WorkerSettings,
        "processes",
        default=None,
        description="Worker processes per pod under one supervisor (one port, one set of "
        "metrics; each process runs `concurrency` jobs). Default: the worker container's CPU "
        f"limit rounded up, at most {MAX_PROCESSES}; 1 without a CPU limit or in sidecar mode.",
    )
    event_loop: EventLoop = engine_field(
        WorkerSettings,
        "event_loop",
        description="The event loop of the worker processes: asyncio (default) or uvloop (in "
        "the jobfleet worker image; a derived image needs the jobfleet[uvloop] extra). uvloop "
        "lowers CPU per job for I/O-bound handlers at low concurrency (about 10), not at 50 "
        "or with CPU-bound handlers.",
    )
    resources: Resources | None = None
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=256,
        description="Environment variables of the container.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    termination_grace_period_seconds: int = Field(
        default=30,
        ge=1,
        le=3600,
        description="Time a worker gets to drain in-flight jobs after SIGTERM.",
    )
    service_account_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="ServiceAccount of the worker pods (for the handlers' own API access).",
    )
    priority_class_name: str | None = Field(
        default=None, max_length=253, description="PriorityClass of the worker pods."
    )
    node_selector: dict[str, str] | None = Field(
        default=None, description="As in a Pod: nodes the workers may run on."
    )
    tolerations: list[dict[str, Any]] | None = Field(
        default=None, max_length=64, description="As in a Pod."
    )
    pod_labels: dict[str, str] | None = Field(
        default=None, description="Extra labels of the worker pods."
    )
    pod_annotations: dict[str, str] | None = Field(
        default=None, description="Extra annotations of the worker pods."
    )

    @property
    def processes_per_pod(self) -> int:
        """`processes`, else the default its description states (`default_processes`)."""
        if self.processes is not None:
            return self.processes
        if self.mode == "sidecar":  # the handlers run in the sidecar, on its CPU
            return 1
        return default_processes(self.resources)

    @model_validator(mode="after")
    def _check(self) -> WorkerSpec:
        if self.mode == "sidecar" and self.sidecar is None:
            raise ValueError("worker.sidecar is required when worker.mode is sidecar")
        if self.mode != "sidecar" and self.sidecar is not None:
            raise ValueError("worker.sidecar is only allowed when worker.mode is sidecar")
        if self.mode == "inProcess" and not self.handlers:
            raise ValueError(
                "worker.handlers must name at least one Python module in inProcess mode"
            )
        return self


RETRY_DELAYS = "retry.maxDelaySeconds must be >= retry.baseDelaySeconds"


class RetrySpec(SpecModel):
    """How often and how late a failed job is retried before it becomes a dead letter."""

    model_config = ConfigDict(
        json_schema_extra=_rules(cel("self.maxDelaySeconds >= self.baseDelaySeconds", RETRY_DELAYS))
    )

    max_attempts: int = engine_field(
        QueueSettings,
        "max_attempts",
        description="Attempts before a failing job becomes a dead letter.",
    )
    backoff: BackoffKind = engine_field(
        Backoff, "kind", description="exponential: base * 2^(retry-1); fixed: base."
    )
    base_delay_seconds: float = engine_field(
        Backoff, "base", description="Delay before the first retry."
    )
    max_delay_seconds: float = engine_field(Backoff, "cap", description="Cap of any retry delay.")
    jitter: bool = Field(default=True, description="Full jitter: spread retries of a fleet.")

    @model_validator(mode="after")
    def _check(self) -> RetrySpec:
        try:
            Backoff(**engine_values(self, Backoff))  # its one rule left: cap >= base
        except ValidationError:
            raise ValueError(RETRY_DELAYS) from None  # in the Queue's names, as CEL says it
        return self


class RateLimitSpec(SpecModel):
    """At most `max` job starts per `periodSeconds`, fleet-wide, optionally per key."""

    max: int = engine_field(RateLimit, "max", description="Job starts allowed per period.")
    period_seconds: float = engine_field(
        RateLimit, "period", description="Length of the sliding window."
    )
    key: str | None = engine_field(
        RateLimit,
        "key_field",
        description="Payload field whose value keys the limit (e.g. tenant); jobs may also set "
        "a key at enqueue.",
    )


class GroupRateLimitSpec(SpecModel):
    """At most `max` job starts per `periodSeconds` for each job group, fleet-wide."""

    max: int = engine_field(GroupRateLimit, "max", description="Job starts per period, per group.")
    period_seconds: float = engine_field(
        GroupRateLimit, "period", description="Length of each group's sliding window."
    )


class GroupsSpec(SpecModel):
    """Limits for each job group (tenant) of the queue, enforced fleet-wide. Groups are
    served round-robin inside each priority level; a group over its limits waits (its jobs
    count as held, which the autoscaler does not scale for) while the others go on.
    Per-group overrides are set at run time (`Client.set_group_limits`)."""

    concurrency: int | None = engine_field(
        QueueSettings, "group_concurrency", description="Jobs of one group in flight at once."
    )
    rate_limit: GroupRateLimitSpec | None = None


class CircuitBreakerSpec(SpecModel):
    """Fleet-wide breaker: stop starting jobs of a failing dependency, probe, recover."""

    scope: BreakerScope = engine_field(
        CircuitBreaker, "scope", description="One breaker for the queue, or one per handler name."
    )
    failure_threshold: int = engine_field(
        CircuitBreaker,
        "failure_threshold",
        description="Failed attempts within the window that trip it.",
    )
    failure_ratio: float | None = engine_field(
        CircuitBreaker,
        "failure_ratio",
        description="Trip on this failure ratio instead of a count.",
    )
    window_seconds: float = engine_field(
        CircuitBreaker, "window", description="Window the failures are counted in."
    )
    reset_timeout_seconds: float = engine_field(
        CircuitBreaker, "reset_timeout", description="How long an open breaker holds jobs."
    )
    half_open_probes: int = engine_field(
        CircuitBreaker, "half_open_probes", description="Jobs let through to test the dependency."
    )


class CompletedRetention(SpecModel):
    """Finished jobs kept so `get` can still report them."""

    max_count: int = engine_field(Retention, "completed_count", description="Jobs kept.")
    max_age_seconds: float = engine_field(Retention, "completed_age", description="Age kept.")


class DeadLetterRetention(SpecModel):
    """Dead letters kept for inspection and replay; unset limits keep them until purged."""

    max_count: int | None = engine_field(
        Retention, "dead_count", description="Dead letters kept; all when unset."
    )
    max_age_seconds: float | None = engine_field(
        Retention, "dead_age", description="Age kept; forever when unset."
    )


class RetentionSpec(SpecModel):
    """How long finished jobs and dead letters stay inspectable."""

    completed: CompletedRetention = Field(default_factory=CompletedRetention)
    dead_letters: DeadLetterRetention = Field(default_factory=DeadLetterRetention)


class PrioritySLA(SpecModel):
    """Target wait per priority level; a level without one uses the queue's target."""

    critical: float | None = Field(
        default=None, gt=0, le=86_400, description="Target wait (seconds) of critical jobs."
    )
    high: float | None = Field(
        default=None, gt=0, le=86_400, description="Target wait (seconds) of high jobs."
    )
    normal: float | None = Field(
        default=None, gt=0, le=86_400, description="Target wait (seconds) of normal jobs."
    )
    low: float | None = Field(
        default=None, gt=0, le=86_400, description="Target wait (seconds) of low jobs."
    )
    batch: float | None = Field(
        default=None, gt=0, le=86_400, description="Target wait (seconds) of batch jobs."
    )


class SLASpec(SpecModel):
    """The latency the queue promises: no job waits longer than this before it starts."""

    target_wait_seconds: float = Field(
        gt=0, le=86_400, description="No job should wait longer than this to start."
    )
    by_priority: PrioritySLA | None = None


class ScaleUpSpec(SpecModel):
    """Scale-up happens at once, by at most max(maxStepReplicas, maxStepPercent of current)."""

    max_step_replicas: int = Field(
        default=4, ge=1, le=1000, description="Replicas one decision may add."
    )
    max_step_percent: int = Field(
        default=100, ge=0, le=10_000, description="Or this percentage of the current size."
    )


class ScaleDownSpec(SpecModel):
    """Scale-down waits for the stabilization window and never goes below its max."""

    stabilization_window_seconds: float = Field(
        default=60, ge=0, le=3600, description="Recommendations remembered for scale-down."
    )


class ScaleInSpec(SpecModel):
    """How pods leave: drained first, so that scale-in never interrupts a job."""

    drain_timeout_seconds: float = Field(
        default=600,
        ge=0,
        le=86_400,
        description="Before a scale-in, the pods to remove stop claiming and the operator "
        "waits up to this long for their jobs to finish; then it lowers replicas anyway "
        "(those pods get SIGTERM and the grace period). 0 turns draining off.",
    )


class AutoscalingSpec(SpecModel):
    """Fleet size from backlog and SLA, between minReplicas and maxReplicas."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            cel(
                "self.minReplicas <= self.maxReplicas",
                "autoscaling.minReplicas must be <= autoscaling.maxReplicas",
            )
        )
    )

    enabled: bool = Field(default=True, description="When false the fleet stays at minReplicas.")
    min_replicas: int = Field(default=1, ge=0, le=1000, description="0 allows scale to zero.")
    max_replicas: int = Field(default=10, ge=1, le=1000, description="Upper bound of the fleet.")
    target_backlog_per_replica: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Waiting plus in-flight jobs one replica should carry; default concurrency "
        "times worker.processes.",
    )
    poll_interval_seconds: float = Field(
        default=2.0, ge=0.5, le=300, description="How often the queue is read and sized."
    )
    scale_up: ScaleUpSpec = Field(default_factory=ScaleUpSpec)
    scale_down: ScaleDownSpec = Field(default_factory=ScaleDownSpec)
    scale_in: ScaleInSpec = Field(default_factory=ScaleInSpec)
    cooldown_seconds: float = Field(
        default=120,
        ge=0,
        le=86_400,
        description="Idle time (nothing waiting or in flight) before scaling to zero.",
    )

    @model_validator(mode="after")
    def _check(self) -> AutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("autoscaling.minReplicas must be <= autoscaling.maxReplicas")
        return self


class ScheduleSpec(SpecModel):
    """A cron schedule: one job per tick, however many workers run."""

    name: str = Field(
        min_length=1, max_length=63, pattern=DNS_LABEL, description="Unique within the Queue."
    )
    cron: str = engine_field(
        CronSchedule,
        "cron",
        description="Five-field cron expression (minute hour day month weekday) or @hourly etc.",
        json_schema_extra=_rules(
            cel(
                # CEL string literals treat backslashes as escapes: double them.
                "self.matches('" + CRON_SHAPE.replace("\\", "\\\\") + "')",
                "cron must have five fields (minute hour day-of-month month day-of-week) or be "
                "one of @yearly, @monthly, @weekly, @daily, @hourly",
            )
        ),
    )
    timezone: str = engine_field(
        CronSchedule,
        "timezone",
        min_length=1,
        max_length=64,
        description="IANA name, e.g. Europe/Berlin.",
    )
    job: str = engine_field(CronSchedule, "job", description="The handler name to enqueue.")
    payload: Any = engine_field(CronSchedule, "payload", description="JSON payload of each job.")
    priority: PriorityName = engine_field(
        CronSchedule, "priority", description="Priority of each job."
    )
    enabled: bool = engine_field(
        CronSchedule, "enabled", description="Disabled schedules enqueue nothing."
    )
    missed: Literal["skip", "runOnce"] = Field(
        default="skip", description="After downtime: skip missed ticks, or run once."
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        return check_cron(v)

    @model_validator(mode="after")
    def _check(self) -> ScheduleSpec:
        try:
            compile_schedule(self.settings())  # the worker's own check: cron and time zone
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def settings(self) -> CronSchedule:
        """The schedule as the worker reads it."""
        return CronSchedule(
            **engine_values(self, CronSchedule),
            name=self.name,
            missed="run_once" if self.missed == "runOnce" else "skip",
        )


def check_cron(expr: str) -> str:
    """The shape the CRD's CEL rule checks (five fields or an @-macro, where the worker also
    takes a sixth for seconds); what the fields mean, the worker checks (`compile_schedule`)."""
    if not re.match(CRON_SHAPE, expr):
        raise ValueError(
            f"cron {expr!r} must have five fields (minute hour day-of-month month day-of-week)"
        )
    return expr


class QueueSpec(SpecModel):
    """A queue of background jobs and the autoscaled fleet of workers that runs them."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            cel("!has(self.rateLimit) || self.rateLimit.max >= self.partitions", PARTITIONED_RATE)
        )
    )

    queue_name: str | None = Field(
        default=None,
        max_length=100,
        pattern=QUEUE_NAME.pattern,
        description="Queue name in Redis; defaults to the Queue's metadata.name. Immutable: "
        "renaming would strand the jobs of the old queue.",
    )
    redis: RedisSpec
    worker: WorkerSpec
    partitions: int = engine_field(
        QueueSettings,
        "partitions",
        description="Sub-queues (queue#0 ... queue#K-1, each its own hash tag) the queue is "
        "spread over, so that one queue uses several shards of a Redis Cluster. Fixed at "
        f"creation: changing it is a migration ({PARTITIONS_DOC}).",
        json_schema_extra=_rules(cel("self == oldSelf", PARTITIONS_FIXED)),
    )
    concurrency: int = engine_field(
        QueueSettings,
        "concurrency",
        description="Jobs in flight per worker process (a pod runs worker.processes of them).",
    )
    retry: RetrySpec = Field(default_factory=RetrySpec)
    job_timeout_seconds: float | None = engine_field(
        QueueSettings, "job_timeout", description="Time limit of one attempt."
    )
    isolation: Isolation = engine_field(
        QueueSettings,
        "isolation",
        description="Where sync (plain-function) handlers run: thread, in a thread pool (past "
        "its timeout a thread cannot be stopped, so its job waits for it), or process, in "
        "child processes killed at the timeout. Async handlers always run on the event loop.",
    )
    lease_seconds: float = engine_field(
        QueueSettings,
        "lease",
        description="A claim expires unless renewed this often; stalled jobs are recovered.",
    )
    max_stalls: int = engine_field(
        QueueSettings,
        "poison_after",
        description="Lease expiries before a job is dead-lettered as poison.",
    )
    max_payload_bytes: int = engine_field(
        QueueSettings,
        "max_payload_bytes",
        description="Larger payloads are refused at enqueue.",
    )
    rate_limit: RateLimitSpec | None = None
    circuit_breaker: CircuitBreakerSpec | None = None
    groups: GroupsSpec | None = None
    retention: RetentionSpec = Field(default_factory=RetentionSpec)
    sla: SLASpec | None = None
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    schedules: list[ScheduleSpec] = Field(
        default_factory=list,
        max_length=100,
        description="Cron schedules: one job per tick, however many workers run.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    paused: bool = Field(
        default=False, description="Workers stop claiming jobs; enqueue keeps accepting."
    )

    @model_validator(mode="after")
    def _check(self) -> QueueSpec:
        if self.rate_limit is not None and self.rate_limit.max < self.partitions:
            raise ValueError(PARTITIONED_RATE)
        return self

    def queue(self, metadata_name: str) -> str:
        """The Redis queue name."""
        return self.queue_name or metadata_name

    @property
    def target_backlog_per_replica(self) -> int:
        """What one pod carries: concurrency in each of its worker processes, unless set."""
        per_pod = self.concurrency * self.worker.processes_per_pod
        return self.autoscaling.target_backlog_per_replica or per_pod


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(SpecModel):
    """A standard Kubernetes condition."""

    type: str = Field(max_length=316)
    status: ConditionStatus
    reason: str = Field(max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    observed_generation: int | None = Field(default=None, ge=0)


class DrainStatus(SpecModel):
    """A scale-in in progress: these pods claim nothing and are removed once idle."""

    pods: list[str] = Field(description="Pods being drained (the ones the scale-in removes).")
    from_replicas: int = Field(description="Replicas when the drain began.")
    to_replicas: int = Field(description="Replicas once the drained pods are idle.")
    started_at: str = Field(json_schema_extra={"format": "date-time"})
    deadline: str = Field(
        description="When the scale-in proceeds even if jobs are still running.",
        json_schema_extra={"format": "date-time"},
    )


class LastDrain(SpecModel):
    """How the last drain ended."""

    result: Literal["Drained", "TimedOut", "Cancelled"]
    message: str = ""
    time: str = Field(json_schema_extra={"format": "date-time"})


class QueueStatus(SpecModel):
    """What the operator last saw and did."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    replicas: int | None = Field(default=None, description="Replicas of the worker Deployment.")
    ready_replicas: int | None = None
    desired_replicas: int | None = Field(default=None, description="The autoscaler's decision.")
    backlog: int | None = Field(default=None, description="Waiting plus in-flight jobs.")
    waiting: int | None = None
    in_flight: int | None = None
    delayed: int | None = None
    dead: int | None = None
    oldest_wait_seconds: float | None = None
    throughput: float | None = Field(default=None, description="Completions per second.")
    workers: int | None = Field(default=None, description="Workers registered in Redis.")
    held: int | None = Field(
        default=None, description="Waiting jobs held back by a rate limit or an open breaker."
    )
    paused: bool | None = Field(default=None, description="Whether workers stop claiming.")
    circuits: dict[str, str] | None = Field(
        default=None, description="Circuit breaker state by scope ('*' = the whole queue)."
    )
    last_scale_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    last_scale_reason: str | None = None
    draining_pods: int | None = Field(
        default=None, description="Pods draining before a scale-in removes them."
    )
    drain: DrainStatus | None = Field(
        default=None, description="The scale-in drain in progress (a restart resumes it)."
    )
    last_drain: LastDrain | None = None
    deployment: str | None = Field(default=None, description="Name of the worker Deployment.")


def describe_errors(exc: ValidationError) -> str:
    """A ValidationError as `spec.path: message; ...`, without the input values.

    pydantic's own str() echoes the input, which may hold a Redis URL with a password.
    """
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in ("spec", *err["loc"]))
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{loc}: {msg.removeprefix('Value error, ')}")
    return "; ".join(lines)
