"""Bad input gets a specific error and writes nothing to Redis."""

from __future__ import annotations

import datetime

import jobfleet
import pytest


async def assert_empty(client: jobfleet.Client) -> None:
    assert await client.conn.dbsize() == 0


async def test_payload_that_is_not_json_serializable(client):
    with pytest.raises(jobfleet.PayloadError, match="not JSON-serializable"):
        await client.enqueue("x", {"when": datetime.datetime.now()})
    with pytest.raises(jobfleet.PayloadError, match="not JSON-serializable"):
        await client.enqueue("x", float("nan"))
    await assert_empty(client)


async def test_payload_over_the_size_limit(redis_url):
    async with jobfleet.Client(redis_url, max_payload_bytes=1000) as small:
        with pytest.raises(jobfleet.PayloadError, match=r"1\d{3} bytes, over the limit of 1000"):
            await small.enqueue("x", "a" * 1000)
        await small.enqueue("x", "a" * 990)
    async with jobfleet.Client(redis_url) as default:
        await default.conn.flushdb()
        with pytest.raises(jobfleet.PayloadError, match="over the limit of 1048576"):
            await default.enqueue("x", "a" * (1024 * 1024))
        await assert_empty(default)


async def test_one_bad_job_in_a_batch_writes_none_of_them(client):
    jobs = [{"name": "x", "payload": i} for i in range(10)] + [{"name": "x", "payload": {1, 2}}]
    with pytest.raises(jobfleet.PayloadError):
        await client.enqueue_many(jobs)
    await assert_empty(client)


async def test_unknown_option(client):
    with pytest.raises(TypeError, match="unexpected keyword argument 'priorty'"):
        await client.enqueue("x", 1, priorty="high")
    with pytest.raises(jobfleet.ConfigError, match="priorty: unknown setting"):
        await client.enqueue_many([{"name": "x", "priorty": "high"}])
    await assert_empty(client)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": "urgent"}, "unknown priority 'urgent'"),
        ({"delay": -1}, "delay: must be a finite number from 0 to 315360000"),
        ({"delay": 1, "run_at": 2}, "either delay or run_at"),
        ({"max_attempts": 0}, "max_attempts: must be a whole number from 1 to 1000"),
        ({"dedup_ttl": 5}, "dedup_ttl needs a dedup_key"),
        ({"timeout": 0}, "timeout: must be a finite number from 0.001 to 315360000"),
    ],
)
async def test_invalid_options(client, options, message):
    with pytest.raises(jobfleet.ConfigError, match=message):
        await client.enqueue("x", 1, **options)
    await assert_empty(client)


def test_malformed_redis_url_fails_before_connecting():
    with pytest.raises(jobfleet.ConfigError, match="malformed Redis URL"):
        jobfleet.Client("redis://localhost:notaport/0")
    with pytest.raises(jobfleet.ConfigError, match="scheme must be"):
        jobfleet.Client("localhost:6379")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel:///mymaster", "no Sentinel host"),
        ("redis+sentinel://s1:26379", "needs the master's name"),
        ("redis+sentinel://s1,,s2/mymaster", "Sentinel 2 of 3 has an empty host"),
        ("redis+sentinel://s1:0/mymaster", "port must be a number from 1 to 65535"),
        ("rediss+sentinel://:pw@s1/mymaster/zero", "database must be a number"),
    ],
)
async def test_malformed_sentinel_url_fails_before_connecting(client, url, message):
    with pytest.raises(jobfleet.ConfigError, match=message):
        jobfleet.Client(url)
    with pytest.raises(jobfleet.ConfigError, match=message):
        jobfleet.load_settings(env={"JOBFLEET_REDIS_URL": url})
    await assert_empty(client)


async def test_bad_queue_name(redis_url):
    with pytest.raises(jobfleet.ConfigError, match="invalid queue name"):
        jobfleet.Client(redis_url, queue="has space")
    async with jobfleet.Client(redis_url) as c:
        with pytest.raises(jobfleet.ConfigError, match="invalid queue name"):
            await c.enqueue("x", queue="a{b}")
        await assert_empty(c)


async def test_refuses_a_redis_that_may_evict_jobs(client):
    from jobfleet.connection import check_eviction_policy

    await client.conn.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with pytest.raises(jobfleet.UnsafeRedisError, match="allkeys-lru"):
            await check_eviction_policy(client.conn)
    finally:
        await client.conn.config_set("maxmemory-policy", "noeviction")
    assert await check_eviction_policy(client.conn) == "noeviction"
