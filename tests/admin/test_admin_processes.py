"""`jobfleet admin --processes 2`: one supervisor, two real server processes on one port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from admin_harness import Tokens
from jobfleet.admin.app import PROCESS_HEADER
from jobfleet.supervisor import SCRATCH_DIR
from waiting import alive, until

pytestmark = pytest.mark.slow

PORT_LINE = re.compile(r"supervisor (\d+): 2 admin processes on http://127\.0\.0\.1:(\d+)/api/v1")
ENQUEUES = 'jobfleet_admin_requests_total{method="POST",route="/api/v1/queues/{queue}/jobs",'


class AdminPod:
    """The supervisor's process, its port, and calls over a new connection each (the
    kernel picks the child per connection)."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc, self.log, self.port = proc, log, 0

    async def started(self) -> None:
        async def port_logged() -> bool:
            m = PORT_LINE.search(self.log.read_text())
            assert self.proc.poll() is None, self.log.read_text()
            if m:
                assert int(m.group(1)) == self.proc.pid
                self.port = int(m.group(2))
            return bool(m)

        await until(port_logged, what="the supervisor's port")

    async def call(
        self, method: str, path: str, token: str | None = None, json: object = None
    ) -> tuple[int, str, str]:
        """(status, the pid that answered, body text) over a connection of its own."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connector = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as s,
            s.request(
                method, f"http://127.0.0.1:{self.port}{path}", headers=headers, json=json
            ) as r,
        ):
            return r.status, r.headers.get(PROCESS_HEADER, ""), await r.text()

    async def pids(self, want: int = 2) -> set[str]:
        """The pids answering /healthz, once `want` different ones have answered."""
        seen: set[str] = set()

        async def enough() -> bool:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                status, pid, _ = await self.call("GET", "/healthz")
            except aiohttp.ClientConnectionError:
                return False
            if status == 200:
                seen.add(pid)
            return len(seen) >= want

        await until(enough, what=f"{want} server processes to answer")
        return seen

    def children(self) -> set[str]:
        out = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    out.add(entry.name)
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def start_admin(redis_url: str, tokens_file: Path, log: Path, **env: str) -> AdminPod:
    """`jobfleet admin --processes 2` on a free port; `env` added to a clean environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JOBFLEET_", "PROMETHEUS"))}
    args = ["admin", "--processes", "2", "--port", "0", "--tokens", str(tokens_file)]
    args += ["--redis-url", redis_url]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobfleet", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**clean, **env},
        )
    return AdminPod(proc, log)


@pytest.fixture
def pod(redis_url: str, tokens_file: Path, tmp_path: Path) -> Iterator[AdminPod]:
    started = start_admin(redis_url, tokens_file, tmp_path / "admin.log")
    yield started
    started.kill()


def enqueues_counted(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(ENQUEUES) and 'status="201"' in line
    )


async def scrape_each(pod: AdminPod) -> dict[str, float]:
    """The enqueues /metrics counts, as each child answers it (both must have answered)."""
    counted: dict[str, float] = {}

    async def both() -> bool:
        status, pid, text = await pod.call("GET", "/metrics")
        assert status == 200
        counted[pid] = enqueues_counted(text)
        return len(counted) == 2

    await until(both, what="both children to answer /metrics")
    return counted


async def test_two_processes_share_the_port_and_sum_their_metrics(pod, tokens: Tokens) -> None:
    await pod.started()
    pids = await pod.pids()
    assert pids == pod.children()  # both are the supervisor's children, and both answer
    served: dict[str, int] = {}
    for i in range(40):
        status, pid, _ = await pod.call(
            "POST", "/api/v1/queues/q/jobs", tokens.admin, {"name": "n", "payload": i}
        )
        assert status == 201
        served[pid] = served.get(pid, 0) + 1
    assert set(served) <= pids and sum(served.values()) == 40
    status, _, body = await pod.call("GET", "/api/v1/queues/q", tokens.viewer)
    assert status == 200 and '"waiting":40' in body
    # Whichever child answers the scrape, it reports the two children's requests together.
    assert await scrape_each(pod) == dict.fromkeys(pids, 40.0)

    pod.proc.send_signal(signal.SIGTERM)
    assert pod.proc.wait(timeout=30) == 0
    for pid in pids:
        await until(lambda pid=pid: _gone(int(pid)), what=f"child {pid} to exit")


async def _gone(pid: int) -> bool:
    return not alive(pid)


async def test_a_killed_child_is_restarted_and_the_other_serves_meanwhile(
    pod, tokens: Tokens
) -> None:
    await pod.started()
    pids = await pod.pids()
    victim, survivor = sorted(pids)
    os.kill(int(victim), signal.SIGKILL)
    await until(lambda: _gone(int(victim)), what="the killed child to be reaped")
    # The restart waits a second (supervisor.RESTART): these land on the survivor meanwhile.
    for i in range(10):
        status, pid, _ = await pod.call(
            "POST", "/api/v1/queues/q/jobs", tokens.admin, {"name": "n", "payload": i}
        )
        assert status == 201 and pid != victim
    fresh = await pod.pids()
    assert survivor in fresh and victim not in fresh
    assert fresh == pod.children()
    text = pod.log.read_text()
    assert re.search(rf"admin process \d \(pid {victim}\) was killed by signal 9", text), text
    # The dead child's counters stay in the sums: the rate behind a restart stays monotonic.
    assert set((await scrape_each(pod)).values()) == {10.0}
    pod.proc.send_signal(signal.SIGTERM)
    assert pod.proc.wait(timeout=30) == 0


async def test_each_child_reloads_the_tokens(pod, tokens_file: Path, tokens: Tokens) -> None:
    await pod.started()
    pids = await pod.pids()
    new = Tokens()
    staged = tokens_file.with_suffix(".new")
    staged.write_text(new.file_text())
    os.replace(staged, tokens_file)
    answered: dict[str, tuple[int, int]] = {}

    async def every_child_swapped() -> bool:
        old_status, pid, _ = await pod.call("GET", "/api/v1/whoami", tokens.admin)
        new_status, pid2, _ = await pod.call("GET", "/api/v1/whoami", new.admin)
        answered[pid] = (old_status, answered.get(pid, (0, 0))[1])
        answered[pid2] = (answered.get(pid2, (0, 0))[0], new_status)
        return set(answered) == pids and all(v == (401, 200) for v in answered.values())

    await until(every_child_swapped, timeout=30, what="both children to use the new tokens")
    pod.proc.send_signal(signal.SIGTERM)
    assert pod.proc.wait(timeout=30) == 0


async def test_the_directory_of_a_supervisor_killed_with_sigkill_goes_at_the_next_start(
    redis_url: str, tokens_file: Path, tmp_path: Path
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    parent = tmp / SCRATCH_DIR
    first = start_admin(redis_url, tokens_file, tmp_path / "first.log", TMPDIR=str(tmp))
    second: AdminPod | None = None
    try:
        await first.started()
        children = await first.pids()
        [left] = list(parent.iterdir())
        assert left.name.startswith(f"{first.proc.pid}.admin.")
        first.kill()
        for pid in children:
            await until(lambda pid=pid: _gone(int(pid)), what=f"child {pid} to exit")
        assert left.exists()  # nobody could remove it
        second = start_admin(redis_url, tokens_file, tmp_path / "second.log", TMPDIR=str(tmp))
        await second.started()
        [kept] = list(parent.iterdir())
        assert kept.name.startswith(f"{second.proc.pid}.admin.")
    finally:
        first.kill()
        if second is not None:
            second.kill()
