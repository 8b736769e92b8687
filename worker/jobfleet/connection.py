"""Redis connections: URL parsing, credentials from the environment, and the eviction check."""

from __future__ import annotations

import asyncio
import enum
import os
import sys
from collections.abc import Iterable
from typing import Any, Literal, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import cluster
from .errors import ConfigError, UnsafeRedisError
from .sentinel import SENTINEL_PASSWORD_ENV, is_sentinel_url, parse_sentinel_url, sentinel_client
from .settings import check_redis_url

# The one policy under which Redis never drops a key on its own.
SAFE_EVICTION = frozenset({"noeviction"})
# These evict only keys with a TTL: never a job, but jobfleet's dedup keys, rate-limit
# windows and circuit state carry TTLs. Allowed only when the user accepts that loss.
VOLATILE_EVICTION = frozenset({"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"})
VOLATILE_LOSS = (
    "dedup keys (a duplicate enqueue would be admitted as a new job), rate-limit windows "
    "(more jobs would start than the limit allows) and circuit-breaker state (an open "
    "circuit would close early)"
)
PASSWORD_ENV = "JOBFLEET_REDIS_PASSWORD"
# What an unreachable Redis raises (redis-py's errors and the socket's), and what a Redis
# Cluster raises while a slot moves or a replica takes over: every loop that waits for Redis
# to come back catches these.
REDIS_DOWN = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    OSError,
    *cluster.TRANSIENT,
)


class Default(enum.Enum):
    """An argument left to its environment variable."""

    FROM_ENV = "from-env"


def connect(
    url: str,
    *,
    retries: int = 3,
    sentinel_password: str | Literal[Default.FROM_ENV] | None = Default.FROM_ENV,
    **kwargs: Any,
) -> aioredis.Redis:
    """An asyncio Redis client for `url`; nothing is contacted until the first command.

    The password may come from `$JOBFLEET_REDIS_PASSWORD` so that it can live in a Secret
    rather than in a URL that ends up in config files. A `redis+sentinel://` URL gives a
    client of the master its Sentinels name, which follows it through failovers; the
    Sentinels' own password is `sentinel_password`, else `$JOBFLEET_REDIS_SENTINEL_PASSWORD`.
    A `redis+cluster://` URL gives a `RedisCluster` (jobfleet.cluster) that routes every
    command to the node owning its key's slot.
    """
    check_redis_url(url)
    password = os.environ.get(PASSWORD_ENV) or None
    if password is not None:
        kwargs.setdefault("password", password)
    kwargs.setdefault("decode_responses", True)
    kwargs.setdefault("health_check_interval", 15)
    kwargs.setdefault("socket_connect_timeout", 5)
    kwargs.setdefault(
        "retry",
        Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries) if retries else None,
    )
    kwargs.setdefault("retry_on_error", [RedisConnectionError, RedisTimeoutError])
    if cluster.is_cluster_url(url):
        kwargs.pop("db", None)
        client: Any = cluster.cluster_client(cluster.parse_cluster_url(url), **kwargs)
        return cluster.use_connection_class(client, _direct_class)  # type: ignore[no-any-return]
    if is_sentinel_url(url):
        if sentinel_password is Default.FROM_ENV:
            sentinel_password = os.environ.get(SENTINEL_PASSWORD_ENV) or None
        client = sentinel_client(
            parse_sentinel_url(url), sentinel_password=sentinel_password, **kwargs
        )
    else:
        try:
            client = aioredis.Redis.from_url(url, **kwargs)
        except ValueError as exc:
            # redis-py's messages can quote the URL; never echo a password.
            problem = type(exc).__name__
        else:
            return direct_writes(client)
        # Outside the handler: the ValueError must not travel along as __context__.
        raise ConfigError(f"malformed Redis URL: {problem}")
    return direct_writes(client)


def direct_writes(client: aioredis.Redis) -> aioredis.Redis:
    """Make `client`'s connections write commands at once (see `_DirectWrite`)."""
    pool = client.connection_pool
    pool.connection_class = _direct_class(pool.connection_class)
    return client


async def close_client(conn: aioredis.Redis) -> None:
    """Close `conn` and its connections (a cluster's: to every node)."""
    if cluster.is_cluster(conn):
        await cast(cluster.Cluster, conn).aclose()
    else:
        await conn.aclose(close_connection_pool=True)


def _direct_class(base: type[Any]) -> type[Any]:
    """`base` with `_DirectWrite`'s write where Python needs it (3.11)."""
    if sys.version_info >= (3, 12) or issubclass(base, _DirectWrite):
        return base
    if base not in _DIRECT_CLASSES:
        _DIRECT_CLASSES[base] = type(base.__name__, (_DirectWrite, base), {})
    return _DIRECT_CLASSES[base]


def blocking_client(conn: aioredis.Redis, socket_timeout: float) -> aioredis.Redis:
    """A client like `conn` with a connection of its own (one per node of a cluster) whose
    read timeout is `socket_timeout`, for a blocking wait that must hold up nothing else."""
    if cluster.is_cluster(conn):
        copy: Any = cluster.blocking_copy(cast(cluster.Cluster, conn), socket_timeout)
        return cast(aioredis.Redis, copy)
    pool = conn.connection_pool
    kwargs = {**pool.connection_kwargs, "socket_timeout": socket_timeout}
    return aioredis.Redis(
        connection_pool=aioredis.ConnectionPool(
            connection_class=pool.connection_class, max_connections=1, **kwargs
        )
    )


class _DirectWrite:
    """On Python 3.11, redis-py bounds each socket write with `asyncio.wait_for`, which wraps
    the write in a new Task: the command is sent a loop turn later, after every other ready
    task has run. A worker's claim then waits for all the handlers it just started, instead of
    travelling while they run (measured: Redis and the worker took turns, never overlapping).
    `asyncio.timeout` bounds the same write without a Task. Python 3.12's wait_for needs none.
    """

    socket_timeout: float | None

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        timeout = self.socket_timeout
        if not timeout:
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
            return
        self.socket_timeout = None  # the stock path then writes without wait_for
        try:
            async with asyncio.timeout(timeout):
                await super().send_packed_command(command, check_health)  # type: ignore[misc]
        except TimeoutError:
            raise RedisTimeoutError("Timeout writing to socket") from None
        finally:
            self.socket_timeout = timeout


_DIRECT_CLASSES: dict[type[Any], type[Any]] = {}


async def check_eviction_policy(conn: aioredis.Redis, *, allow_volatile: bool = False) -> str:
    """Refuse a Redis that may evict jobfleet's keys under memory pressure; returns the policy.

    `allow_volatile` accepts the volatile-* policies (see VOLATILE_EVICTION); allkeys-* and
    any policy this version does not know are always refused. On a cluster every primary is
    asked (redis-py would ask one node): the first unsafe one is refused.
    """
    if not cluster.is_cluster(conn):
        return _check_policy(await _policy(conn, {}), allow_volatile)
    nodes = cast(cluster.Cluster, conn)
    await nodes.initialize()
    policies = [await _policy(conn, {"target_nodes": n}) for n in nodes.get_primaries()]
    for policy in policies:
        _check_policy(policy, allow_volatile)
    return policies[0]


async def _policy(conn: aioredis.Redis, where: dict[str, Any]) -> str:
    """The maxmemory-policy of `conn`'s server (`where` picks a cluster's node)."""
    try:
        raw = await conn.config_get("maxmemory-policy", **where)
        policy = str(raw.get("maxmemory-policy", "noeviction"))
    except Exception as exc:
        # Managed Redis often disables CONFIG; INFO still tells the policy.
        if "CONFIG" not in str(exc).upper() and "unknown command" not in str(exc):
            raise
        info = await conn.info("memory", **where)
        policy = str(info.get("maxmemory_policy", "noeviction"))
    return policy


def _check_policy(policy: str, allow_volatile: bool) -> str:
    if policy in SAFE_EVICTION or (allow_volatile and policy in VOLATILE_EVICTION):
        return policy
    fix = "set it to 'noeviction' (CONFIG SET maxmemory-policy noeviction)"
    if policy in VOLATILE_EVICTION:
        raise UnsafeRedisError(
            f"Redis maxmemory-policy is {policy!r}, which under memory pressure evicts keys "
            f"with a TTL: {VOLATILE_LOSS}; {fix}, or accept that loss with "
            "allow_volatile_eviction (JOBFLEET_ALLOW_VOLATILE_EVICTION=1, "
            "--allow-volatile-eviction, or the Queue's redis.allowVolatileEviction)"
        )
    raise UnsafeRedisError(
        f"Redis maxmemory-policy is {policy!r}, which can evict jobs and their data under "
        f"memory pressure; {fix}"
    )
