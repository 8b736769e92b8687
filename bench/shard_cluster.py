"""Redis Cluster primaries on loopback for the shard benchmark, with every slot placed by hand.

tests/redis_cluster.py forms its cluster with `redis-cli --cluster create` (even slot ranges,
replicas); a benchmark needs the opposite: no replicas, and the slots of a partitioned queue's
partitions on the primaries it chooses, so that K partitions spread K/S per shard whatever
their names hash to. So each node gets its slots with CLUSTER ADDSLOTSRANGE before the nodes
MEET; the caller passes `owner(slot) -> shard`.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import redis

# The tests' redis-server helpers, as bench/admin.py and bench/groups.py use them.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import REDIS_SERVER, free_port

SLOTS = 16384


def slot_runs(owner: Callable[[int], int], shards: int) -> list[list[tuple[int, int]]]:
    """Per shard, the contiguous runs (first, last) of the slots `owner` gives it."""
    runs: list[list[tuple[int, int]]] = [[] for _ in range(shards)]
    start, current = 0, owner(0)
    for slot in range(1, SLOTS + 1):
        here = owner(slot) if slot < SLOTS else -1
        if here != current:
            runs[current].append((start, slot - 1))
            start, current = slot, here
    return runs


def even_owner(shards: int, pinned: dict[int, int]) -> Callable[[int], int]:
    """Slots in `shards` even ranges, except the `pinned` ones (slot -> shard)."""
    width = -(-SLOTS // shards)
    return lambda slot: pinned.get(slot, slot // width)


class Shards:
    """`count` cluster-enabled redis-servers, no replicas, slots placed by `owner`."""

    def __init__(self, count: int, owner: Callable[[int], int], *, callgrind: bool = False) -> None:
        self.count = count
        self.owner = owner
        # Each server under valgrind's callgrind: instructions counted, not seconds (about
        # 50 times slower; `callgrind_out(shard)` is where its dump goes).
        self.callgrind = callgrind
        self.dir = Path(tempfile.mkdtemp(prefix="jf-shards-"))
        self.ports: list[int] = []
        self.bus_ports: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports) + "/"

    def conn(self, shard: int) -> redis.Redis:
        return redis.Redis(port=self.ports[shard], decode_responses=True, socket_timeout=10)

    def start(self) -> None:
        try:
            for i in range(self.count):
                port = free_port()
                node_dir = self.dir / str(i)
                node_dir.mkdir()
                self.ports.append(port)
                self.bus_ports.append(free_port())
                wrap = (
                    [
                        "valgrind",
                        "--tool=callgrind",
                        f"--callgrind-out-file={self.callgrind_out(i)}",
                    ]
                    if self.callgrind
                    else []
                )
                self.procs.append(
                    subprocess.Popen(
                        [
                            *wrap,
                            REDIS_SERVER,
                            "--port",
                            str(port),
                            "--bind",
                            "127.0.0.1",
                            "--dir",
                            str(node_dir),
                            "--save",
                            "",
                            "--appendonly",
                            "no",
                            "--loglevel",
                            "warning",
                            "--cluster-enabled",
                            "yes",
                            "--cluster-config-file",
                            str(node_dir / "nodes.conf"),
                            "--cluster-port",
                            str(self.bus_ports[i]),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL if self.callgrind else None,
                    )
                )
            for i in range(self.count):
                self._until(lambda i=i: self._pings(i), "each node answering PING", 120)
            for i, runs in enumerate(slot_runs(self.owner, self.count)):
                with self.conn(i) as c:
                    flat = [n for run in runs for n in run]
                    c.execute_command("CLUSTER ADDSLOTSRANGE", *flat)
            with self.conn(0) as c:
                for port, bus in zip(self.ports[1:], self.bus_ports[1:], strict=True):
                    c.execute_command("CLUSTER MEET", "127.0.0.1", port, bus)
            self._until(self._ok, "cluster_state:ok on every node")
        except BaseException:
            self.stop()
            raise

    def callgrind_out(self, shard: int) -> Path:
        return self.dir / f"callgrind-{shard}.out"

    def _pings(self, shard: int) -> bool:
        try:
            with self.conn(shard) as c:
                return bool(c.ping())
        except redis.RedisError:
            return False

    def _ok(self) -> bool:
        for i in range(self.count):
            with self.conn(i) as c:
                info = c.execute_command("CLUSTER INFO")
                if info.get("cluster_state") != "ok" or int(info["cluster_known_nodes"]) != (
                    self.count
                ):
                    return False
        return True

    def _until(self, check: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"shard cluster: {what} did not happen within {timeout} s")
            time.sleep(0.05)

    def serving(self, slot: int) -> int:
        """The shard that serves `slot`, as the cluster (not our plan) says."""
        with self.conn(0) as c:
            for first, last, primary, *_ in c.execute_command("CLUSTER SLOTS"):
                if int(first) <= slot <= int(last):
                    return self.ports.index(int(primary[1]))
        raise LookupError(slot)

    def cpu(self, shard: int) -> float:
        """CPU seconds (user + system) this server has used."""
        with self.conn(shard) as c:
            info = c.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
