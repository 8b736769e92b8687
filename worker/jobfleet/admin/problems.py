"""Errors as RFC 9457 `application/problem+json`, and which jobfleet error gets which status."""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from ..errors import (
    ConfigError,
    JobfleetError,
    JobNotFound,
    JobStateError,
    PayloadError,
    QueueBusy,
)

MEDIA_TYPE = "application/problem+json"


class FieldProblem(BaseModel):
    """One field that failed validation."""

    loc: str = Field(description="Where: `body.jobs.3.delay`, `query.limit`, `path.queue`.")
    message: str


class Problem(BaseModel):
    """An error (RFC 9457): `detail` says what was wrong and how to put it right."""

    type: str = "about:blank"
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    errors: list[FieldProblem] | None = Field(
        default=None, description="Each field that failed validation (422 only)."
    )


# The status of each jobfleet error, found through the exception's MRO so a subclass
# (JobActive under JobStateError) gets its parent's status unless it has its own.
STATUS_OF: dict[type[BaseException], int] = {
    JobNotFound: 404,
    JobStateError: 409,
    QueueBusy: 409,
    ConfigError: 422,
    PayloadError: 422,
}


def status_of(exc: JobfleetError) -> int | None:
    """The HTTP status of a jobfleet error, or None when it is not the caller's doing."""
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return None


class ProblemError(Exception):
    """Raised inside a handler or middleware to answer with a problem."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        fields: list[FieldProblem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.fields = fields
        self.headers = headers or {}

    def response(self) -> web.Response:
        return problem_response(self.status, self.detail, fields=self.fields, headers=self.headers)


def problem_response(
    status: int,
    detail: str,
    *,
    fields: list[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail, errors=fields)
    return web.Response(
        status=status,
        body=body.model_dump_json(exclude_none=True),
        content_type=MEDIA_TYPE,
        headers=headers,
    )


def invalid(exc: ValidationError, where: str) -> ProblemError:
    """A 422 naming each field of `where` (body, query, path) that failed, and why.

    The values themselves are never quoted: they may be large, or someone's secret.
    """
    fields = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join([where, *(str(p) for p in err["loc"])])
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        fields.append(FieldProblem(loc=loc, message=message))
    detail = "; ".join(f"{f.loc}: {f.message}" for f in fields)
    return ProblemError(422, detail or f"invalid {where}", fields=fields)
