"""Child processes that run sync handlers and can be killed at a job's timeout."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from dataclasses import dataclass, field, fields
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from .context import JobContext
from .errors import PermanentError, RetryLater
from .registry import default_registry, import_handlers

log = logging.getLogger("jobfleet.worker")
# A fresh interpreter per child: fork would copy the parent's event loop, locks and threads
# mid-flight. Children live as long as the worker, so the start-up cost is paid once each.
_MP = multiprocessing.get_context("spawn")
_PR_SET_PDEATHSIG = 1
MAX_TRACEBACK = 16_384


# What a child needs to rebuild one job's context: the context's own fields, less the sink
# and loop, which belong to the process that made them (and do not pickle).
ChildJob = dict[str, Any]


def child_job(ctx: JobContext) -> ChildJob:
    return {f.name: getattr(ctx, f.name) for f in fields(ctx) if not f.name.startswith("_")}


@dataclass(frozen=True, slots=True)
class Raised:
    """An exception raised in a child, as it travels back: what failing the job needs."""

    type_name: str
    message: str
    traceback: str
    kind: str = "error"  # "permanent" or "retry" keep their meaning for the worker
    delay: float | None = None

    @classmethod
    def of(cls, exc: BaseException) -> Raised:
        kind = "error"
        if isinstance(exc, PermanentError):
            kind = "permanent"
        elif isinstance(exc, RetryLater):
            kind = "retry"
        tb = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK:]
        delay = exc.delay if isinstance(exc, RetryLater) else None
        return cls(type(exc).__qualname__, str(exc), tb, kind, delay)

    def rebuild(self) -> ChildError:
        if self.kind == "permanent":
            return ChildPermanentError(self)
        if self.kind == "retry":
            exc = ChildRetryLater(self)
            exc.delay = self.delay
            return exc
        return ChildError(self)


class ChildError(Exception):
    """An exception a handler raised in a child process: its type name and traceback."""

    def __init__(self, raised: Raised) -> None:
        super().__init__(raised.message)
        self.type_name = raised.type_name
        self.traceback_text = raised.traceback


class ChildPermanentError(ChildError, PermanentError):
    pass


class ChildRetryLater(ChildError, RetryLater):
    pass


class Killed(TimeoutError):
    """A call ran past its timeout; its child was killed (SIGKILL) and reaped."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"killed after {timeout:g} s")
        self.timeout = timeout


@dataclass(eq=False, slots=True)
class _Child:
    process: BaseProcess
    conn: Connection  # the parent's end of the pipe


@dataclass(eq=False)
class ProcessPool:
    """Up to `size` child processes, started when needed and reused, each running one sync
    handler call at a time. Each child imports `modules` and finds handlers in the default
    registry (`@jobfleet.handler`)."""

    modules: list[str]
    size: int
    _idle: list[_Child] = field(default_factory=list)
    _children: set[_Child] = field(default_factory=set)
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.size)

    async def run(
        self, handler: str, contexts: list[JobContext], *, batch: bool, timeout: float | None
    ) -> Any:
        """Call `handler` on the contexts (a list for a batch handler) in a child; returns its
        result, raises a ChildError for what it raised, or Killed at the timeout, which counts
        from the moment the child has the job (not the wait for a free or new child)."""
        async with self._slots:
            child = await self._take()
            try:
                kind, value = await self._call(child, handler, contexts, batch, timeout)
            except EOFError:
                code = await self._kill(child)
                raise ChildError(
                    Raised("ChildExited", f"the handler's process exited with code {code}", "")
                ) from None
            except BaseException:  # a timeout, a cancel (stop, lost lease), a broken pipe
                await self._kill(child)  # before the job is failed or handed back
                raise
            self._idle.append(child)
        if kind == "raised":
            raise value.rebuild()
        if batch and isinstance(value, list):
            return [v.rebuild() if isinstance(v, Raised) else v for v in value]
        return value

    async def close(self) -> None:
        """Kill every child (at the worker's exit, when no call runs any more)."""
        for child in list(self._children):
            await self._kill(child)

    async def _take(self) -> _Child:
        while self._idle:
            child = self._idle.pop()
            if child.process.is_alive():
                return child
            await self._kill(child)  # died while idle (OOM killer, a stray signal)
        return await self._start()

    async def _start(self) -> _Child:
        ours, theirs = _MP.Pipe(duplex=True)
        process = _MP.Process(
            target=_child_main,
            args=(theirs, self.modules, os.getpid()),
            name="jobfleet-handler",
        )
        process.start()
        theirs.close()
        child = _Child(process, ours)
        self._children.add(child)
        try:
            kind, detail = await self._recv(child)
        except BaseException:
            await self._kill(child)
            raise
        if kind != "ready":
            await self._kill(child)
            log.error("a child process could not import the handlers: %s", detail.message)
            raise detail.rebuild()
        return child

    async def _call(
        self,
        child: _Child,
        handler: str,
        contexts: list[JobContext],
        batch: bool,
        timeout: float | None,
    ) -> tuple[str, Any]:
        by_id = {ctx.id: ctx for ctx in contexts}
        child.conn.send(("run", handler, batch, [child_job(ctx) for ctx in contexts]))
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                while True:
                    message = await self._recv(child)
                    if message[0] != "progress":
                        return message  # type: ignore[no-any-return]
                    _, job_id, percent, text, stage = message
                    error = None
                    try:  # the parent's context: validated and fenced by the lease token
                        await by_id[job_id].aprogress(percent, text, stage)
                    except Exception as exc:
                        error = f"{type(exc).__name__}: {exc}"
                    child.conn.send(("ack", error))
        except TimeoutError:
            if deadline.expired() and timeout is not None:
                raise Killed(timeout) from None
            raise

    @staticmethod
    async def _recv(child: _Child) -> Any:
        """The child's next message, without blocking the loop; EOFError once it died."""
        while not child.conn.poll():
            await _readable(child.conn.fileno())
        return child.conn.recv()

    async def _kill(self, child: _Child) -> int | None:
        """SIGKILL a child and reap it: after this it runs no more handler code."""
        self._children.discard(child)
        try:
            child.process.kill()
            while child.process.exitcode is None:  # polls waitpid, reaping it
                # The sentinel turns readable at its exit (unless a grandchild holds it).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.1):
                        await _readable(child.process.sentinel)
            return child.process.exitcode
        finally:
            child.conn.close()


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    loop.add_reader(fd, _resolve, readable)
    try:
        await readable
    finally:
        loop.remove_reader(fd)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# -- in the child -------------------------------------------------------------------------


def _child_main(conn: Connection, modules: list[str], parent: int) -> None:
    """A child's life: import the handlers, then run one call at a time until the pipe
    closes (the worker exited)."""
    # Ctrl-C reaches the whole process group: the worker drains, and kills its children.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with(parent)
    try:
        import_handlers(modules)
    except BaseException as exc:
        conn.send(("failed", Raised.of(exc)))
        return
    # JobContext.progress in a sync handler hops onto "the worker's loop" and waits: here a
    # loop of the child's own, whose sink asks the parent over the pipe.
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="jobfleet-progress", daemon=True).start()
    conn.send(("ready", None))
    while True:
        try:
            _, name, batch, jobs = conn.recv()
        except EOFError:
            return
        reply = _call(conn, loop, name, batch, jobs)
        try:
            conn.send(reply)
        except Exception as exc:  # pickling failed before anything was written
            message = f"handler returned a result that is not JSON: {exc}"
            conn.send(("raised", Raised(type(exc).__qualname__, message, "", "permanent")))


def _call(
    conn: Connection,
    loop: asyncio.AbstractEventLoop,
    name: str,
    batch: bool,
    jobs: list[ChildJob],
) -> tuple[str, Any]:
    handler = default_registry.get(name)
    if handler is None or handler.is_async:
        message = f"no sync handler {name!r} in the modules the child imported"
        return "raised", Raised("UnknownHandler", message, "")

    async def sink(job_id: str, token: str, percent: float | None, text: str, stage: str) -> bool:
        conn.send(("progress", job_id, percent, text, stage))
        _, error = conn.recv()
        if error:
            raise RuntimeError(f"progress not recorded: {error}")
        return True

    ctxs = [JobContext(**job, _sink=sink, _loop=loop) for job in jobs]
    try:
        result = handler.fn(ctxs if batch else ctxs[0])
    except BaseException as exc:  # SystemExit too: it fails the job, not the child
        return "raised", Raised.of(exc)
    if batch and isinstance(result, list | tuple):
        result = [Raised.of(r) if isinstance(r, BaseException) else r for r in result]
    return "result", result


def pid_alive(pid: int) -> bool:
    """Whether a process has this pid (a zombie counts; so does another user's process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with(parent: int, sig: int = signal.SIGKILL) -> None:
    """Have Linux send `sig` to this child when its parent dies, even by SIGKILL: an orphan
    must not run on beside the next attempt of its job."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)
