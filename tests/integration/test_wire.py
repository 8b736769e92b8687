"""Pre-packed script calls (jobfleet.wire) against a real redis-server: what redis-py's own
path guaranteed still holds — NOSCRIPT, lost connections, cancellation, error replies."""

from __future__ import annotations

import asyncio

import jobfleet
import pytest
import redis
import redis.asyncio as aioredis
from jobfleet import wire as wire_module
from jobfleet.engine import ENQUEUE_CHUNK
from jobfleet.wire import ScriptHead, Wire
from redis.exceptions import ResponseError
from redis_server import RedisServer
from waiting import until

pytestmark = pytest.mark.asyncio


def waiting(redis_url: str, queue: str = "q") -> int:
    conn = redis.Redis.from_url(redis_url)
    try:
        return int(conn.zcard(f"jf:{{{queue}}}:ready"))
    finally:
        conn.close()


async def test_the_client_uses_the_wire(client: jobfleet.Client) -> None:
    assert client.engine()._wire is Wire.of(client.conn)
    assert client.engine("other")._wire is client.engine()._wire  # one per connection


async def test_a_flushed_script_cache_is_reloaded_and_the_job_written_once(
    client: jobfleet.Client, redis_url: str
) -> None:
    await client.enqueue("a")
    redis.Redis.from_url(redis_url).script_flush()
    await client.enqueue("b")
    redis.Redis.from_url(redis_url).script_flush()
    ids = await client.enqueue_many([{"name": "c"}] * (2 * ENQUEUE_CHUNK + 1))  # a pipeline
    assert len(set(ids)) == 2 * ENQUEUE_CHUNK + 1
    assert waiting(redis_url) == 2 * ENQUEUE_CHUNK + 3


async def test_a_killed_connection_is_replaced_and_the_job_written_once(
    client: jobfleet.Client, redis_url: str
) -> None:
    await client.enqueue("a")
    admin = redis.Redis.from_url(redis_url)
    assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
    job_id = await client.enqueue("b")
    assert (await client.get(job_id)).name == "b"
    assert waiting(redis_url) == 2


async def test_a_cancelled_call_leaves_no_reply_behind(
    client: jobfleet.Client, redis_url: str
) -> None:
    eng = client.engine()
    wire = eng._wire
    assert wire is not None
    # Busy for a second of Redis time (microseconds: a whole-second clock could end at once).
    slow = client.conn.register_script(
        "local function us() local t = redis.call('TIME') return t[1] * 1000000 + t[2] end "
        "local t0 = us() while us() - t0 < 1000000 do end return 'slow'"
    )
    head = ScriptHead(slow, [], [])
    task = asyncio.create_task(wire.call(head, []))
    await asyncio.sleep(0.2)  # sent: Redis is running it
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The connection that waited for 'slow' is not reused with that reply still coming.
    job_id = await client.enqueue("after")
    assert isinstance(job_id, str) and len(job_id) == 32
    assert (await client.get(job_id)).name == "after"


async def test_error_replies_are_raised_and_pipelines_keep_them_in_place(
    client: jobfleet.Client,
) -> None:
    wire = client.engine()._wire
    assert wire is not None
    bad = ScriptHead(client.conn.register_script("return redis.error_reply('nope')"), [], [])
    good = ScriptHead(client.conn.register_script("return ARGV[1]"), [], [])
    with pytest.raises(ResponseError, match="nope"):
        await wire.call(bad, [])
    replies = await wire.pipeline([(good, ["1"]), (bad, []), (good, ["3"])])
    assert replies[0] == "1" and replies[2] == "3"
    assert isinstance(replies[1], ResponseError) and "nope" in str(replies[1])
    assert await wire.call(good, ["still fine"]) == "still fine"


async def test_stats_of_many_queues_go_in_one_write(client: jobfleet.Client) -> None:
    for q in range(5):
        await client.enqueue("x", queue=f"q{q}")
    before = client.round_trips
    stats = await client.queues()
    assert [s.queue for s in stats] == [f"q{q}" for q in range(5)]
    assert all(s.waiting == 1 for s in stats)
    assert client.round_trips - before == 5  # one script call per queue, in one pipeline


def reads_processed(redis_url: str) -> int:
    conn = redis.Redis.from_url(redis_url)
    try:
        return int(conn.info("stats")["total_reads_processed"])
    finally:
        conn.close()


async def test_concurrent_calls_share_writes(client: jobfleet.Client, redis_url: str) -> None:
    await client.enqueue("warm")
    before = reads_processed(redis_url)
    ids = await asyncio.gather(*(client.enqueue("x", {"i": i}) for i in range(100)))
    reads = reads_processed(redis_url) - before
    assert len(set(ids)) == 100 and waiting(redis_url) == 101
    assert reads <= 20, f"Redis read {reads} times for 100 concurrent calls"
    assert {(await client.get(i)).payload["i"] for i in ids} == set(range(100))


async def test_each_caller_of_a_shared_write_gets_its_own_reply(client: jobfleet.Client) -> None:
    wire = client.engine()._wire
    assert wire is not None
    echo = ScriptHead(client.conn.register_script("return ARGV[1]"), [], [])
    bad = ScriptHead(
        client.conn.register_script("return redis.error_reply('no ' .. ARGV[1])"), [], []
    )

    async def one(i: int) -> str:
        if i % 3 == 0:
            with pytest.raises(ResponseError, match=f"no {i}$"):
                await wire.call(bad, [str(i)])
            return f"error {i}"
        return str(await wire.call(echo, [str(i)]))

    got = await asyncio.gather(*(one(i) for i in range(60)))
    assert got == [f"error {i}" if i % 3 == 0 else str(i) for i in range(60)]


async def test_a_caller_cancelled_in_a_shared_write_leaves_the_others_whole(
    client: jobfleet.Client,
) -> None:
    wire = client.engine()._wire
    assert wire is not None
    echo = ScriptHead(client.conn.register_script("return ARGV[1]"), [], [])
    first = asyncio.create_task(wire.call(echo, ["first"]))  # goes alone
    await asyncio.sleep(0)
    shared = [asyncio.create_task(wire.call(echo, [str(i)])) for i in range(10)]
    await asyncio.sleep(0)
    shared[4].cancel()
    done = await asyncio.gather(first, *shared, return_exceptions=True)
    assert done[0] == "first"
    assert isinstance(done[5], asyncio.CancelledError)
    assert [d for i, d in enumerate(done[1:]) if i != 4] == [str(i) for i in range(10) if i != 4]
    assert await wire.call(echo, ["after"]) == "after"


async def test_a_blocking_pool_gets_its_connection_back_after_each_write(redis_url: str) -> None:
    # A BlockingConnectionPool of one connection: a Wire that kept it would starve the
    # client's own commands (and itself) for ever.
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_url, max_connections=1, timeout=30, decode_responses=True
    )
    conn = aioredis.Redis(connection_pool=pool)
    async with jobfleet.Client(redis_url, queue="q", connection=conn) as client:
        ids = await asyncio.gather(*(client.enqueue("x", {"i": i}) for i in range(50)))
        assert await conn.ping()  # redis-py's own path still gets the connection
        assert len(set(ids)) == 50 and waiting(redis_url) == 50
        assert [s.waiting for s in await client.queues()] == [50]


async def test_concurrent_calls_on_a_killed_line_are_all_retried(
    client: jobfleet.Client, redis_url: str
) -> None:
    await client.enqueue("first")  # the line is open
    for _ in range(3):
        admin = redis.Redis.from_url(redis_url)
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        admin.close()
        ids = await asyncio.gather(*(client.enqueue("x", {"i": i}) for i in range(50)))
        assert len(set(ids)) == 50
    assert waiting(redis_url) == 151


async def test_a_client_that_is_gone_leaves_no_wire_behind(redis_url: str) -> None:
    import gc
    import weakref

    async with jobfleet.Client(redis_url, queue="q") as c:
        await c.enqueue("x")
        conn = c.conn
    # This client's own Wire, watched weakly: counting _WIRES would also count the other
    # tests' clients that the collection below happens to free.
    gone = weakref.ref(wire_module._WIRES[conn])
    del c, conn
    gc.collect()
    assert gone() is None


async def test_a_shared_write_goes_out_when_full_not_at_the_end_of_the_turn(
    client: jobfleet.Client,
) -> None:
    # Held back to the end of the loop's turn, the write of 100 concurrent callers would
    # leave Redis idle while they make their calls, then this process idle while Redis runs
    # them: writes of at most _SHARE_MAX calls let both work at once.
    await client.enqueue("warm")  # the line is open
    wire = client.engine()._wire
    assert wire is not None and wire._line is not None
    sizes: list[int] = []
    send = wire._line.send

    def counted(commands: list[list[bytes]]) -> list[asyncio.Future[object]]:
        sizes.append(len(commands))
        return send(commands)

    wire._line.send = counted  # type: ignore[method-assign]
    ids = await asyncio.gather(*(client.enqueue("x", {"i": i}) for i in range(100)))
    assert len(set(ids)) == 100 and sum(sizes) == 100
    assert max(sizes) == wire_module._SHARE_MAX and len(sizes) >= 100 // wire_module._SHARE_MAX


async def test_calls_made_while_redis_loads_its_data_wait_for_it_and_run_once() -> None:
    # While Redis reads its data (after a restart; here DEBUG RELOAD) it replies LOADING to
    # every command. hiredis hands that error over as a reply; taken for the script's reply,
    # it killed a worker (its claim read an exception as the list of claimed jobs). It ran
    # nothing, so it is retried like a lost connection, and each call runs once.
    slow_load = ["--key-load-delay", "100", "--loading-process-events-interval-bytes", "1024"]
    with RedisServer(extra=["--enable-debug-command", "yes", *slow_load]) as server:
        admin = redis.Redis(port=server.port, retry=None)  # redis-py's own would wait it out
        admin.eval("for i = 1, 20000 do redis.call('SET', 'k' .. i, 'v') end", 0)  # ~2 s
        conn = jobfleet.connect(server.url, retries=200)  # a retry budget longer than the load
        async with jobfleet.Client(queue="q", connection=conn) as client:
            await client.enqueue("before")  # the line is open before the load begins
            reload = asyncio.create_task(
                asyncio.to_thread(
                    redis.Redis(port=server.port, retry=None, socket_timeout=60).execute_command,
                    "DEBUG",
                    "RELOAD",
                )
            )

            async def loading() -> bool:
                try:
                    await asyncio.to_thread(admin.ping)
                except redis.BusyLoadingError:
                    return True
                return False

            await until(loading, what="Redis to be loading")
            alone = asyncio.create_task(client.enqueue("alone"))  # a call on its own
            await asyncio.sleep(0)  # written: the calls below share writes behind it
            shared = asyncio.gather(*(client.enqueue("shared", {"i": i}) for i in range(40)))
            bulk = client.enqueue_many([{"name": "bulk"}] * (ENQUEUE_CHUNK + 1))  # a pipeline
            ids = [await alone, *await shared, *await bulk]
            await reload
            assert len(set(ids)) == len(ids) == 1 + 40 + ENQUEUE_CHUNK + 1
            names = [(await client.get(i)).name for i in ids]
            assert names == ["alone"] + ["shared"] * 40 + ["bulk"] * (ENQUEUE_CHUNK + 1)
        assert waiting(server.url) == 1 + len(ids)  # each written once
        admin.close()
