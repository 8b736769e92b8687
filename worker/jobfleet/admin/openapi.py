"""The OpenAPI 3.1 document, generated from the route table and its pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .. import __version__
from .models import Empty
from .problems import MEDIA_TYPE, Problem
from .routes import PREFIX, ROUTES, Route

REF = "#/components/schemas/{model}"
DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    204: "Done; no content",
    400: "The body is not valid JSON",
    401: "No bearer token, or one this server does not know",
    403: "A viewer token on an endpoint that needs admin",
    404: "No such job",
    409: "The job's state does not allow it (an active job: cancel it first)",
    413: "The body is over the server's limit",
    422: "A parameter or body field is invalid; `errors` names each",
    503: "Redis is not reachable right now",
}


def _schemas() -> tuple[dict[tuple[type[BaseModel], JsonSchemaMode], Any], dict[str, Any]]:
    models: set[tuple[type[BaseModel], JsonSchemaMode]] = {(Problem, "serialization")}
    for route in ROUTES:
        models.add((route.body, "validation"))  # parameters are inlined, not referenced
        if route.reply is not None:
            models.add((route.reply, "serialization"))
    ordered = sorted(models - {(Empty, "validation")}, key=lambda m: (m[0].__name__, m[1]))
    refs, top = models_json_schema(ordered, ref_template=REF)
    return {(m, mode): refs[(m, mode)] for m, mode in ordered}, top.get("$defs", {})


def _inline(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema: a referenced enum inlined, and the null branch of an optional
    one dropped (a query parameter is absent, never null)."""
    if "$ref" in schema:
        return _inline(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    branches = [b for b in schema.get("anyOf", ()) if b.get("type") != "null"]
    if "anyOf" in schema and len(branches) == 1:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return {**rest, **_inline(branches[0], defs)}
    return schema


def _parameters(model: type[BaseModel], where: str, defs: dict[str, Any]) -> list[Any]:
    if model is Empty:
        return []
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        prop = _inline(prop, {**defs, **schema.get("$defs", {})})
        prop.pop("title", None)
        param = {"name": name, "in": where, "required": where == "path" or name in required}
        if "description" in prop:
            param["description"] = prop.pop("description")
        out.append({**param, "schema": prop})
    return out


def _responses(
    route: Route[Any, Any], refs: dict[tuple[type[BaseModel], JsonSchemaMode], Any]
) -> dict[str, Any]:
    problem = {MEDIA_TYPE: {"schema": refs[(Problem, "serialization")]}}
    out: dict[str, Any] = {}
    for status in route.statuses:
        text = DESCRIPTIONS.get(status, "")
        if status == route.status:
            if route.reply is None:
                out[str(status)] = {"description": text}
            else:
                schema = refs[(route.reply, "serialization")]
                out[str(status)] = {
                    "description": text,
                    "content": {"application/json": {"schema": schema}},
                }
        else:
            out[str(status)] = {"description": text, "content": problem}
    return out


def document() -> dict[str, Any]:
    """The API as OpenAPI 3.1: paths from ROUTES, schemas from their models."""
    refs, defs = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        op: dict[str, Any] = {
            "operationId": route.name,
            "summary": route.summary,
            "security": [{"bearer": []}],
            "x-jobfleet-role": route.needed_role.value,
            "parameters": _parameters(route.path_model, "path", defs)
            + _parameters(route.query, "query", defs),
            "responses": _responses(route, refs),
        }
        if route.body is not Empty:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(route.body, "validation")]}},
            }
        paths.setdefault(route.full_path, {})[route.method.lower()] = op
    paths[PREFIX + "/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],
            "responses": {
                "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobfleet admin API",
            "version": __version__,
            "description": "Queues, jobs and dead letters of one Redis. Roles: `viewer` "
            "(GET) and `admin` (everything). Errors are RFC 9457 problem documents.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
