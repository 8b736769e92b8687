"""The API's request and response models: what the handlers validate and the OpenAPI states."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from ..bounds import between
from ..job import JobInfo, JobSpec
from ..settings import QUEUE_NAME, check_queue_name
from ..stats import CronInfo, ListState, QueueStats, WorkerInfo
from .auth import Role

MAX_BULK = 1000
MAX_IDS = 10_000
PAGE_DEFAULT = 50
PAGE_MAX = 200  # the library allows 1000 a page; a browser or a script needs no more than this

QueueName = Annotated[
    str,
    AfterValidator(check_queue_name),
    WithJsonSchema({"type": "string", "pattern": QUEUE_NAME.pattern}),
]
# What `Client.clear` may empty (client.CLEARABLE, as a type for the schema).
ClearableState = Literal["waiting", "delayed", "held"]
JobId = Annotated[str, Field(min_length=1, max_length=200)]
Filter = Annotated[str, Field(min_length=1, max_length=200)]


class Empty(BaseModel):
    """No parameters (or no body)."""


class QueuePath(BaseModel):
    queue: QueueName


class JobPath(QueuePath):
    id: JobId


class _Query(BaseModel):
    # Unknown query parameters are ignored, as browsers and proxies add their own.
    model_config = ConfigDict(extra="ignore")


class DeadLettersQuery(_Query):
    name: Filter | None = Field(default=None, description="Only jobs of this handler.")
    error_type: Filter | None = Field(
        default=None, description="Only jobs whose last error has this type."
    )
    limit: Annotated[int, between(1, PAGE_MAX)] = Field(
        default=PAGE_DEFAULT, description="Jobs a page."
    )
    cursor: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="`next_cursor` of the previous page.",
    )


class JobsQuery(DeadLettersQuery):
    state: ListState


# Enqueue takes exactly what `Client.enqueue_many` takes: one model, one set of bounds.
EnqueueRequest = JobSpec


class BulkEnqueueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[EnqueueRequest] = Field(min_length=1, max_length=MAX_BULK)


class DeadLetterSelection(BaseModel):
    """Dead letters by id, or every one matching the filters (all of them when none given)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[JobId] | None = Field(default=None, min_length=1, max_length=MAX_IDS)
    name: Filter | None = None
    error_type: Filter | None = None

    @model_validator(mode="after")
    def _ids_or_filters(self) -> DeadLetterSelection:
        if self.ids is not None and (self.name is not None or self.error_type is not None):
            raise ValueError("give either ids or the filters name and error_type, not both")
        return self


class ClearRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    states: list[ClearableState] = Field(
        default=["waiting", "delayed", "held"], min_length=1, max_length=3
    )


class WhoAmI(BaseModel):
    role: Role


class QueueList(BaseModel):
    queues: list[QueueStats]


class WorkerList(BaseModel):
    workers: list[WorkerInfo]


class Links(BaseModel):
    next: str | None = Field(
        description="The next page with the same filters (a path and query), or null."
    )


class JobList(BaseModel):
    jobs: list[JobInfo]
    next_cursor: str | None = Field(description="null: this is the last page.")
    links: Links


class Created(BaseModel):
    id: str


class CreatedMany(BaseModel):
    ids: list[str]


class CancelResult(BaseModel):
    result: Literal["cancelled", "cancelling"] = Field(
        description="`cancelled`: taken out of line; `cancelling`: its worker was told to stop."
    )


class Count(BaseModel):
    count: int


class CronList(BaseModel):
    schedules: list[CronInfo]
