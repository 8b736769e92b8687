"""Script calls packed once and pipelined on one connection, without redis-py's per-command layers.

Every script call of a queue sends the same head — ``EVALSHA <sha> <n> <the queue's keys>
<prefix>`` — followed by a few arguments that vary. redis-py packs all of them again on each
call and wraps the call in layers that cost more CPU than everything else an enqueue does:
argument encoding, the pool, the retry wrapper, observability hooks, a stream reader and its
chain of coroutines (callgrind counts in bench/RESULTS.md, "Single enqueue"; bench/wire.py).
A `Wire` packs each head once and, on a plain pool, sends every call on one connection the
pool lends for good (a `_Line`: hiredis reads its replies as they arrive, so the calls of all
tasks are pipelined on it; calls made while others wait share one write). It keeps redis-py's
semantics where they matter: the client's retry policy on connection errors, NOSCRIPT
answered by loading the script, error replies as redis-py's exceptions.

Only a `redis.asyncio.Redis` with a pool (direct or Sentinel-managed) is served; `Wire.usable`
says so, and callers fall back to redis-py's own path otherwise (a cluster client routes each
call to the node owning its slot). A Sentinel or blocking pool lends a connection per write.
Never a blocking command: the calls behind it on the line would wait for it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Sequence
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis._parsers.base import BaseParser
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, InvalidResponse, NoScriptError, ResponseError

# Larger arguments travel as their own buffer (writelines), not copied into the command.
_COPY_BELOW = 6000

# A shared write goes out once this many calls joined it, not only at the end of the loop's
# turn: Redis then runs the first calls while this process makes the next ones. Waiting for
# the whole turn made the two take turns (100 concurrent callers: ~7,700 jobs/s where the
# caller's CPU allowed ~11,000; bench/RESULTS.md "Single enqueue").
_SHARE_MAX = 16

_WIRES: weakref.WeakKeyDictionary[aioredis.Redis, Wire] = weakref.WeakKeyDictionary()


def pack_args(args: Sequence[Any]) -> list[bytes]:
    """RESP bulk strings of `args` (bytes, str, int or float, as redis-py encodes them)."""
    out: list[bytes] = []
    small: list[bytes] = []
    for arg in args:
        kind = type(arg)  # the exact types first: one comparison for most arguments
        if kind is str:
            b = arg.encode()
        elif kind is bytes:
            b = arg
        elif kind is int:
            b = b"%d" % arg
        elif isinstance(arg, bytes):
            b = arg
        elif isinstance(arg, str):
            b = arg.encode()
        elif isinstance(arg, int) and not isinstance(arg, bool):
            b = b"%d" % arg
        elif isinstance(arg, float):
            b = repr(arg).encode()
        else:
            raise DataError(f"invalid script argument of type {type(arg).__name__}")
        if len(b) < _COPY_BELOW:
            small.append(b"$%d\r\n%b\r\n" % (len(b), b))
        else:
            small.append(b"$%d\r\n" % len(b))
            out.append(b"".join(small))
            out.append(b)
            small = [b"\r\n"]
    out.append(b"".join(small))
    return out


def _buffers(commands: Sequence[list[bytes] | bytes]) -> list[bytes]:
    """The buffers of many packed commands, in order, for one write."""
    out: list[bytes] = []
    for command in commands:
        if isinstance(command, bytes):
            out.append(command)
        else:
            out.extend(command)
    return out


class ScriptHead:
    """One script's call up to its varying arguments: ``EVALSHA sha n keys... fixed...``."""

    __slots__ = ("count", "packed", "script")

    def __init__(self, script: AsyncScript, keys: Sequence[bytes], fixed: Sequence[Any]) -> None:
        self.script = script
        self.count = 3 + len(keys) + len(fixed)
        self.packed = b"".join(pack_args(["EVALSHA", script.sha, len(keys), *keys, *fixed]))

    def command(self, args: Sequence[Any]) -> list[bytes]:
        """The whole command with `args` after the head, as buffers to write."""
        tail = pack_args(args)
        tail[0] = b"*%d\r\n%b%b" % (self.count + len(args), self.packed, tail[0])
        return tail


class Wire:
    """Pre-packed script calls to the server of one `redis.asyncio.Redis` client."""

    def __init__(self, conn: aioredis.Redis) -> None:
        # Weak: _WIRES keys on the client, and a value holding its key would keep both alive.
        self._client = weakref.ref(conn)
        self._pool = conn.connection_pool
        # A plain pool lends one connection for good, which becomes a `_Line`. Any other
        # pool is asked for a connection each time: a Sentinel pool moves its connections to
        # a new master only there, and a blocking pool counts the connections it lent.
        # RESP2 only: RESP3 push messages would arrive among the replies.
        protocol = str(self._pool.connection_kwargs.get("protocol") or 2)
        self._lines = type(self._pool) is ConnectionPool and protocol == "2"
        self._line: _Line | None = None
        self._opening = asyncio.Lock()
        self._busy = 0  # exchanges waiting for Redis right now
        self._next: list[tuple[list[bytes], asyncio.Future[Any]]] = []  # the next shared write
        self._writers: set[asyncio.Task[None]] = set()

    @staticmethod
    def usable(conn: object) -> bool:
        """Whether `conn` has a connection pool a Wire can borrow from."""
        return (
            isinstance(conn, aioredis.Redis)
            and not conn.single_connection_client
            and hasattr(conn, "connection_pool")
        )

    @staticmethod
    def of(conn: aioredis.Redis) -> Wire:
        """The one Wire of `conn` (shared by every queue's engine on that client)."""
        wire = _WIRES.get(conn)
        if wire is None:
            wire = _WIRES[conn] = Wire(conn)
        return wire

    async def call(self, head: ScriptHead, args: Sequence[Any]) -> Any:
        """One script call; its reply, or redis-py's exception for an error reply.

        A call made while another waits for Redis joins the calls made in the same turn of
        the event loop, and they travel in one write (as ioredis does): 100 callers cost Redis
        and this process a few system calls, not 100 each. A call alone goes at once.
        """
        command = head.command(args)
        if self._busy:
            reply = await self._shared(command)
        else:  # a call alone goes at once (awaited here: a coroutine less per call)
            reply = (await self._exchange([command]))[0]
        if isinstance(reply, NoScriptError):
            await self._redis().script_load(head.script.script)  # a restarted or flushed Redis
            reply = (await self._exchange([command]))[0]
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def _shared(self, command: list[bytes]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        if not self._next:
            loop.call_soon(self._write_next)
        self._next.append((command, reply))
        if len(self._next) >= _SHARE_MAX:
            self._write_next()  # the call_soon above then writes what joins after this
        return reply

    def _write_next(self) -> None:
        batch, self._next = self._next, []
        if not batch:
            return
        commands = [command for command, _ in batch]
        # On an open line the write happens now, not when the task below first runs: that is
        # after every other task woken in this turn, which would hold the write back again.
        started = self._start(commands)
        self._busy += 1  # from now: calls made meanwhile join the next write
        task = asyncio.create_task(self._write(batch, commands, started))
        self._writers.add(task)
        task.add_done_callback(self._writers.discard)

    async def _write(
        self,
        batch: list[tuple[list[bytes], asyncio.Future[Any]]],
        commands: list[list[bytes]],
        started: _Started | None,
    ) -> None:
        try:
            replies = await self._exchange(commands, started)
        except BaseException as exc:  # every caller learns it (retries were _exchange's)
            for _, reply in batch:
                if not reply.done():
                    reply.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._busy -= 1
        for (_, reply), value in zip(batch, replies, strict=True):
            if not reply.done():  # a caller cancelled meanwhile: its reply is dropped
                reply.set_result(value)

    def _start(self, commands: Sequence[list[bytes] | bytes]) -> _Started | None:
        """Write `commands` on the open line at once: the line and the futures of their
        replies; None when no line is open and healthy (the exchange then opens one)."""
        line = self._line
        if not self._lines or line is None or line.lost is not None:
            return None
        try:
            return line, line.send(commands)
        except RedisConnectionError:
            return None

    async def pipeline(self, calls: Sequence[tuple[ScriptHead, Sequence[Any]]]) -> list[Any]:
        """Many script calls in one write; each reply in order, an error reply as its
        exception object (not raised). A script Redis does not have is loaded and the calls
        that met NOSCRIPT are sent again, once."""
        commands = [head.command(args) for head, args in calls]
        replies = await self._exchange(commands)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            for script in {calls[i][0].script.sha: calls[i][0].script for i in missing}.values():
                await self._redis().script_load(script.script)
            again = await self._exchange([commands[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    async def _exchange(
        self, commands: Sequence[list[bytes] | bytes], started: _Started | None = None
    ) -> list[Any]:
        """Write `commands` at once and read a reply for each (error replies as objects).
        `started`: they were already written on that line (`_start`), as the first attempt."""
        self._busy += 1
        try:
            if self._lines:
                return await self._on_line(commands, started)
            conn: AbstractConnection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
            batch = _Batch(commands)
            try:
                return await conn.retry.call_with_retry(
                    lambda: self._send(conn, batch),
                    lambda _error: conn.disconnect(),
                )
            finally:
                await self._pool.release(conn)
        finally:
            self._busy -= 1

    def _redis(self) -> aioredis.Redis:
        client = self._client()
        if client is None:  # only a call racing the client's collection could see this
            raise RedisConnectionError("the Redis client of this call is gone")
        return client

    async def _on_line(
        self, commands: Sequence[list[bytes] | bytes], started: _Started | None = None
    ) -> list[Any]:
        used: list[_Line] = []  # the line an attempt wrote on: the one to drop if it failed
        first = [started] if started is not None else []
        batch = None if len(commands) == 1 else _Batch(commands)  # one: nothing to keep

        async def attempt() -> list[Any]:
            if first:  # the first attempt was written already; its replies are awaited here
                line, replies = first.pop()
            else:
                line = await self._healthy_line()
                used[:] = [line]
                replies = line.send(commands if batch is None else batch.pending())
            used[:] = [line]
            if batch is None:  # one call (most): no loop to run
                reply = await replies[0]
                if isinstance(reply, RedisConnectionError):
                    raise reply  # LOADING: it ran nothing (_Batch.settle says more)
                return [reply]
            outcome: list[Any] = []
            for reply in replies:
                try:
                    outcome.append(await reply)
                except RedisConnectionError as exc:  # the line was lost: the rest had no reply
                    outcome.append(exc)
            return batch.settle(outcome)

        async def failed(_error: Exception) -> None:
            if used:
                await self._close_line(used[0])

        retry = self._redis().get_retry()
        if retry is None:
            return await attempt()
        return await retry.call_with_retry(attempt, failed)

    async def _healthy_line(self) -> _Line:
        line = self._line
        if line is None or line.lost is not None:
            return await self._open_line()
        return line

    async def _open_line(self) -> _Line:
        async with self._opening:  # one line at a time, however many callers find none
            line = self._line
            if line is None or line.lost is not None:
                if line is not None:
                    await self._close_line(line)
                conn: AbstractConnection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
                try:
                    line = self._line = _Line(conn)
                except BaseException:
                    await self._pool.release(conn)
                    raise
            return line

    async def _close_line(self, line: _Line) -> None:
        """Drop `line` (once, however many of its callers failed) and give its connection
        back: a caller must never drop the line another caller's retry just opened."""
        if self._line is line:
            self._line = None
        if not line.closed:
            line.closed = True
            await line.conn.disconnect(nowait=True)
            await self._pool.release(line.conn)

    @staticmethod
    async def _send(conn: AbstractConnection, batch: _Batch) -> list[Any]:
        commands = batch.pending()
        await conn.send_packed_command(_buffers(commands))
        outcome: list[Any] = []
        for _ in commands:
            try:
                outcome.append(await conn.read_response())
            except ResponseError as exc:  # the reply was read whole: the connection is fine
                outcome.append(exc)
            except RedisConnectionError as exc:  # redis-py dropped the connection: no more replies
                outcome += [exc] * (len(commands) - len(outcome))
                break
        return batch.settle(outcome)


class _Batch:
    """The commands of one exchange and the replies they have had, across its attempts.

    A retry sends again only the commands without a reply: one Redis replied to has run, and
    sending it again would run it twice (a second job for an enqueue without an id). One that
    Redis refused while loading its data (LOADING) has not run. One whose connection was lost
    before its reply may have, and goes again: at least once, as everywhere.
    """

    __slots__ = ("_commands", "_replies", "_todo")

    def __init__(self, commands: Sequence[list[bytes] | bytes]) -> None:
        self._commands = commands
        self._replies: list[Any] = []  # filled once an attempt failed
        self._todo: list[int] | None = None  # None: all of them (the first attempt)

    def pending(self) -> Sequence[list[bytes] | bytes]:
        """The commands the next attempt writes."""
        if self._todo is None:
            return self._commands
        return [self._commands[i] for i in self._todo]

    def settle(self, outcome: list[Any]) -> list[Any]:
        """Take an attempt's outcome, one per pending command (a reply, or the connection
        error that stands for it); every reply in order, or raise for the retry to come.
        LOADING arrives as a reply (hiredis hands error replies over as values) and redis-py
        raises it; so must this, or a caller would take the error for its script's reply."""
        todo: Sequence[int] | None = self._todo
        if todo is None:
            for value in outcome:
                if isinstance(value, RedisConnectionError):
                    break
            else:
                return outcome  # the first attempt, every command replied to: nearly always
            todo = range(len(outcome))
            self._replies = [None] * len(outcome)
        again: list[int] = []
        error: RedisConnectionError | None = None
        for i, value in zip(todo, outcome, strict=True):
            if isinstance(value, RedisConnectionError):
                error = error or value
                again.append(i)
            else:
                self._replies[i] = value
        if error is not None:
            self._todo = again
            raise error
        return self._replies


_Started = tuple["_Line", list[asyncio.Future[Any]]]  # commands written, their replies to come


class _Line(asyncio.Protocol):
    """A connection lent by the pool for good, read by hiredis as its replies arrive, so that
    the calls of every task are pipelined on it: a call costs a write and a future, not
    redis-py's stream reader and its chain of coroutines (about half the CPU of a call:
    bench/RESULTS.md, "Single enqueue"). redis-py connected it (AUTH, SELECT, TLS); its
    transport then talks to this protocol, and redis-py's protocol learns only that it closed.
    """

    def __init__(self, conn: AbstractConnection) -> None:
        self.conn = conn
        self.lost: Exception | None = None
        self.closed = False  # its connection given back to the pool
        encoder = conn.encoder
        text = {"encoding": encoder.encoding, "errors": encoder.encoding_errors}
        # Error replies become redis-py's own exception classes (NoScriptError ...).
        self._reader = hiredis.Reader(
            protocolError=InvalidResponse,
            replyError=BaseParser.parse_error,
            **(text if encoder.decode_responses else {}),
        )
        self._waiting: deque[asyncio.Future[Any]] = deque()
        writer = conn._writer  # redis-py's stream; private, and the only way to its transport
        if writer is None:
            raise RedisConnectionError("the connection the pool lent is not connected")
        self._transport: asyncio.Transport = writer.transport  # type: ignore[assignment]
        self._streams = self._transport.get_protocol()
        self._transport.set_protocol(self)

    def send(self, commands: Sequence[list[bytes] | bytes]) -> list[asyncio.Future[Any]]:
        if self.lost is not None or self._transport.is_closing():
            raise RedisConnectionError("the connection to Redis was lost")
        loop = asyncio.get_running_loop()
        replies = [loop.create_future() for _ in commands]
        self._transport.writelines(_buffers(commands))
        self._waiting.extend(replies)
        return replies

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            waiting = self._waiting.popleft()
            if not waiting.done():  # a caller cancelled meanwhile: its reply is dropped
                waiting.set_result(reply)

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = RedisConnectionError(
            "Redis closed the connection" if exc is None else f"connection to Redis lost: {exc}"
        )
        while self._waiting:
            waiting = self._waiting.popleft()
            if not waiting.done():
                waiting.set_exception(self.lost)
        # redis-py's disconnect waits for its own protocol to hear of the close.
        self._streams.connection_lost(exc)
