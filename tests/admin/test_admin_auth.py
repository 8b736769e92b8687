"""Auth: none / wrong / viewer / admin against every route of the table, the open endpoints,
and no token in any log line or reply."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from jobfleet.admin.auth import Role
from jobfleet.admin.routes import ROUTES, Route
from leaks import leaked

WHO = [None, "wrong", "viewer", "admin"]
# A request each route accepts when the caller may make it; the rest of its inputs are
# filled in from the path: queue "q" and a waiting job "j".
QUERY = {"list_jobs": "?state=waiting"}
BODY: dict[str, Any] = {
    "enqueue": {"name": "n"},
    "enqueue_bulk": {"jobs": [{"name": "n"}]},
    "replay": {"ids": ["j"]},
    "purge": {"ids": ["j"]},
    "clear": {},
}
# Where the admin's answer is not the route's success status, because "j" is waiting.
ADMIN_STATUS = {"retry": 409}


def url(route: Route[Any, Any]) -> str:
    path = route.full_path.replace("{queue}", "q").replace("{id}", "j")
    return path + QUERY.get(route.name, "")


def expected(route: Route[Any, Any], who: str | None) -> int:
    if who in (None, "wrong"):
        return 401
    if who == "viewer" and route.needed_role is Role.ADMIN:
        return 403
    return ADMIN_STATUS.get(route.name, route.status) if who == "admin" else route.status


async def _matrix(server) -> list[tuple[Route[Any, Any], str | None, int, Any, Any]]:
    seen = []
    for route in ROUTES:
        for who in WHO:
            await server.client.enqueue("n", job_id="j")  # a fresh one for every call
            status, body, resp = await server.call(
                route.method, url(route), who=who, json=BODY.get(route.name)
            )
            seen.append((route, who, status, body, resp))
    return seen


async def test_every_route_checks_the_token_and_the_role(server):
    for route, who, status, body, resp in await _matrix(server):
        where = f"{route.method} {route.full_path} as {who}"
        assert status == expected(route, who), (where, body)
        assert status in route.statuses, where  # every answer is one the OpenAPI states
        if status == 401:
            assert resp.headers["WWW-Authenticate"].startswith("Bearer"), where
            assert resp.content_type == "application/problem+json", where
        if status == 403:
            assert body["detail"].startswith("a viewer token cannot"), where


async def test_open_endpoints_need_no_token(server):
    for path in ("/healthz", "/metrics", "/api/v1/openapi.json"):
        status, _, _ = await server.call("GET", path, who=None)
        assert status == 200, path
    _, metrics, _ = await server.call("GET", "/metrics", who=None)
    assert "jobfleet_admin_requests_total" in metrics


def test_the_table_declares_each_route_once():
    keys = [(r.method, r.full_path) for r in ROUTES]
    assert len(keys) == len(set(keys))
    assert all(r.name for r in ROUTES) and len({r.name for r in ROUTES}) == len(ROUTES)


async def test_no_token_reaches_a_log_line_or_a_reply(server, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    seen = await _matrix(server)
    texts = [caplog.text] + [str(body) + str(dict(resp.headers)) for *_, body, resp in seen]

    # Even an error whose text holds the caller's header (no code of ours builds one) is
    # logged without it: the 500's traceback is redacted with the request's own token.
    async def broken(**_: Any) -> None:
        raise RuntimeError(f"cannot use {server.tokens.admin}")

    server.client.inspect = broken
    status, problem, _ = await server.call("GET", "/api/v1/queues/q", who="admin")
    assert status == 500 and "RuntimeError" in caplog.text
    texts.append(str(problem))
    every = "\n".join([*texts, caplog.text])
    assert re.search(r"GET /api/v1/whoami 200 [\d.]+ms role=viewer", caplog.text)
    for token in (server.tokens.admin, server.tokens.viewer, server.tokens.wrong):
        assert [p for p in leaked(every, token) if len(p) >= 4] == []
