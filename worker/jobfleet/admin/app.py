"""The admin application: routes from the table, auth, problems, the open endpoints, serving."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import time
import traceback
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from redis.exceptions import RedisError

from ..bounds import MIB
from ..client import Client
from ..errors import ConfigError, JobfleetError
from ..redaction import redact_text
from ..supervisor import METRICS_DIR_ENV, multiprocess_registry
from .auth import Role, TokenStore
from .openapi import document
from .problems import ProblemError, problem_response, status_of
from .routes import PREFIX, ROUTES, Route, dispatch

log = logging.getLogger("jobfleet.admin")
access_log = logging.getLogger("jobfleet.admin.access")

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_PORT = 8080
DEFAULT_MAX_BODY = MIB
PROCESS_HEADER = "Jobfleet-Process"  # the pid of the process that answered
JSON_HEADERS = {"Content-Type": "application/json"}
PID = str(os.getpid())  # a child is a fresh interpreter (exec, not fork): its own pid

REQUESTS = Counter(
    "jobfleet_admin_requests_total",
    "Admin API requests by route (its template) and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "jobfleet_admin_request_duration_seconds",
    "Time to answer one admin API request.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)

CLIENT: web.AppKey[Client] = web.AppKey("client", Client)
TOKENS: web.AppKey[TokenStore] = web.AppKey("tokens", TokenStore)
SECRETS: web.AppKey[tuple[str, ...]] = web.AppKey("secrets", tuple)
MAX_BODY: web.AppKey[int] = web.AppKey("max_body", int)
# The caller's role, for the access log: the handler runs in the middleware's task, so it
# sees what the handler set (a request key would need aiohttp 3.14's RequestKey).
ROLE: ContextVar[Role | None] = ContextVar("jobfleet_admin_role", default=None)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def authenticate(request: web.Request, needed: Role) -> Role:
    """The caller's role, or a 401 (no or unknown token) or 403 (a viewer writing)."""
    token = _bearer(request)
    if token is None:
        raise ProblemError(
            401,
            "this endpoint needs an 'Authorization: Bearer <token>' header",
            headers={"WWW-Authenticate": 'Bearer realm="jobfleet"'},
        )
    role = request.app[TOKENS].role(token)
    if role is None:
        raise ProblemError(
            401,
            "the bearer token is not one this server knows",
            headers={"WWW-Authenticate": 'Bearer realm="jobfleet", error="invalid_token"'},
        )
    ROLE.set(role)
    if not role.allows(needed):
        raise ProblemError(403, f"a {role.value} token cannot {request.method}: it needs admin")
    return role


def _api_handler(route: Route[Any, Any]) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        role = authenticate(request, route.needed_role)
        result = await dispatch(route, request, request.app[CLIENT], role)
        if result is None:
            return web.Response(status=204)
        # Bytes straight from pydantic's serializer: a str body would be encoded again.
        body = result.__pydantic_serializer__.to_json(result)
        return web.Response(status=route.status, body=body, headers=JSON_HEADERS)

    handle.__name__ = route.name
    return handle


def _http_problem(exc: web.HTTPException, request: web.Request) -> web.Response:
    """aiohttp's own refusals (no route, wrong method, body too large) as problems."""
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        detail = f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
        return problem_response(405, detail, headers={"Allow": allowed})
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = request.app[MAX_BODY]
        return problem_response(413, f"the request body is over the limit of {limit} bytes")
    if exc.status == 404:
        return problem_response(404, f"no endpoint at {request.path}")
    return problem_response(exc.status, exc.reason)


def _route_label(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


# The metrics' children by (method, route, status): `labels()` hashes and checks its
# arguments on every call; a route table has a few dozen combinations.
_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}
MAX_CHILDREN = 4096  # method is bounded by aiohttp (a 405 is "unmatched"), route and status too


def _observe(method: str, route: str, status: int, elapsed: float) -> None:
    key = (method, route, status)
    children = _CHILDREN.get(key)
    if children is None:
        children = (REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route))
        if len(_CHILDREN) < MAX_CHILDREN:
            _CHILDREN[key] = children
    children[0].inc()
    children[1].observe(elapsed)


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as a problem; one access-log line and the metrics per request."""
    start = time.perf_counter()
    ROLE.set(None)
    try:
        response = await handler(request)
    except ProblemError as exc:
        response = exc.response()
    except JobfleetError as exc:
        status = status_of(exc)
        if status is None:
            response = _internal(request, exc)
        else:
            detail = redact_text(str(exc), *request.app[SECRETS])
            response = problem_response(status, detail)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # a redirect (static files)
        response = _http_problem(exc, request)
    except (RedisError, OSError) as exc:
        log.warning("Redis unavailable: %s", redact_text(str(exc), *request.app[SECRETS]))
        response = problem_response(503, "Redis is not reachable right now; try again")
    except Exception as exc:
        response = _internal(request, exc)
    elapsed = time.perf_counter() - start
    # The server's own time, for a browser's network panel and the benchmark (bench/admin.py).
    response.headers["Server-Timing"] = f"app;dur={elapsed * 1000:.3f}"
    # Which process answered: under --processes N the port is shared (admin.processes).
    response.headers[PROCESS_HEADER] = PID
    _observe(request.method, _route_label(request), response.status, elapsed)
    if access_log.isEnabledFor(logging.INFO):
        role = ROLE.get()
        # The path only: a query string could carry anything a caller pasted into it.
        access_log.info(
            "%s %s %d %.1fms role=%s",
            request.method,
            request.path,
            response.status,
            elapsed * 1000,
            role.value if role is not None else "-",
        )
    return response


def _internal(request: web.Request, exc: BaseException) -> web.Response:
    # Formatted and redacted here: logging's own traceback would print the text unfiltered.
    text = "".join(traceback.format_exception(exc))
    secrets = (*request.app[SECRETS], _bearer(request))
    log.error("%s %s failed:\n%s", request.method, request.path, redact_text(text, *secrets))
    return problem_response(500, "the server failed to answer; the error is in its log")


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def _metrics(registry: CollectorRegistry) -> Handler:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    return metrics


def _registry() -> CollectorRegistry:
    """This process's metrics, or under a supervisor (--processes N) every child's summed:
    a scrape reaches one child of the shared port, and must see the pod."""
    directory = os.environ.get(METRICS_DIR_ENV)
    return multiprocess_registry(Path(directory)) if directory else REGISTRY


def _openapi(doc: dict[str, Any]) -> Handler:
    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(doc)

    return openapi


def _index(static: Path) -> Handler:
    async def index(_: web.Request) -> web.StreamResponse:
        page = static / "index.html"
        if not page.is_file():
            return problem_response(404, "this jobfleet was installed without the dashboard")
        return web.FileResponse(page)

    return index


def create_app(
    client: Client,
    tokens: TokenStore,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    static_dir: Path = STATIC_DIR,
    secrets: tuple[str, ...] = (),
) -> web.Application:
    """The admin application over `client`; `secrets` are hidden from every message."""
    # A request line of 32 KiB: a page's URL with the longest filters and cursor (200
    # characters each, up to 12 bytes each percent-encoded) is past aiohttp's 8190 bytes.
    app = web.Application(
        middlewares=[middleware],
        client_max_size=max_body,
        handler_args={"max_line_size": 32768},
    )
    app[CLIENT] = client
    app[TOKENS] = tokens
    app[MAX_BODY] = max_body
    app[SECRETS] = tuple(s for s in secrets if s)
    for route in ROUTES:
        app.router.add_route(route.method, route.full_path, _api_handler(route))
    app.router.add_get(PREFIX + "/openapi.json", _openapi(document()))
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics(_registry()))
    app.router.add_get("/", _index(static_dir))
    if static_dir.is_dir():
        app.router.add_static("/assets", static_dir)
    return app


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context (TLS 1.2 or later) with this certificate chain and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert} and key {key}: {exc}") from None
    return context


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None = None,
    started: Callable[[int], None] | None = None,
    reuse_port: bool = False,
) -> None:
    """Serve `app` until SIGTERM or SIGINT; `started` gets the bound port. `reuse_port`:
    share the port with the other processes of `jobfleet admin --processes N`."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(
        runner, host, port, ssl_context=tls, reuse_address=True, reuse_port=reuse_port or None
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    scheme = "https" if tls else "http"
    log.info("admin API on %s://%s:%d%s", scheme, host, bound, PREFIX)
    if started is not None:
        started(bound)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("admin API stopping")
        await runner.cleanup()
