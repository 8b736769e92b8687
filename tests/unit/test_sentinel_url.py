"""Sentinel URLs: what they mean, the errors a person sees, and the client they build."""

import pytest
from jobfleet import ConfigError, WorkerSettings, url_password
from jobfleet.connection import connect
from jobfleet.sentinel import SentinelAddress, parse_sentinel_url
from jobfleet.settings import check_redis_url


def test_hosts_master_and_database():
    a = parse_sentinel_url("redis+sentinel://s1:26380,s2,[::1]:26381,[fe80::2]/mymaster/3")
    assert a.nodes == (("s1", 26380), ("s2", 26379), ("::1", 26381), ("fe80::2", 26379))
    assert (a.master, a.db, a.tls, a.username, a.password) == ("mymaster", 3, False, None, None)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://s1/mymaster",
        "redis+sentinel://s1/mymaster/",
        "REDIS+SENTINEL://s1/mymaster",
    ],
)
def test_database_defaults_to_zero(url):
    a = parse_sentinel_url(url)
    assert (a.nodes, a.master, a.db) == ((("s1", 26379),), "mymaster", 0)


def test_tls_and_its_options_as_for_rediss():
    a = parse_sentinel_url("rediss+sentinel://s1/m?ssl_cert_reqs=none&socket_timeout=2.5")
    assert a.tls
    assert a.options() == {"ssl_cert_reqs": "none", "socket_timeout": 2.5}


def test_credentials_are_the_masters_and_stay_out_of_reprs():
    a = parse_sentinel_url("redis+sentinel://app:p%40ss%3Aword@s1,s2/m")
    assert (a.username, a.password) == ("app", "p@ss:word")
    assert "p@ss" not in repr(a)
    assert parse_sentinel_url("redis+sentinel://:pw@s1/m").username is None
    assert url_password("redis+sentinel://app:p%40ss@s1,s2/m") == "p@ss"
    assert url_password("redis+sentinel://s1,s2/m") is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel:///mymaster", "no Sentinel host"),
        ("redis+sentinel://:pw@/mymaster", "no Sentinel host"),
        ("redis+sentinel://s1,,s2/mymaster", "Sentinel 2 of 3 has an empty host"),
        ("redis+sentinel://s1,/mymaster", "Sentinel 2 of 2 has an empty host"),
        ("redis+sentinel://:26379/mymaster", "Sentinel 1 of 1 has an empty host"),
        ("redis+sentinel://s1:26379", "needs the master's name"),
        ("redis+sentinel://s1:26379/", "needs the master's name"),
        ("redis+sentinel://s1:port/m", "Sentinel 1 of 1: port must be a number from 1 to 65535"),
        ("redis+sentinel://s1,s2:0/m", "Sentinel 2 of 2: port must be a number from 1 to 65535"),
        ("redis+sentinel://s1:65536/m", "port must be a number from 1 to 65535"),
        ("redis+sentinel://[::1/m", "invalid IPv6 address"),
        ("redis+sentinel://[::1]x/m", "an IPv6 address goes in brackets"),
        ("redis+sentinel://s1/m/zero", "database must be a number"),
        ("redis+sentinel://s1/m/-1", "database must be a number"),
        ("redis+sentinel://s1/m/0/extra", "too many path segments"),
        ("redis+sentinel://s1/my%20master", "invalid master name 'my master'"),
        ("redis+sentinel://s1/m?ssl_cert_reqs=none", "ssl_* options need rediss+sentinel://"),
        ("redis+sentinel://s1/m?db=2", "put the database in the path"),
        ("redis+sentinel://s1/m?colour=blue", "unknown option 'colour' in the query"),
        ("redis+sentinel://s1/m?socket_timeout=soon", "Invalid value for 'socket_timeout'"),
        ("redis+sentinel://s1/m#frag", "no #fragment"),
    ],
)
def test_malformed_sentinel_urls_name_the_problem(url, message):
    with pytest.raises(ConfigError, match="malformed Redis URL") as err:
        check_redis_url(url)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://u:s3cret@s1:99999/m",
        "redis+sentinel://:s3cret@s1,,s2/m",
        "redis+sentinel://s1,:s3cret/m",  # a password typed where a host belongs
        "redis+sentinel://s3cret:x@s1/m/abc",
    ],
)
def test_errors_never_echo_a_password(url):
    with pytest.raises(ConfigError) as err:
        check_redis_url(url)
    assert "s3cret" not in str(err.value)


def test_worker_settings_accept_sentinel_urls():
    url = "rediss+sentinel://s1:26379,s2:26379/jobs/1?ssl_cert_reqs=none"
    assert WorkerSettings(redis_url=url).redis_url == url
    with pytest.raises(ValueError, match="needs the master's name"):
        WorkerSettings(redis_url="redis+sentinel://s1")


def test_address_is_a_frozen_value():
    a = parse_sentinel_url("redis+sentinel://s1/m")
    assert a == SentinelAddress(nodes=(("s1", 26379),), master="m")
    with pytest.raises(AttributeError):
        a.master = "other"  # type: ignore[misc]


# Building a client contacts nothing: these look at what it would send.


def sentinel_password_of(client) -> str | None:
    return client.connection_pool.sentinel_manager.sentinel_kwargs["password"]


def test_client_asks_every_sentinel_for_the_named_master(monkeypatch):
    monkeypatch.delenv("JOBFLEET_REDIS_PASSWORD", raising=False)
    client = connect("redis+sentinel://app:master-pw@s1,s2:26380/jobs/2")
    pool = client.connection_pool
    assert pool.service_name == "jobs" and pool.is_master
    kwargs = [s.connection_pool.connection_kwargs for s in pool.sentinel_manager.sentinels]
    assert [(k["host"], k["port"]) for k in kwargs] == [("s1", 26379), ("s2", 26380)]
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["username"] == "app"
    assert pool.connection_kwargs["password"] == "master-pw"
    assert sentinel_password_of(client) is None  # the master's password is not the Sentinels'


def test_passwords_from_environment_and_arguments(monkeypatch):
    monkeypatch.setenv("JOBFLEET_REDIS_PASSWORD", "env-master")
    monkeypatch.setenv("JOBFLEET_REDIS_SENTINEL_PASSWORD", "env-sentinel")
    url = "redis+sentinel://s1/m"
    from_env = connect(url)
    assert from_env.connection_pool.connection_kwargs["password"] == "env-master"
    assert sentinel_password_of(from_env) == "env-sentinel"
    explicit = connect(url, password="arg-master", sentinel_password="arg-sentinel")
    assert explicit.connection_pool.connection_kwargs["password"] == "arg-master"
    assert sentinel_password_of(explicit) == "arg-sentinel"
    # An explicit None (the operator's) never falls back to the environment.
    assert sentinel_password_of(connect(url, sentinel_password=None)) is None
    in_url = connect("redis+sentinel://:url-master@s1/m", password="arg-master")
    assert in_url.connection_pool.connection_kwargs["password"] == "url-master"


def test_tls_reaches_sentinels_and_master():
    client = connect("rediss+sentinel://s1/m?ssl_cert_reqs=none", socket_timeout=3)
    pool = client.connection_pool
    assert pool.connection_kwargs["ssl_cert_reqs"] == "none"
    assert any(c.__name__ == "SSLConnection" for c in pool.connection_class.__mro__)
    sentinel = pool.sentinel_manager.sentinel_kwargs
    assert (sentinel["ssl"], sentinel["ssl_cert_reqs"], sentinel["socket_timeout"]) == (
        True,
        "none",
        3,
    )
    plain = connect("redis+sentinel://s1/m").connection_pool
    assert not any(c.__name__ == "SSLConnection" for c in plain.connection_class.__mro__)
    assert "ssl" not in plain.sentinel_manager.sentinel_kwargs
