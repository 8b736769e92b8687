"""Redis Cluster: URL parsing and a cluster client, on redis-py's asyncio RedisCluster.

redis-py routes every command by its key's slot and follows MOVED, ASK, failovers and
resharding; what it lacks for jobfleet, and this module adds:

- the ``redis+cluster://`` / ``rediss+cluster://`` URL with several seed nodes (redis-py's
  ``RedisCluster.from_url`` takes one host), checked like a Sentinel URL: specific errors
  that never quote a password;
- the 3.11 write fix (`connection.direct_writes`) on every node's connections, which
  RedisCluster creates with its own connection class and no way to pass another;
- a copy of a client for blocking waits (`blocking_copy`), as a single server's pool has;
- no retries unless asked (the operator's reader), where RedisCluster defaults to three.

Errors a cluster raises while it moves slots or promotes a replica are transient
(`TRANSIENT`): redis-py retries them a little, and jobfleet's loops retry them as they
retry an unreachable Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ClusterError, RedisClusterException, SlotNotCoveredError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError

from .sentinel import OPTIONS as SENTINEL_OPTIONS
from .sentinel import MultiHostURL, bad_url, check_query, split_multi_host

SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme -> TLS
DEFAULT_PORT = 6379
# Query options a cluster URL may carry: a Sentinel URL's that RedisCluster takes.
OPTIONS = SENTINEL_OPTIONS - {"retry_on_timeout", "ssl_ca_path", "timeout"}
_FORMAT = "redis+cluster://[[user]:password@]host[:port][,host[:port]...]/"
# What a cluster says while a slot moves or a primary is replaced, beyond the connection
# errors: TRYAGAIN (a slot half migrated: see "Redis Cluster" in docs/architecture.md for why
# jobfleet's scripts meet it before they run, never halfway), CLUSTERDOWN (ClusterDownError
# is a ClusterError), redis-py's "TTL exhausted" after too many redirections (ClusterError),
# and a slot no node serves yet.
TRANSIENT = (TryAgainError, ClusterError, SlotNotCoveredError)


# A cluster is its seed nodes and the connection options every node gets.
ClusterAddress = MultiHostURL


def is_cluster(conn: object) -> bool:
    """Whether `conn` is a cluster client (jobfleet types every client as `Redis`)."""
    return isinstance(conn, RedisCluster)


def node_of(conn: object, key: str) -> dict[str, Any]:
    """Keyword arguments that send a keyless command (TIME) to the node owning `key`, on a
    cluster (where redis-py would pick any node); none for one server."""
    if isinstance(conn, RedisCluster):
        return {"target_nodes": conn.get_node_from_key(key)}
    return {}


def is_cluster_url(url: str) -> bool:
    return isinstance(url, str) and url.partition("://")[0].lower() in SCHEMES


def parse_cluster_url(url: str) -> ClusterAddress:
    """Parse `redis+cluster://` / `rediss+cluster://`; errors never quote a password."""
    parts = split_multi_host(url, SCHEMES, "Redis Cluster", "cluster node", _FORMAT, DEFAULT_PORT)
    if parts.path.strip("/") not in ("", "0"):
        raise bad_url("a Redis Cluster has only database 0: end the URL with / or /0")
    check_query(
        parts.query,
        tls=parts.tls,
        allowed=OPTIONS,
        db_hint="a Redis Cluster has only database 0: no ?db=",
        tls_scheme="rediss+cluster://",
    )
    return parts


class Cluster(RedisCluster):
    """A RedisCluster that remembers how it was made, so that `blocking_copy` can make
    another like it (RedisCluster keeps no such record)."""

    def __init__(self, address: ClusterAddress, options: dict[str, Any]) -> None:
        self.address = address
        self.options = options
        nodes = [ClusterNode(host, port) for host, port in address.nodes]
        super().__init__(startup_nodes=nodes, **options)

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:
        """Discover the cluster; no node reachable (or none accepting the password) is a
        ConnectionError, as for one server, rather than redis-py's RedisClusterException,
        which is no RedisError: jobfleet's loops then wait for the cluster like for a
        Redis that is down, and the CLI says it in one line."""
        try:
            return await super().initialize(*args, **kwargs)
        except RedisClusterException as exc:
            if type(exc) is not RedisClusterException:
                raise
            problem = str(exc)
        raise RedisConnectionError(problem)


def cluster_client(address: ClusterAddress, **kwargs: Any) -> Cluster:
    """A client of the cluster `address` seeds; nothing is contacted until the first command.

    `kwargs` are connection options (as for `Redis.from_url`); the URL's credentials and
    query win over them, as they do for redis://. The password and TLS apply to every node.
    `retry` bounds redis-py's own retries of a cluster's errors (None: none).
    """
    options = {**kwargs, **address.options()}
    options.pop("db", None)
    if address.username is not None:
        options["username"] = address.username
    if address.password is not None:
        options["password"] = address.password
    if address.tls:
        options["ssl"] = True
    if options.get("retry") is None:
        options["retry"] = Retry(NoBackoff(), 0)
    return Cluster(address, options)


def blocking_copy(client: Cluster, socket_timeout: float) -> Cluster:
    """A client of the same cluster with one connection per node and a read timeout of
    `socket_timeout`, for a blocking wait that must not hold up other commands."""
    options = {**client.options, "socket_timeout": socket_timeout, "max_connections": 1}
    copy = Cluster(client.address, options)
    base = client.connection_kwargs["connection_class"]
    return use_connection_class(copy, lambda _: base)


_C = TypeVar("_C", bound=RedisCluster)


def use_connection_class(client: _C, wrap: Callable[[type[Any]], type[Any]]) -> _C:
    """Make every node connection of `client` (present and future) of class `wrap(base)`:
    RedisCluster picks the class itself and takes none as an argument."""
    kwargs = client.connection_kwargs
    kwargs["connection_class"] = wrap(kwargs["connection_class"])
    for node in client.startup_nodes:
        node.connection_class = wrap(node.connection_class)
    return client
