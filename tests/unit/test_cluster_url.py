"""Redis Cluster URLs: what they mean, the errors a person sees, and the client they build."""

import asyncio
import sys

import pytest
from jobfleet import ConfigError, WorkerSettings, url_password
from jobfleet.cluster import Cluster, blocking_copy, parse_cluster_url
from jobfleet.connection import _DirectWrite, connect
from jobfleet.settings import check_redis_url


def test_nodes_default_port_and_database_zero():
    for url in ("redis+cluster://c1:7000,c2,[::1]:7001/", "REDIS+CLUSTER://c1:7000,c2,[::1]:7001"):
        a = parse_cluster_url(url)
        assert a.nodes == (("c1", 7000), ("c2", 6379), ("::1", 7001))
        assert (a.tls, a.username, a.password) == (False, None, None)
    assert parse_cluster_url("redis+cluster://c1/0").nodes == (("c1", 6379),)


def test_tls_options_and_credentials():
    a = parse_cluster_url("rediss+cluster://app:p%40ss@c1,c2/?ssl_cert_reqs=none&socket_timeout=2")
    assert a.tls and (a.username, a.password) == ("app", "p@ss")
    assert a.options() == {"ssl_cert_reqs": "none", "socket_timeout": 2.0}
    assert "p@ss" not in repr(a)
    assert url_password("rediss+cluster://app:p%40ss@c1,c2/") == "p@ss"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster:///", "no cluster node"),
        ("redis+cluster://:pw@/", "no cluster node"),
        ("redis+cluster://c1,,c2/", "cluster node 2 of 3 has an empty host"),
        ("redis+cluster://c1:port/", "cluster node 1 of 1: port must be a number from 1 to 65535"),
        ("redis+cluster://[::1/", "invalid IPv6 address"),
        ("redis+cluster://c1/2", "only database 0"),
        ("redis+cluster://c1/?db=2", "only database 0"),
        ("redis+cluster://c1/#x", "no #fragment"),
        ("redis+cluster://c1/?ssl_cert_reqs=none", "ssl_\\* options need rediss\\+cluster"),
        ("redis+cluster://c1/?timeout=3", "unknown option 'timeout'"),
        ("redis+cluster://c1/?socket_timeout=soon", "Invalid value for 'socket_timeout'"),
    ],
)
def test_malformed_urls_name_the_problem(url, message):
    with pytest.raises(ConfigError, match=message):
        check_redis_url(url)
    with pytest.raises(ValueError, match=message):
        WorkerSettings(redis_url=url)


def test_errors_never_quote_the_password():
    for url in (
        "redis+cluster://:hunter2@c1,c2:hunter2/",
        "redis+cluster://:hunter2@c1/?x=hunter2",
    ):
        with pytest.raises(ConfigError) as caught:
            check_redis_url(url)
        assert "hun" not in str(caught.value)


def test_the_client_routes_by_slot_with_the_write_fix_on_every_node():
    client = connect("rediss+cluster://app:pw@c1:7000,c2/?ssl_cert_reqs=none", retries=2)
    assert isinstance(client, Cluster)
    kwargs = client.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["ssl_cert_reqs"]) == (
        "app",
        "pw",
        "none",
    )
    assert kwargs["decode_responses"] is True
    classes = [kwargs["connection_class"], *(n.connection_class for n in client.startup_nodes)]
    if sys.version_info < (3, 12):
        assert all(issubclass(c, _DirectWrite) for c in classes)
    assert [n.name for n in client.startup_nodes] == ["c1:7000", "c2:6379"]
    assert client.retry.get_retries() == 2
    assert connect("redis+cluster://c1/", retries=0).retry.get_retries() == 0

    copy = blocking_copy(client, 70.0)
    assert copy.connection_kwargs["socket_timeout"] == 70.0
    assert copy.connection_kwargs["max_connections"] == 1 or all(
        n.max_connections == 1 for n in copy.startup_nodes
    )
    assert copy.connection_kwargs["connection_class"] is kwargs["connection_class"]
    assert copy.connection_kwargs["password"] == "pw"
    asyncio.run(client.aclose())
    asyncio.run(copy.aclose())
