"""`jobfleet admin --processes N`: N server processes on one port (SO_REUSEPORT), one supervisor.

One process answers about 2,000 requests a second on a core (aiohttp's request handling is
most of it), so a pod with more cores runs more servers. Each child is an ordinary
`jobfleet admin` that binds the same address with SO_REUSEPORT: the kernel spreads new
connections over the children, and no process forwards bytes for another. The supervisor
reserves the port first (bound, never listening, so it takes no connections), which makes
`--port 0` one port for all and a port in use one clear error. Each child reloads the tokens
itself, and answers `/metrics` with the sum over every child (prometheus-client's
multiprocess files in the supervisor's directory), so a scrape that lands on any child sees
the pod. Restarts, backoff and SIGTERM are jobfleet.supervisor's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from dataclasses import asdict, dataclass

from ..errors import ConfigError
from ..supervisor import CHILD_FLAG, PORT_FILE_FLAG, Child, ChildSupervisor
from .routes import PREFIX

log = logging.getLogger("jobfleet.admin")

READY_POLL = 0.2  # seconds between two looks for the children's port files


@dataclass(frozen=True)
class AdminOptions:
    """What one `jobfleet admin` process serves; a child reads them on stdin (as JSON), so
    the Redis URL and its password never land on a command line."""

    redis_url: str
    tokens: str
    host: str
    port: int
    max_body: int
    tls_cert: str | None = None
    tls_key: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, text: str) -> AdminOptions:
        return cls(**json.loads(text))


def reserve(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` with SO_REUSEPORT and not listening: the port is ours
    (port 0: the one the kernel picked) and the children can bind it too."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


class AdminSupervisor(ChildSupervisor):
    """Runs `processes` admin servers on one port until SIGTERM; `run()` is the exit code."""

    kind = "admin"

    def __init__(self, options: AdminOptions, processes: int, log_level: str = "INFO") -> None:
        self._socket = reserve(options.host, options.port)
        try:
            super().__init__(processes, log_level=log_level)
        except BaseException:
            self._socket.close()
            raise
        self.port = int(self._socket.getsockname()[1])
        self.options = options

    def child_args(self, child: Child) -> list[str]:
        return ["admin", CHILD_FLAG, str(os.getpid()), PORT_FILE_FLAG, str(child.port_file)]

    def child_input(self) -> bytes:
        # Every child on the reserved port: with --port 0 they must not each pick their own.
        return AdminOptions(**{**asdict(self.options), "port": self.port}).to_json()

    def child_env(self) -> dict[str, str]:
        # For the child's error messages: the password they must redact (cli._secrets).
        return {"JOBFLEET_REDIS_URL": self.options.redis_url}

    async def open(self) -> None:
        scheme = "https" if self.options.tls_cert else "http"
        log.info(
            "supervisor %d: %d admin processes on %s://%s:%d%s",
            os.getpid(),
            len(self.children),
            scheme,
            self.options.host,
            self.port,
            PREFIX,
        )

    async def close(self) -> None:
        self._socket.close()

    async def poll(self) -> None:
        # A child is ready once it listens: it writes its port file then (supervisor.announce).
        while True:
            for child in self.children:
                proc = child.proc
                if proc is None or proc.returncode is not None or child.ready:
                    continue
                if child.port_file.exists():
                    child.ready = child.was_ready = True
                    child.state = "running"
            await asyncio.sleep(READY_POLL)


__all__ = ["AdminOptions", "AdminSupervisor", "reserve"]
