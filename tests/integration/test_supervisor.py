"""`jobfleet worker --processes 2`: one supervisor, two real worker processes, one port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import jobfleet
import pytest
import redis
import redis.asyncio as aioredis
from jobfleet.supervisor import SCRATCH_DIR, ChildSupervisor
from leaks import leaked
from redis_server import RedisServer
from waiting import alive, until

if TYPE_CHECKING:  # `conftest` is another module when tests/admin is collected too
    from conftest import WorkerProcess

pytestmark = pytest.mark.slow

PORT_LINE = re.compile(r"health and metrics on port (\d+)")


class Pod:
    """A supervisor process and what its port says."""

    def __init__(self, proc: WorkerProcess) -> None:
        self.proc = proc
        self.port = 0

    async def started(self) -> None:
        async def port_logged() -> bool:
            m = PORT_LINE.search(self.proc.output())
            if m:
                self.port = int(m.group(1))
            assert self.proc.proc.poll() is None, self.proc.output()
            return bool(m)

        await until(port_logged, what="the supervisor's port")

    async def get(self, path: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{self.port}{path}") as r,
        ):
            return r.status, await r.text()

    async def status(self) -> dict:
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{self.port}/status") as r,
        ):
            return await r.json()

    async def ready(self) -> bool:
        return (await self.get("/readyz"))[0] == 200

    async def child_pids(self) -> list[int]:
        return [c["pid"] for c in (await self.status())["children"]]

    async def metric(self, name: str, **labels: str) -> float:
        """The value of one series of the pod's /metrics (0 when absent)."""
        _, text = await self.get("/metrics")
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            series, _, value = line.rpartition(" ")
            if series.startswith(name + "{"):
                got = ",".join(sorted(series[len(name) + 1 : -1].split(",")))
                if got == want:
                    return float(value)
        return 0.0


@pytest.fixture
def pod(redis_url, spawn_worker):
    def start(env: dict[str, str] | None = None, **queue) -> Pod:
        return Pod(
            spawn_worker(
                redis_url, processes=2, http_port=0, http_host="127.0.0.1", queue=queue, env=env
            )
        )

    return start


async def run_pids(conn: aioredis.Redis, job_id: str) -> list[int]:
    return [int(r.split(":")[0]) for r in await conn.lrange(f"runs:{job_id}", 0, -1)]


async def test_two_processes_share_a_queue_behind_one_port_with_summed_metrics(
    client: jobfleet.Client, pod
) -> None:
    p = pod(concurrency=5)
    await p.started()
    await until(p.ready, what="both children ready")
    doc = await p.status()
    assert doc["processes"] == 2 and len(doc["children"]) == 2
    ids = {c["status"]["worker_id"] for c in doc["children"]}
    assert len(ids) == 2  # two workers, with their own leases
    assert len({i.split(":", 1)[0] for i in ids}) == 1  # of one pod (hostname)
    assert doc["concurrency"] == 10
    pids = set(await p.child_pids())
    assert p.proc.pid not in pids

    jobs = await client.enqueue_many([{"name": "sleep", "payload": {"s": 0.05}}] * 100)

    async def done() -> bool:
        return (await client.inspect()).completed == 100

    await until(done, what="100 jobs completed")
    ran = [pid for j in jobs for pid in await run_pids(client.conn, j)]
    assert set(ran) == pids  # both children did work
    # Each child counted its own: the pod's series is their sum.
    labels = {"queue": "q", "handler": "sleep", "outcome": "completed"}

    async def summed() -> bool:
        return await p.metric("jobfleet_jobs_total", **labels) == 100

    await until(summed, what="jobfleet_jobs_total summed over both children")
    count = await p.metric("jobfleet_job_duration_seconds_count", queue="q", handler="sleep")
    assert count == 100
    assert await p.metric("jobfleet_jobs_in_flight", queue="q") == 0
    _, text = await p.get("/metrics")
    assert 'pid="' not in text  # aggregated: no per-process series


async def test_a_child_killed_with_sigkill_is_restarted_and_its_jobs_run_again(
    client: jobfleet.Client, pod
) -> None:
    p = pod(concurrency=5, lease=1.0)
    await p.started()
    await until(p.ready, what="both children ready")
    jobs = await client.enqueue_many([{"name": "sleep", "payload": {"s": 0.5}}] * 40)
    victim: dict = {}

    async def child_busy() -> bool:
        for c in (await p.status())["children"]:
            if c["status"] and c["status"]["jobs_in_flight"] > 0:
                victim.update(c)
                return True
        return False

    await until(child_busy, what="a child with jobs in flight")
    os.kill(victim["pid"], signal.SIGKILL)

    async def done() -> bool:
        return (await client.inspect()).completed == 40

    await until(done, timeout=120, what="all 40 jobs completed after the kill")
    cut_short = 0
    for j in jobs:
        ran = await run_pids(client.conn, j)
        assert ran, f"job {j} never ran"
        assert (await client.get(j)).state.value == "completed"
        if victim["pid"] in ran and ran[-1] == victim["pid"]:
            continue  # finished on the victim before it died
        if victim["pid"] in ran:
            cut_short += 1
    assert cut_short > 0  # the kill interrupted jobs, and they ran again elsewhere

    async def restarted() -> bool:
        c = (await p.status())["children"][victim["index"]]
        return c["restarts"] == 1 and c["pid"] != victim["pid"] and c["ready"]

    await until(restarted, what="the killed child restarted and ready")
    assert "was killed by signal 9" in p.proc.output()
    assert p.proc.proc.poll() is None


async def test_sigterm_drains_every_child_and_the_supervisor_exits_0(
    client: jobfleet.Client, pod
) -> None:
    p = pod(concurrency=3)
    await p.started()
    await until(p.ready, what="both children ready")
    jobs = await client.enqueue_many([{"name": "sleep", "payload": {"s": 1.0}}] * 6)

    async def both_busy() -> bool:
        docs = [c["status"] for c in (await p.status())["children"]]
        return all(d and d["jobs_in_flight"] > 0 for d in docs)

    await until(both_busy, what="jobs in flight on both children")
    pids = await p.child_pids()
    assert p.proc.terminate() == 0
    assert not any(alive(pid) for pid in pids)
    stats = await client.inspect()
    # Drained, not cut short: what each child held it finished within the grace period.
    finished = [j for j in jobs if (await client.get(j)).state.value == "completed"]
    assert stats.active == 0
    assert len(finished) + stats.waiting == 6
    assert {pid for j in finished for pid in await run_pids(client.conn, j)} == set(pids)
    for j in finished:
        assert len(await run_pids(client.conn, j)) == 1


async def test_children_do_not_outlive_a_supervisor_killed_with_sigkill(pod) -> None:
    p = pod()
    await p.started()
    await until(p.ready, what="both children ready")
    pids = await p.child_pids()
    p.proc.kill()

    async def all_gone() -> bool:
        return not any(alive(pid) for pid in pids)

    await until(all_gone, what="the orphaned children to exit")


async def test_the_directory_of_a_supervisor_killed_with_sigkill_goes_at_the_next_start(
    pod, tmp_path: Path
) -> None:
    """A supervisor removes its scratch (the children's metrics files) when it exits; one
    killed with SIGKILL cannot, so the next one to start removes it."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp)}
    parent = tmp / SCRATCH_DIR
    first = pod(env)
    await first.started()
    await until(first.ready, what="both children ready")
    [left] = list(parent.iterdir())
    assert left.name.startswith(f"{first.proc.pid}.worker.")
    assert (left / "metrics").is_dir()
    pids = await first.child_pids()
    first.proc.kill()

    async def all_gone() -> bool:
        return not any(alive(pid) for pid in [first.proc.pid, *pids])

    await until(all_gone, what="the supervisor and its children to exit")
    assert left.exists()  # nobody could remove it
    second = pod(env)
    await second.started()
    [kept] = list(parent.iterdir())
    assert kept.name.startswith(f"{second.proc.pid}.worker.")
    await until(second.ready, what="both children of the second supervisor ready")
    assert second.proc.terminate() == 0
    assert list(parent.iterdir()) == []  # a graceful exit removes its own


def test_only_directories_of_dead_pids_are_removed(tmp_path: Path) -> None:
    """A real stale directory (its pid exited), one of a live process and one that is not a
    supervisor's: only the first goes."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = int(done.stdout)
    assert not alive(dead)
    stale = tmp_path / f"{dead}.worker.abc"
    (stale / "metrics").mkdir(parents=True)
    (stale / "metrics" / f"counter_{dead}.db").write_bytes(b"x" * 64)
    live = tmp_path / f"{os.getppid()}.admin.def"
    live.mkdir()
    other = tmp_path / "notes.d"
    other.mkdir()
    sup = ChildSupervisor(1, scratch=tmp_path)
    assert not stale.exists()
    assert live.exists() and other.exists()
    [mine] = [p for p in tmp_path.iterdir() if p.name.startswith(f"{os.getpid()}.")]
    assert (mine / "metrics").is_dir()
    # A second supervisor of this process keeps the first one's directory.
    ChildSupervisor(1, scratch=tmp_path)
    assert mine.exists()
    del sup


async def test_a_child_that_cannot_start_stops_the_pod_with_its_exit_code(
    redis_url, spawn_worker
) -> None:
    proc = spawn_worker(redis_url, processes=2, http_port=0, handlers=["no_such_module_here"])
    code = proc.proc.wait(timeout=120)
    assert code != 0
    assert "before it was ready; stopping the pod" in proc.output()


async def test_no_part_of_the_redis_password_reaches_the_pods_output(spawn_worker) -> None:
    password = "Sv7qLm2xPw9tRk4"
    with RedisServer() as server:
        conn = redis.Redis(port=server.port)
        conn.config_set("requirepass", password)
        conn.close()
        url = f"redis://:{password}@127.0.0.1:{server.port}/0"
        wrong = f"redis://:{password[::-1]}@127.0.0.1:{server.port}/0"
        good = Pod(spawn_worker(url, processes=2, http_port=0, http_host="127.0.0.1"))
        bad = Pod(spawn_worker(wrong, processes=2, http_port=0, http_host="127.0.0.1"))
        await good.started()
        await bad.started()
        await until(good.ready, what="the pod with the right password ready")
        async with jobfleet.Client(url, queue="q") as client:
            job = await client.enqueue("record")

            async def done() -> bool:
                return (await client.get(job)).state.value == "completed"

            await until(done, what="a job run by the pod")

        async def refused() -> bool:
            return "Redis unavailable" in bad.proc.output()

        await until(refused, what="the wrong password refused")
        assert not await bad.ready()
        for p in (good, bad):
            texts = [p.proc.output(), (await p.get("/status"))[1], (await p.get("/metrics"))[1]]
            p.proc.terminate()
            texts.append(p.proc.output())
            for text in texts:
                assert leaked(text, password) == []
                assert leaked(text, password[::-1]) == []
