"""Handler registration: `@jobfleet.handler("send-email")` on a sync or async function."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from .bounds import DAY, AttemptTimeout, between, check
from .context import JobContext
from .errors import ConfigError
from .hooks import FailureHook, Hook, HookWhen

HandlerFn = Callable[[JobContext], Any]
BatchHandlerFn = Callable[[list[JobContext]], Any]
F = TypeVar("F", bound=HandlerFn | BatchHandlerFn)
H = TypeVar("H", bound=FailureHook)
BatchSize = Annotated[int, between(1, 10_000)]
BatchWait = Annotated[float, between(0, DAY, above=True)]


@dataclass(frozen=True, slots=True)
class Handler:
    """A registered handler and how to call it."""

    name: str
    fn: Callable[[Any], Any]
    is_async: bool
    timeout: float | None = None
    batch_size: int | None = None  # set for batch handlers, which take a list of jobs
    max_wait: float = 1.0


class Registry:
    """Handlers by job name. Workers look jobs up here; unknown names are dead-lettered."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self.failure_hooks: list[Hook] = []

    def on_failure(self, fn: H | None = None, *, when: HookWhen = "dead") -> Any:
        """Register `fn(job: FailedJob, exc)` to be called when a job is dead-lettered
        (`when="every"`: after every failed attempt too). Usable as `@on_failure` or
        `@on_failure(when="every")`; see jobfleet.hooks for how calls are isolated."""
        if when not in ("dead", "every"):
            raise ConfigError(f"on_failure: when must be 'dead' or 'every', not {when!r}")

        def register(f: H) -> H:
            self.failure_hooks.append(Hook(f, when))
            return f

        return register if fn is None else register(fn)

    def handler(
        self,
        name: str,
        *,
        timeout: float | None = None,
        batch_size: int | None = None,
        max_wait: float = 1.0,
    ) -> Callable[[F], F]:
        """Register the decorated function as the handler of jobs called `name`.

        The function receives a `JobContext` (`job.payload`, `job.id`, `job.attempt`,
        `job.progress(...)`) and returns a JSON-serializable result. Async functions run on
        the worker's event loop; plain functions run in its thread pool, or in child
        processes with the queue's `isolation: "process"` (killed at their timeout).

        With `batch_size`, it receives a list of up to that many contexts instead — fewer only
        once the oldest has waited `max_wait` seconds — and returns a list with one result per
        job, in order. An exception instance in that list fails its job alone (retried or
        dead-lettered on its own); raising fails the whole batch. Keep the worker's
        concurrency at least `batch_size`, or batches fill only by `max_wait`.
        """
        if not name or not isinstance(name, str):
            raise ConfigError("a handler needs a non-empty job name")
        where = f"handler {name!r}: "
        if timeout is not None:
            timeout = check(where + "timeout", AttemptTimeout, timeout)
        if batch_size is not None:
            batch_size = check(where + "batch_size", BatchSize, batch_size)
        max_wait = check(where + "max_wait", BatchWait, max_wait)

        def register(fn: F) -> F:
            existing = self._handlers.get(name)
            if existing is not None and existing.fn is not fn:
                where = f"{existing.fn.__module__}.{existing.fn.__qualname__}"
                raise ConfigError(f"job name {name!r} already has a handler: {where}")
            self._handlers[name] = Handler(
                name=name,
                fn=fn,
                is_async=inspect.iscoroutinefunction(fn),
                timeout=timeout,
                batch_size=batch_size,
                max_wait=max_wait,
            )
            return fn

        return register

    def add(self, name: str, fn: Callable[[JobContext], Awaitable[Any]] | HandlerFn) -> None:
        self.handler(name)(fn)

    def get(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)


default_registry = Registry()
handler = default_registry.handler
on_failure = default_registry.on_failure


def import_handlers(modules: list[str]) -> None:
    """Import handler modules so their decorators run; a clear error for a bad name."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"cannot import handler module {module!r}: {exc}") from None
