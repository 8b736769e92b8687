"""A real Redis Cluster on loopback ports: 3 primaries and 3 replicas of the Debian
redis-server, formed with `redis-cli --cluster create`, for tests and the e2e tier."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Self

import redis
from redis_server import RedisServer, TLSFiles, free_port

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
NODE_TIMEOUT_MS = 1000  # a dead primary is replaced in about two of these


def _until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Redis Cluster: {what} did not happen within {timeout} s")
        time.sleep(0.05)


class RedisCluster:
    """`primaries` primaries with `replicas` replicas each; `url` is a redis+cluster:// URL
    naming every node. Nodes are RedisServers (kill one with `.stop(signal.SIGKILL)`)."""

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 1,
        *,
        password: str | None = None,
        tls: TLSFiles | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.size = primaries * (1 + replicas)
        self.replicas = replicas
        self.password = password
        self.tls = tls
        self.extra = extra or []
        self.nodes: list[RedisServer] = []

    @property
    def address(self) -> str:
        """Every node, as host:port,host:port,..."""
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def url(self) -> str:
        """A redis+cluster:// URL of every node, without the password."""
        return f"redis+cluster://{self.address}/"

    @property
    def tls_url(self) -> str:
        """A rediss+cluster:// URL of every node's TLS port, trusting the test CA."""
        assert self.tls is not None
        nodes = ",".join(f"127.0.0.1:{n.tls_port}" for n in self.nodes)
        return f"rediss+cluster://{nodes}/?ssl_ca_certs={self.tls.cert}"

    def start(self) -> None:
        try:
            for _ in range(self.size):
                node = RedisServer(extra=[], tls=self.tls)
                if self.tls is not None:
                    # The bus and replication over TLS too; clients that come over TLS are
                    # told the nodes' TLS ports.
                    node.extra += ["--tls-cluster", "yes", "--tls-replication", "yes"]
                node.extra += [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(node.dir / "nodes.conf"),
                    # The bus on a free port of its own, not port + 10000 (which may be taken
                    # or past 65535).
                    "--cluster-port",
                    str(free_port()),
                    "--cluster-node-timeout",
                    str(NODE_TIMEOUT_MS),
                    # A replica may take over however long it was cut off: the tests kill
                    # primaries on purpose and must see the failover.
                    "--cluster-replica-validity-factor",
                    "0",
                    *self.extra,
                ]
                if self.password is not None:
                    node.extra += ["--requirepass", self.password, "--masterauth", self.password]
                self.nodes.append(node)
                node.start()
            addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
            replicas = ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
            if self.password is not None:
                replicas += ["-a", self.password, "--no-auth-warning"]
            subprocess.run(
                [REDIS_CLI, "--cluster", "create", *addresses, *replicas],
                check=True,
                capture_output=True,
                timeout=120,
            )
            self.wait_ok()
        except BaseException:
            self.cleanup()
            raise

    def client(self, node: RedisServer) -> redis.Redis:
        return redis.Redis(
            port=node.port, password=self.password, decode_responses=True, socket_timeout=5
        )

    def flush(self) -> None:
        """Empty every primary (replicas follow)."""
        for node in self.primaries():
            with self.client(node) as conn:
                conn.flushall()

    def alive(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def _info(self, node: RedisServer) -> dict[str, str]:
        with self.client(node) as conn:
            info = conn.execute_command("CLUSTER INFO")  # parsed by redis-py
        return {str(k): str(v) for k, v in dict(info).items()}

    def _ok(self) -> bool:
        try:
            for node in self.alive():
                info = self._info(node)
                if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                    return False
                with self.client(node) as conn:
                    repl = conn.info("replication")
                if repl["role"] == "slave" and repl.get("master_link_status") != "up":
                    return False
            return True
        except redis.RedisError:
            return False

    def wait_ok(self) -> None:
        """Until every live node says cluster_state:ok and every replica is in sync."""
        _until(self._ok, "cluster_state:ok on every node")

    def owner(self, slot: int) -> RedisServer:
        """The primary serving `slot`, as a live node sees it."""
        with self.client(self.alive()[0]) as conn:
            for start, end, primary, *_ in conn.execute_command("CLUSTER SLOTS"):
                if int(start) <= slot <= int(end):
                    port = int(primary[1])
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(slot)

    def node_id(self, node: RedisServer) -> str:
        with self.client(node) as conn:
            return str(conn.execute_command("CLUSTER MYID"))

    def primaries(self) -> list[RedisServer]:
        found = []
        for node in self.alive():
            with self.client(node) as conn:
                if conn.info("replication")["role"] == "master":
                    found.append(node)
        return found

    def replica_of(self, primary: RedisServer) -> RedisServer:
        wanted = self.node_id(primary)
        for node in self.alive():
            with self.client(node) as conn:
                mine = str(conn.execute_command("CLUSTER MYID"))
                for line in str(conn.execute_command("CLUSTER NODES")).splitlines():
                    fields = line.split()
                    if fields[0] == mine and fields[3] == wanted:
                        return node
        raise LookupError("no replica")

    def kill(self, node: RedisServer) -> None:
        node.stop(signal.SIGKILL)

    def wait_failover(self, dead: RedisServer, slot: int) -> RedisServer:
        """Until another node serves `slot` with the cluster ok again; returns it."""
        _until(lambda: self._ok() and self.owner(slot) is not dead, "the replica's promotion")
        return self.owner(slot)

    def migrate_slot(
        self, slot: int, target: RedisServer, *, batch: int = 10, pause: float = 0.0
    ) -> int:
        """Move `slot` to `target` as `redis-cli --cluster reshard` does (SETSLOT IMPORTING
        and MIGRATING, MIGRATE `batch` keys at a time, SETSLOT NODE everywhere), with
        `pause` seconds between batches so that clients meet the half-moved slot. Returns
        how many keys moved."""
        source = self.owner(slot)
        src, dst = self.client(source), self.client(target)
        src_id, dst_id = self.node_id(source), self.node_id(target)
        moved = 0
        try:
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
            while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, batch):
                src.execute_command(
                    "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "REPLACE", "KEYS", *keys
                )
                moved += len(keys)
                time.sleep(pause)
            for node in self.primaries():
                with self.client(node) as conn:
                    conn.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
        finally:
            src.close()
            dst.close()
        return moved

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
