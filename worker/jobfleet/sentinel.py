"""Redis Sentinel: URL parsing and a client that follows the master."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS, SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
)
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from .errors import ConfigError
from .redaction import url_password as url_password  # re-exported

SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme -> TLS
DEFAULT_PORT = 26379
FOLLOW_INTERVAL = 1.0  # seconds between background "where is the master now?" questions
SENTINEL_PASSWORD_ENV = "JOBFLEET_REDIS_SENTINEL_PASSWORD"
# Sentinel accepts any name; a plain one is safe in URLs, CRDs and messages alike.
MASTER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_MASTER_NAME = re.compile(MASTER_NAME_PATTERN)
# Query options a Sentinel URL may carry (parsed as redis-py parses them for redis://).
OPTIONS = frozenset(URL_QUERY_ARGUMENT_PARSERS) - {"db"} | {
    "client_name",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_ciphers",
}
_FORMAT = "redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<master-name>[/<db>]"


def bad_url(problem: str) -> ConfigError:
    """The ConfigError of a malformed Redis URL (`problem` never quotes a secret)."""
    return ConfigError(f"malformed Redis URL: {problem}")


@dataclass(frozen=True)
class SentinelAddress:
    """A Sentinel-managed master: the Sentinels to ask, its name there, the database."""

    nodes: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    query: str = ""

    def options(self) -> dict[str, Any]:
        """The URL's query as connection keyword arguments, parsed as for redis://."""
        if not self.query:
            return {}
        return dict(parse_url(f"redis://?{self.query}"))


def is_sentinel_url(url: str) -> bool:
    return isinstance(url, str) and url.partition("://")[0].lower() in SCHEMES


def node_address(raw: str, where: str, default_port: int) -> tuple[str, int]:
    """One `host[:port]` entry of a multi-host URL (Sentinel's, Cluster's); `where` names it
    in errors ("Sentinel 2 of 3"): the entry itself is never quoted, since a mistyped URL may
    have a password where a host should be."""
    if not raw:
        raise bad_url(f"{where} has an empty host")
    if raw.startswith("["):
        host, bracket, rest = raw[1:].partition("]")
        if not bracket or not host or (rest and not rest.startswith(":")):
            raise bad_url(f"{where}: an IPv6 address goes in brackets, as [::1]:{default_port}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_or_empty = raw.partition(":")
        port_text = port_text_or_empty if colon else None
        if not host:
            raise bad_url(f"{where} has an empty host")
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise bad_url(f"{where}: port must be a number from 1 to 65535")
    return host, int(port_text)


@dataclass(frozen=True)
class MultiHostURL:
    """The parts of a URL naming several hosts (Sentinel's, Cluster's), decoded."""

    tls: bool
    nodes: tuple[tuple[str, int], ...]
    path: str
    query: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def options(self) -> dict[str, Any]:
        """The URL's query as connection keyword arguments, parsed as for redis://."""
        return dict(parse_url(f"redis://?{self.query}")) if self.query else {}


def split_multi_host(
    url: str, schemes: dict[str, bool], kind: str, node: str, usage: str, default_port: int
) -> MultiHostURL:
    """Split a `scheme://[[user]:password@]host[:port][,host[:port]...]/...` URL whose
    scheme is one of `schemes` (scheme -> TLS); `kind` ("Sentinel") and `node` ("Sentinel",
    "cluster node") name it in errors, `usage` shows its format. Errors never quote it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise bad_url("invalid IPv6 address (brackets do not match)") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise bad_url(f"not a {kind} URL: use {usage}")
    if parts.fragment:
        raise bad_url(f"a {kind} URL has no #fragment")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    if not hosts:
        raise bad_url(f"no {node} host: use {usage}")
    entries = hosts.split(",")
    nodes = tuple(
        node_address(e, f"{node} {i} of {len(entries)}", default_port)
        for i, e in enumerate(entries, 1)
    )
    return MultiHostURL(schemes[scheme], nodes, parts.path, parts.query, username, password)


def check_query(
    query: str, *, tls: bool, allowed: frozenset[str], db_hint: str, tls_scheme: str
) -> None:
    """Check a multi-host URL's query options: no ?db= (`db_hint` says where it goes), only
    `allowed` names, ssl_* only with TLS (`tls_scheme`), values as redis-py parses them."""
    names = option_names(query)
    if "db" in names:
        raise bad_url(db_hint)
    check_option_names(names, allowed)
    if not tls and any(n.startswith("ssl_") for n in names):
        raise bad_url(f"ssl_* options need {tls_scheme}")
    check_option_values(lambda: parse_url(f"redis://?{query}"))


def parse_sentinel_url(url: str) -> SentinelAddress:
    """Parse `redis+sentinel://` / `rediss+sentinel://`; errors never quote a password."""
    parts = split_multi_host(url, SCHEMES, "Sentinel", "Sentinel", _FORMAT, DEFAULT_PORT)
    segments = parts.path.split("/")[1:]
    if segments and not segments[-1]:
        segments.pop()  # a trailing slash
    if not segments or not segments[0]:
        raise bad_url(f"a Sentinel URL needs the master's name: {_FORMAT}")
    if len(segments) > 2:
        raise bad_url(f"too many path segments: {_FORMAT}")
    master = unquote(segments[0])
    if not _MASTER_NAME.match(master):
        raise bad_url(
            f"invalid master name {master!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    db_text = segments[1] if len(segments) > 1 else "0"
    if not db_text.isdigit():
        raise bad_url("database must be a number")
    check_query(
        parts.query,
        tls=parts.tls,
        allowed=OPTIONS,
        db_hint="put the database in the path (/<master-name>/<db>), not in ?db=",
        tls_scheme="rediss+sentinel://",
    )
    return SentinelAddress(
        nodes=parts.nodes,
        master=master,
        db=int(db_text),
        tls=parts.tls,
        username=parts.username,
        password=parts.password,
        query=parts.query,
    )


_OPTION_NAME = re.compile(r"^[a-z_]{1,64}$")
_INVALID_VALUE = re.compile(r"Invalid value for '[a-z_]{1,64}'")


def option_names(query: str) -> list[str]:
    """The option names of a URL's query, in order."""
    return [name for name, _ in parse_qsl(query, keep_blank_values=True)]


def check_option_names(names: Iterable[str], allowed: frozenset[str]) -> None:
    """ConfigError naming the first query option not in `allowed` (redis-py's names)."""
    for name in names:
        if name not in allowed:
            # Only a plain name is quoted: anything else might be part of a password.
            shown = repr(name) if _OPTION_NAME.match(name) else "with that name"
            raise bad_url(f"unknown option {shown} in the query")


def check_option_values(parse: Callable[[], object]) -> None:
    """Run redis-py's parsing of a URL's query options (`parse`); a bad value becomes a
    ConfigError with redis-py's "Invalid value for '<option>'" alone, never the value."""
    try:
        parse()
    except ValueError as exc:
        found = _INVALID_VALUE.search(str(exc))
        problem = f"{found[0]} in the query" if found else "invalid query options"
        raise bad_url(problem) from None


def _describe(exc: RedisError) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, AuthenticationError) or "AUTH" in str(exc):
        text += f" (the Sentinels' password comes from ${SENTINEL_PASSWORD_ENV})"
    return text


class _Sentinel(Sentinel):
    """Tells which Sentinel said what when none can name the master."""

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        problems = []
        for index, sentinel in enumerate(self.sentinels):
            kwargs = sentinel.connection_pool.connection_kwargs
            where = f"{kwargs['host']}:{kwargs['port']}"
            try:
                # RESP2 and RESP3 answers both parse into a dict keyed by master name.
                masters = cast(dict[str, Any], await sentinel.sentinel_masters())
            except RedisError as exc:
                # Wrong or missing passwords are RedisErrors too: try the next Sentinel.
                problems.append(f"{where}: {_describe(exc)}")
                continue
            state = masters.get(service_name)
            if not state:
                problems.append(f"{where}: no master named {service_name!r}")
            elif not self.check_master_state(state, service_name):
                problems.append(f"{where}: master {service_name!r} is down")
            else:
                # The Sentinel that answered goes first next time.
                self.sentinels[0], self.sentinels[index] = sentinel, self.sentinels[0]
                return str(state["ip"]), int(state["port"])
        raise MasterNotFoundError(
            f"no Sentinel could name the master {service_name!r}: " + "; ".join(problems)
        )


class _MasterConnection(SentinelManagedConnection):
    """A master connection that moves to the new master after a failover.

    Sentinel promotes a replica at once but demotes the old master only some seconds later
    (about 10 s with Redis 7); until then the old master still accepts writes, which are
    lost. So a connection whose server is no longer the one the Sentinels name reconnects
    at its next use (the pool asks them every FOLLOW_INTERVAL seconds). Once demoted, the
    old master answers writes with READONLY (redis-py reconnects) and a command blocked
    there (the worker's BLPOP) with READONLY or, before Redis 7, UNBLOCKED. All of these
    become ConnectionError, which jobfleet's retries and backoff treat as transient.
    """

    async def connect(self) -> None:
        master = self.connection_pool.master_address
        if self.is_connected and master is not None and (self.host, self.port) != master:
            await self.disconnect()
        await super().connect()  # type: ignore[no-untyped-call]

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        # redis-py reconnects a closed connection here straight to its last address, not
        # through the Sentinels (redis/redis-py#3874): a retry after READONLY would reach the
        # demoted master again, and again.
        if not self.is_connected:
            await self.connect()
        await super().send_packed_command(command, check_health)

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except ResponseError as exc:
            if str(exc).startswith("UNBLOCKED") and self.connection_pool.is_master:
                await self.disconnect()
                raise RedisConnectionError("the master was demoted to a replica") from None
            raise


class _MasterSSLConnection(_MasterConnection, SSLConnection):
    pass


class _MasterPool(SentinelConnectionPool):
    """Asks the Sentinels where the master is now and then, in the background, so that its
    connections follow a failover (see `_MasterConnection`); closing it closes the
    connections to the Sentinels too."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self._asked = 0.0
        self._asking: asyncio.Task[None] | None = None

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = asyncio.get_running_loop().time()
        if now - self._asked >= FOLLOW_INTERVAL and (self._asking is None or self._asking.done()):
            self._asked = now
            self._asking = asyncio.create_task(self._ask(), name="jobfleet-sentinel")
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]

    async def _ask(self) -> None:
        # A new address disconnects the idle connections; busy ones move at their next use.
        with contextlib.suppress(RedisError, OSError):
            await self.get_master_address()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        if self._asking is not None:
            self._asking.cancel()
            await asyncio.wait([self._asking])
        await super().aclose()
        await self.sentinel_manager.aclose()


def sentinel_client(
    address: SentinelAddress, *, sentinel_password: str | None = None, **kwargs: Any
) -> aioredis.Redis:
    """A client of the master `address` names; nothing is contacted until the first command.

    Every new connection asks the Sentinels where the master is, so after a failover the
    client follows it. `kwargs` are connection options (as for `Redis.from_url`); the URL's
    credentials and query win over them, as they do for redis://. Socket timeouts and TLS
    apply to the Sentinels too; the master's password does not.
    """
    options = {**kwargs, **address.options(), "db": address.db}
    if address.username is not None:
        options["username"] = address.username
    if address.password is not None:
        options["password"] = address.password
    shared = {k: v for k, v in options.items() if k.startswith(("socket_", "ssl_"))}
    sentinel_kwargs: dict[str, Any] = {
        **shared,
        "password": sentinel_password,
        # discover_master moves on to the next Sentinel; the master connection retries.
        "retry": Retry(NoBackoff(), 0),
    }
    if address.tls:
        sentinel_kwargs["ssl"] = True
    nodes = list(address.nodes)
    manager = _Sentinel(nodes, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    options.pop("ssl", None)
    client: aioredis.Redis = manager.master_for(
        address.master,
        connection_pool_class=_MasterPool,
        connection_class=_MasterSSLConnection if address.tls else _MasterConnection,
        **options,
    )
    return client
