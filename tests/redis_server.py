"""A real redis-server (the Debian package) on a free loopback port, for tests and benchmarks;
replicas and Sentinels too."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import redis

REDIS_SERVER = (
    os.environ.get("JOBFLEET_REDIS_SERVER")
    or shutil.which("redis-server")
    or "/usr/bin/redis-server"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TLSFiles:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key."""

    cert: Path
    key: Path

    @classmethod
    def create(cls, directory: Path) -> TLSFiles:
        files = cls(directory / "cert.pem", directory / "key.pem")
        names = "subjectAltName=IP:127.0.0.1,DNS:localhost"
        args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        args += ["-subj", "/CN=localhost", "-addext", names]
        args += ["-keyout", str(files.key), "-out", str(files.cert)]
        subprocess.run(["openssl", *args], check=True, capture_output=True)
        return files


class _Process:
    """A redis-server process on a free port with a directory of its own; with `tls`, a TLS
    port too (the plain one stays, for the helpers)."""

    log_name = "redis.log"

    def __init__(self, prefix: str, tls: TLSFiles | None = None) -> None:
        if not Path(REDIS_SERVER).exists():
            raise RuntimeError(
                f"redis-server not found at {REDIS_SERVER}: install Debian's redis-server"
            )
        self.port = free_port()
        self.tls = tls
        self.tls_port = free_port() if tls is not None else None
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.proc: subprocess.Popen[bytes] | None = None

    def _tls_options(self) -> list[tuple[str, str]]:
        if self.tls is None:
            return []
        return [
            ("tls-port", str(self.tls_port)),
            ("tls-cert-file", str(self.tls.cert)),
            ("tls-key-file", str(self.tls.key)),
            ("tls-ca-cert-file", str(self.tls.cert)),
            ("tls-auth-clients", "no"),
        ]

    def start(self) -> None:
        raise NotImplementedError

    def _launch(self, args: list[str]) -> None:
        """Run redis-server with `args` and wait until it answers (NOAUTH counts: it is up)."""
        proc = self.proc = subprocess.Popen(
            [REDIS_SERVER, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        conn = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 30
        while True:
            try:
                if conn.ping():
                    break
            except redis.AuthenticationError:
                break
            except redis.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log = self.dir / self.log_name
                text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server did not start:\n{text}")
            time.sleep(0.02)
        conn.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def cleanup(self) -> None:
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class RedisServer(_Process):
    """One redis-server process with its own data directory; restartable on the same port."""

    def __init__(
        self,
        *,
        appendonly: bool = False,
        extra: list[str] | None = None,
        replica_of: RedisServer | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        super().__init__("jobfleet-redis-", tls)
        self.appendonly = appendonly
        self.extra = extra or []
        if replica_of is not None:
            self.extra += ["--replicaof", "127.0.0.1", str(replica_of.port)]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--daemonize",
            "no",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
            "--logfile",
            str(self.dir / self.log_name),
            *(arg for name, value in self._tls_options() for arg in (f"--{name}", value)),
            *self.extra,
        ]
        self._launch(args)

    def restart(self) -> None:
        self.stop()
        self.start()


class SentinelServer(_Process):
    """One Sentinel process (`redis-server <conf> --sentinel`) watching `master` as `name`.

    Short timings so that tests see failovers in seconds. The config file lives in its own
    directory, since Sentinel rewrites it with what it learns.
    """

    log_name = "sentinel.log"

    def __init__(
        self,
        master: RedisServer | int,
        *,
        name: str = "mymaster",
        quorum: int = 1,
        password: str | None = None,
        master_password: str | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        self.master = master
        self.name = name
        self.quorum = quorum
        self.password = password
        self.master_password = master_password
        super().__init__("jobfleet-sentinel-", tls)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def watched_port(self) -> int:
        """Where the master is watched: its TLS port if it has one (clients are told that
        port); `master` may also be the port of a server on 127.0.0.1 started elsewhere."""
        if isinstance(self.master, int):
            return self.master
        return self.master.tls_port or self.master.port

    def start(self) -> None:
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            "daemonize no",
            f"dir {self.dir}",
            f"logfile {self.dir / self.log_name}",
            f"sentinel monitor {self.name} 127.0.0.1 {self.watched_port} {self.quorum}",
            f"sentinel down-after-milliseconds {self.name} 1000",
            f"sentinel failover-timeout {self.name} 5000",
        ]
        lines += [f"{name} {value}" for name, value in self._tls_options()]
        if self.tls is not None:
            lines.append("tls-replication yes")  # TLS to the master and replicas too
        if self.password is not None:
            lines.append(f"requirepass {self.password}")
        if self.master_password is not None:
            lines.append(f"sentinel auth-pass {self.name} {self.master_password}")
        conf = self.dir / "sentinel.conf"
        conf.write_text("\n".join(lines) + "\n")
        self._launch([str(conf), "--sentinel"])

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, decode_responses=True)

    def master_port(self) -> int:
        """The port of the master this Sentinel names now."""
        with self.client() as conn:
            _, port = conn.sentinel_get_master_addr_by_name(self.name)
        return int(port)

    def sees(self, *, replicas: int, sentinels: int = 0) -> bool:
        """Whether this Sentinel knows that many healthy replicas and other Sentinels."""
        with self.client() as conn:
            found = conn.sentinel_slaves(self.name)
            others = conn.sentinel_sentinels(self.name)
        healthy = [r for r in found if not (r["is_sdown"] or r["is_odown"])]
        return len(healthy) >= replicas and len(others) >= sentinels

    def failover(self) -> None:
        """Promote a replica now (no agreement needed), as an operator would."""
        with self.client() as conn:
            conn.sentinel_failover(self.name)
