"""The route table: each route's method, path, models, role and statuses, and its handler.

The router (app.py) and the OpenAPI document (openapi.py) both read `ROUTES`, so what is
served and what is documented cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ..client import Client
from ..job import JobInfo
from ..stats import ListState, QueueStats
from .auth import Role
from .models import (
    BulkEnqueueRequest,
    CancelResult,
    ClearRequest,
    Count,
    Created,
    CreatedMany,
    CronList,
    DeadLetterSelection,
    DeadLettersQuery,
    Empty,
    EnqueueRequest,
    JobList,
    JobPath,
    JobsQuery,
    Links,
    QueueList,
    QueuePath,
    WhoAmI,
    WorkerList,
)
from .problems import ProblemError, invalid

PREFIX = "/api/v1"
Method = Literal["GET", "POST", "DELETE"]
Q = TypeVar("Q", bound=BaseModel)
B = TypeVar("B", bound=BaseModel)


@dataclass(frozen=True)
class Call(Generic[Q, B]):
    """One validated request, as a handler gets it."""

    client: Client
    request: web.Request
    role: Role
    queue: str
    job_id: str
    query: Q
    body: B


@dataclass(frozen=True)
class Route(Generic[Q, B]):
    """One endpoint. Its role defaults to the method's (GET: viewer, else admin); 401 and 403,
    422 for what it validates, 400 and 413 for a body are implied."""

    method: Method
    path: str  # under PREFIX; `{queue}` and `{id}` are the path parameters
    handler: Callable[[Call[Q, B]], Awaitable[BaseModel | None]]
    summary: str
    query: type[Q]
    body: type[B]
    reply: type[BaseModel] | None  # None: 204 No Content
    status: int = 200
    errors: tuple[int, ...] = ()  # statuses the handler itself answers with
    role: Role | None = field(default=None)

    # Cached: read on every request (cached_property writes the instance's __dict__, which a
    # frozen dataclass allows).
    @cached_property
    def needed_role(self) -> Role:
        if self.role is not None:
            return self.role
        return Role.VIEWER if self.method == "GET" else Role.ADMIN

    @cached_property
    def full_path(self) -> str:
        return PREFIX + self.path

    @property
    def name(self) -> str:
        return self.handler.__name__

    @cached_property
    def path_model(self) -> type[BaseModel]:
        params = set(re.findall(r"{(\w+)}", self.path))
        return JobPath if "id" in params else QueuePath if "queue" in params else Empty

    @property
    def statuses(self) -> list[int]:
        """Every status this route can answer with, success first."""
        out = [self.status, 401, 503]  # 503: Redis unreachable
        if self.needed_role is Role.ADMIN:
            out.append(403)
        if self.body is not Empty:
            out += [400, 413]
        if self.body is not Empty or self.query is not Empty or self.path_model is not Empty:
            out.append(422)
        return sorted(set(out + list(self.errors)), key=lambda s: (s != self.status, s))


# -- handlers -------------------------------------------------------------------------------


async def whoami(call: Call[Empty, Empty]) -> WhoAmI:
    return WhoAmI(role=call.role)


async def list_queues(call: Call[Empty, Empty]) -> QueueList:
    return QueueList(queues=await call.client.queues())


async def queue(call: Call[Empty, Empty]) -> QueueStats:
    return await call.client.inspect(queue=call.queue)


async def workers(call: Call[Empty, Empty]) -> WorkerList:
    found = await call.client.workers(queue=call.queue)
    return WorkerList(workers=sorted(found.values(), key=lambda w: w.id))


def _page(call: Call[Any, Any], jobs: list[JobInfo], cursor: str | None) -> JobList:
    url = call.request.rel_url
    link = None if cursor is None else str(url.update_query(cursor=cursor))
    return JobList(jobs=jobs, next_cursor=cursor, links=Links(next=link))


async def _listed(call: Call[Any, Any], state: ListState, q: DeadLettersQuery) -> JobList:
    page = await call.client.jobs(
        state,
        queue=call.queue,
        name=q.name,
        error_type=q.error_type,
        limit=q.limit,
        cursor=q.cursor,
    )
    return _page(call, list(page.jobs), page.next_cursor)


async def list_jobs(call: Call[JobsQuery, Empty]) -> JobList:
    return await _listed(call, call.query.state, call.query)


async def job(call: Call[Empty, Empty]) -> JobInfo:
    return await call.client.get(call.job_id, queue=call.queue)


async def enqueue(call: Call[Empty, EnqueueRequest]) -> Created:
    ids = await call.client.enqueue_many([call.body], queue=call.queue)
    return Created(id=ids[0])


async def enqueue_bulk(call: Call[Empty, BulkEnqueueRequest]) -> CreatedMany:
    return CreatedMany(ids=await call.client.enqueue_many(call.body.jobs, queue=call.queue))


async def remove(call: Call[Empty, Empty]) -> None:
    await call.client.remove(call.job_id, queue=call.queue)


async def retry(call: Call[Empty, Empty]) -> JobInfo:
    await call.client.retry(call.job_id, queue=call.queue)
    return await call.client.get(call.job_id, queue=call.queue)


async def cancel(call: Call[Empty, Empty]) -> CancelResult:
    return CancelResult(result=await call.client.cancel(call.job_id, queue=call.queue))


async def dead_letters(call: Call[DeadLettersQuery, Empty]) -> JobList:
    return await _listed(call, "dead", call.query)


async def replay(call: Call[Empty, DeadLetterSelection]) -> Count:
    b = call.body
    dlq = call.client.dead_letters(call.queue)
    return Count(count=await dlq.replay(b.ids, name=b.name, error_type=b.error_type))


async def purge(call: Call[Empty, DeadLetterSelection]) -> Count:
    b = call.body
    dlq = call.client.dead_letters(call.queue)
    return Count(count=await dlq.purge(b.ids, name=b.name, error_type=b.error_type))


async def pause(call: Call[Empty, Empty]) -> QueueStats:
    await call.client.pause(queue=call.queue)
    return await call.client.inspect(queue=call.queue)


async def resume(call: Call[Empty, Empty]) -> QueueStats:
    await call.client.resume(queue=call.queue)
    return await call.client.inspect(queue=call.queue)


async def clear(call: Call[Empty, ClearRequest]) -> Count:
    return Count(count=await call.client.clear(states=call.body.states, queue=call.queue))


async def cron(call: Call[Empty, Empty]) -> CronList:
    return CronList(schedules=await call.client.cron_schedules(queue=call.queue))


Q_ = "/queues/{queue}"
J_ = Q_ + "/jobs/{id}"
ROUTES: tuple[Route[Any, Any], ...] = (
    Route("GET", "/whoami", whoami, "The role of the caller's token", Empty, Empty, WhoAmI),
    Route("GET", "/queues", list_queues, "Every queue with its stats", Empty, Empty, QueueList),
    Route("GET", Q_, queue, "One queue's stats", Empty, Empty, QueueStats),
    Route("GET", Q_ + "/workers", workers, "Live workers", Empty, Empty, WorkerList),
    Route("GET", Q_ + "/jobs", list_jobs, "Jobs by state", JobsQuery, Empty, JobList),
    Route("GET", J_, job, "One job", Empty, Empty, JobInfo, errors=(404,)),
    Route("POST", Q_ + "/jobs", enqueue, "Enqueue a job", Empty, EnqueueRequest, Created, 201),
    Route(
        "POST",
        Q_ + "/jobs/bulk",
        enqueue_bulk,
        "Enqueue up to 1000 jobs (all validated before any is written)",
        Empty,
        BulkEnqueueRequest,
        CreatedMany,
        201,
    ),
    Route(
        "DELETE",
        J_,
        remove,
        "Remove a job that is not active",
        Empty,
        Empty,
        None,
        204,
        errors=(404, 409),
    ),
    Route(
        "POST",
        J_ + "/retry",
        retry,
        "A dead job back in line, its attempts reset",
        Empty,
        Empty,
        JobInfo,
        errors=(404, 409),
    ),
    Route(
        "POST",
        J_ + "/cancel",
        cancel,
        "Cancel a job: out of line, or its worker told to stop",
        Empty,
        Empty,
        CancelResult,
        errors=(404, 409),
    ),
    Route(
        "GET",
        Q_ + "/dead-letters",
        dead_letters,
        "Dead letters, newest first",
        DeadLettersQuery,
        Empty,
        JobList,
    ),
    Route(
        "POST",
        Q_ + "/dead-letters/replay",
        replay,
        "Put dead letters back in line",
        Empty,
        DeadLetterSelection,
        Count,
    ),
    Route(
        "POST",
        Q_ + "/dead-letters/purge",
        purge,
        "Delete dead letters for good",
        Empty,
        DeadLetterSelection,
        Count,
    ),
    Route("POST", Q_ + "/pause", pause, "Stop starting jobs", Empty, Empty, QueueStats),
    Route("POST", Q_ + "/resume", resume, "Start jobs again", Empty, Empty, QueueStats),
    Route(
        "POST",
        Q_ + "/clear",
        clear,
        "Remove the jobs in these states",
        Empty,
        ClearRequest,
        Count,
    ),
    Route(
        "GET",
        Q_ + "/cron",
        cron,
        "Cron schedules and their next ticks",
        Empty,
        Empty,
        CronList,
    ),
)


# -- dispatch -------------------------------------------------------------------------------


EMPTY = Empty()  # what a route without parameters or body gets: nothing to validate


def _validate(model: type[B], data: dict[str, str], where: str) -> B:
    if model is Empty:
        return EMPTY  # type: ignore[return-value]  # B is Empty here
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, where) from None


async def _body(request: web.Request, model: type[B]) -> B:
    if model is Empty:
        return EMPTY  # type: ignore[return-value]  # a body on a route that takes none is not read
    raw = await request.read()  # HTTPRequestEntityTooLarge past client_max_size
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        if first["type"] == "json_invalid":
            raise ProblemError(400, f"body is not valid JSON: {first['msg']}") from None
        raise invalid(exc, "body") from None


async def dispatch(route: Route[Q, B], request: web.Request, client: Client, role: Role) -> Any:
    """Validate the request for `route` and run its handler; the reply model or None."""
    path = _validate(route.path_model, dict(request.match_info), "path")
    # Unknown query parameters are ignored (models._Query), so a route that takes none has
    # nothing to check in them.
    query = _validate(route.query, dict(request.query) if route.query is not Empty else {}, "query")
    body = await _body(request, route.body)
    call = Call(
        client=client,
        request=request,
        role=role,
        # Not getattr with a default: a model's missing attribute goes through pydantic's
        # __getattr__ and an AttributeError, on every request of a route without an {id}.
        queue=path.queue if isinstance(path, QueuePath) else "",
        job_id=path.id if isinstance(path, JobPath) else "",
        query=query,
        body=body,
    )
    return await route.handler(call)
