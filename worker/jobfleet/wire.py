"""Script calls packed once and sent on pooled connections, without redis-py's per-command layers.

Every script call of a queue sends the same head — ``EVALSHA <sha> 14 <the queue's keys>
<prefix>`` — followed by a few arguments that vary. redis-py packs all of them again on each
call and wraps the call in layers that cost more CPU than everything else an enqueue does:
argument encoding, the retry wrapper, observability hooks (callgrind counts of the calling
process in bench/RESULTS.md, "Single enqueue"; bench/wire.py). A `Wire` packs each head
once, sends on connections of the client's own pool, and keeps redis-py's semantics where
they matter: the client's retry policy on connection errors, NOSCRIPT answered by loading
the script, error replies raised as redis-py's exceptions.

Only a plain `redis.asyncio.Redis` (direct or Sentinel-managed pool) has such a pool;
`Wire.usable` says so, and callers fall back to redis-py's own path otherwise (a cluster
client routes each call to the node owning its slot). Never a blocking command: a shared
write would wait behind it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.commands.core import AsyncScript
from redis.exceptions import DataError, NoScriptError, ResponseError

# Larger arguments travel as their own buffer (writelines), not copied into the command.
_COPY_BELOW = 6000
# Connections a Wire keeps between writes (plain pools only); more go back to the pool.
_KEEP = 32

_WIRES: weakref.WeakKeyDictionary[aioredis.Redis, Wire] = weakref.WeakKeyDictionary()


def pack_args(args: Sequence[Any]) -> list[bytes]:
    """RESP bulk strings of `args` (bytes, str, int or float, as redis-py encodes them)."""
    out: list[bytes] = []
    small: list[bytes] = []
    for arg in args:
        if isinstance(arg, bytes):
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
        self._conn = conn
        self._pool = conn.connection_pool
        # Taking a connection from redis-py's pool and giving it back costs about a third of
        # a call (bench/wire.py), so connections of a plain pool are kept here between
        # writes (the pool still owns them: `aclose` disconnects them with the rest). Any
        # other pool is asked each time: a Sentinel pool moves its connections to a new
        # master only there, and a blocking pool counts the connections it lent.
        self._keep = type(self._pool) is ConnectionPool
        self._idle: list[AbstractConnection] = []
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
        reply = await (self._shared(command) if self._busy else self._alone(command))
        if isinstance(reply, NoScriptError):
            await self._conn.script_load(head.script.script)  # a restarted or flushed Redis
            reply = (await self._exchange([command]))[0]
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def _alone(self, command: list[bytes]) -> Any:
        return (await self._exchange([command]))[0]

    def _shared(self, command: list[bytes]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        if not self._next:
            loop.call_soon(self._write_next)
        self._next.append((command, reply))
        return reply

    def _write_next(self) -> None:
        batch, self._next = self._next, []
        task = asyncio.create_task(self._write(batch))
        self._writers.add(task)
        task.add_done_callback(self._writers.discard)

    async def _write(self, batch: list[tuple[list[bytes], asyncio.Future[Any]]]) -> None:
        try:
            replies = await self._exchange([command for command, _ in batch])
        except BaseException as exc:  # every caller learns it (retries were _exchange's)
            for _, reply in batch:
                if not reply.done():
                    reply.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, reply), value in zip(batch, replies, strict=True):
            if not reply.done():  # a caller cancelled meanwhile: its reply is dropped
                reply.set_result(value)

    async def pipeline(self, calls: Sequence[tuple[ScriptHead, Sequence[Any]]]) -> list[Any]:
        """Many script calls in one write; each reply in order, an error reply as its
        exception object (not raised). A script Redis does not have is loaded and the calls
        that met NOSCRIPT are sent again, once."""
        commands = [b"".join(head.command(args)) for head, args in calls]
        replies = await self._exchange(commands)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            for script in {calls[i][0].script.sha: calls[i][0].script for i in missing}.values():
                await self._conn.script_load(script.script)
            again = await self._exchange([commands[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    async def _exchange(self, commands: Sequence[list[bytes] | bytes]) -> list[Any]:
        """Write `commands` at once and read a reply for each (error replies as objects)."""
        self._busy += 1
        try:
            conn: AbstractConnection = (
                self._idle.pop() if self._idle else await self._pool.get_connection()  # type: ignore[no-untyped-call]
            )
            try:
                return await conn.retry.call_with_retry(
                    lambda: self._send(conn, commands),
                    lambda _error: conn.disconnect(),
                )
            finally:
                if self._keep and len(self._idle) < _KEEP:
                    self._idle.append(conn)
                else:
                    await self._pool.release(conn)
        finally:
            self._busy -= 1

    @staticmethod
    async def _send(conn: AbstractConnection, commands: Sequence[list[bytes] | bytes]) -> list[Any]:
        buffers: list[bytes] = []
        for command in commands:
            if isinstance(command, bytes):
                buffers.append(command)
            else:
                buffers.extend(command)
        await conn.send_packed_command(buffers)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except ResponseError as exc:  # the reply was read whole: the connection is fine
                replies.append(exc)
        return replies
