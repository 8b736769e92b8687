"""The job: priorities, states, what callers submit and what they read back."""

from __future__ import annotations

import enum
import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .backoff import Backoff
from .bounds import PositiveSeconds, Seconds, UnixTime, between
from .settings import GROUP_NAME, GROUP_NAME_RULE

# One encoder for payloads and results: json.dumps would rebuild it on every call. Control
# characters come out escaped, which the engine's batch records rely on.
encode_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Finds a control character in a text (None: there is none); the one check of `_printable`,
# also made by Client.enqueue's plain path.
has_control = _CONTROL.search
NAME_MAX = 200  # characters of a job's name


class Priority(enum.IntEnum):
    """Strict priority levels: a waiting job of a lower number always starts first."""

    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3
    BATCH = 4

    @classmethod
    def parse(cls, value: PriorityLike) -> Priority:
        """Accept a Priority, its name in any case (`"critical"`) or its number."""
        if isinstance(value, Priority):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                names = ", ".join(p.name.lower() for p in cls)
                raise ValueError(f"unknown priority {value!r}; expected one of {names}") from None
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                raise ValueError(f"priority must be between 0 and {len(cls) - 1}") from None
        raise ValueError(f"priority must be a name or an int, not {type(value).__name__}")


PriorityLike = Priority | int | str


class JobState(enum.StrEnum):
    """Where a job is in its life."""

    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    DEAD = "dead"
    CANCELLED = "cancelled"  # `Client.cancel`: never retried, kept like a completed job

    @property
    def final(self) -> bool:
        return self in (JobState.COMPLETED, JobState.DEAD, JobState.CANCELLED)


class JobSpec(BaseModel):
    """One job to enqueue; `Client.enqueue_many` takes a list of these."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=NAME_MAX)
    payload: Any = None
    priority: PriorityLike = Priority.NORMAL
    delay: Seconds | None = None
    run_at: UnixTime | None = Field(default=None, description="Unix time (seconds) to run at.")
    job_id: str | None = Field(default=None, min_length=1, max_length=200)
    dedup_key: str | None = Field(default=None, min_length=1, max_length=200)
    dedup_ttl: PositiveSeconds | None = None
    max_attempts: Annotated[int, between(1, 1000)] | None = None
    backoff: Backoff | None = None
    timeout: PositiveSeconds | None = None
    rate_key: str | None = Field(default=None, min_length=1, max_length=200)
    partition_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        # No control characters, checked by pydantic-core rather than a Python validator:
        # an enqueue without the key (most) then pays nothing for it.
        pattern=r"^[^\x00-\x1f\x7f]*$",
        description="Places the job in a partitioned queue: the same key, the same partition, "
        "relative order kept (docs/partitions.md). Ignored by an unpartitioned queue.",
    )
    group: str | None = Field(
        default=None,
        description="The job's group (a tenant): inside a priority level the groups are "
        "served round-robin; None is the default group.",
        json_schema_extra={"pattern": GROUP_NAME.pattern},
    )

    @field_validator("group")
    @classmethod
    def _group(cls, v: str | None) -> str | None:
        if v is not None and not GROUP_NAME.match(v):
            raise ValueError(f"invalid group name {v!r}: use {GROUP_NAME_RULE}")
        return v

    @field_validator("name", "job_id", "dedup_key", "rate_key")
    @classmethod
    def _printable(cls, v: str | None) -> str | None:
        # Control characters delimit the engine's batch records (and never belong in a name).
        if v is not None and has_control(v):
            raise ValueError("must not contain control characters")
        return v


class JobError(BaseModel):
    """Why the last attempt of a job failed."""

    type: str
    message: str
    traceback: str | None = None


class JobInfo(BaseModel):
    """A snapshot of one job, as `Client.get` returns it."""

    id: str
    queue: str
    name: str
    payload: Any
    state: JobState
    priority: Priority
    attempt: int = Field(description="Attempts started so far (released attempts excluded).")
    max_attempts: int | None = Field(description="Per-job override; None means the queue's.")
    progress: float | None = None
    progress_message: str | None = None
    progress_stage: str | None = None
    result: Any = None
    error: JobError | None = None
    dead_reason: str | None = None
    enqueued_at: float
    run_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    stalls: int = 0
    overdue_since: float | None = Field(
        default=None,
        description="When the running attempt passed its timeout, while its sync handler "
        "(which a thread cannot interrupt) runs on; the job fails with JobTimeout once it "
        "returns.",
    )
    dedup_key: str | None = None
    rate_key: str | None = None
    group: str | None = Field(default=None, description="The job's group; None: the default.")
    worker_id: str | None = Field(default=None, description="The worker running it (active).")
    lease_deadline: float | None = Field(
        default=None,
        description="When the running attempt's lease ends unless its worker renews it "
        "(active; Unix seconds on the Redis clock).",
    )
    cancelled_at: float | None = None

    @classmethod
    def from_hash(
        cls, queue: str, job_id: str, h: dict[str, str], *, lease_deadline: float | None = None
    ) -> JobInfo:
        """Build from the job's Redis hash (bytes already decoded)."""

        def ms(field: str) -> float | None:
            v = h.get(field)
            return int(v) / 1000.0 if v else None

        error = None
        if h.get("error_type"):
            error = JobError(
                type=h["error_type"],
                message=h.get("error_message", ""),
                traceback=h.get("traceback") or None,
            )
        max_attempts = h.get("max_attempts")
        # The mark belongs to one attempt: it lapses once the lease token moves on.
        overdue = bool(h.get("token")) and h.get("overdue_token") == h.get("token")
        progress = h.get("progress")
        state = JobState(h["state"])
        active = state is JobState.ACTIVE
        return cls(
            id=job_id,
            queue=queue,
            name=h["name"],
            payload=json.loads(h["payload"]),
            state=state,
            priority=Priority(int(h.get("priority", Priority.NORMAL))),
            attempt=int(h.get("attempt", 0)),
            max_attempts=int(max_attempts) if max_attempts else None,
            progress=float(progress) if progress else None,
            progress_message=h.get("progress_message") or None,
            progress_stage=h.get("progress_stage") or None,
            result=json.loads(h["result"]) if h.get("result") else None,
            error=error,
            dead_reason=h.get("dead_reason") or None,
            enqueued_at=ms("enqueued_at") or 0.0,
            run_at=ms("run_at"),
            started_at=ms("started_at"),
            finished_at=ms("finished_at"),
            stalls=int(h.get("stalls", 0)),
            overdue_since=ms("overdue_since") if overdue else None,
            dedup_key=h.get("dedup_key") or None,
            rate_key=h.get("rate_key") or None,
            group=h.get("group") or None,
            worker_id=(h.get("worker") or None) if active else None,
            lease_deadline=lease_deadline if active else None,
            cancelled_at=ms("cancelled_at"),
        )


OnFinal = Literal["completed", "dead"]
