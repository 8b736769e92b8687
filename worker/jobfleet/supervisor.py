"""The supervisor of `jobfleet worker --processes N`: N worker processes, one port per pod.

Each child is an ordinary `jobfleet worker` (its own worker id, leases and Redis
connection), started as `python -m jobfleet worker --supervised-by PID` with its settings on
stdin (so no flag or variable of the parent's can make it a supervisor too, and no URL lands
on a command line). A child serves its own health port on loopback and writes the port
number to a file; the supervisor polls the children and serves the pod's `/healthz`,
`/readyz` (every child ready), `/status` (per child) and `/metrics` (prometheus-client's
multiprocess aggregate, jobfleet.metrics) on the pod's port.

A child that dies is just a dead worker: its jobs come back through their leases, and the
supervisor starts another after a backoff. SIGTERM goes to every child, each drains as a
single worker does, and the supervisor exits after the last one. Children get SIGTERM from
Linux if the supervisor dies (`process_pool.die_with`), so none outlives it.

Each supervisor keeps its scratch (port files, the metrics directory) in
`$TMPDIR/jobfleet-metrics/<pid>.<kind>.<random>` and removes it when it exits; one killed with
SIGKILL cannot, so every start first removes the directories whose supervisor is gone.

`ChildSupervisor` is the part every `--processes N` command shares (slots, restarts and
their backoff, signals, the metrics directory); `jobfleet admin --processes N` is another
(jobfleet.admin.processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import status
from .backoff import Backoff
from .settings import WorkerSettings

if TYPE_CHECKING:  # imported when a supervisor runs: `jobfleet enqueue` needs neither
    import aiohttp
    from prometheus_client import CollectorRegistry

    from .health import HealthServer

log = logging.getLogger("jobfleet.supervisor")

CHILD_FLAG = "--supervised-by"
PORT_FILE_FLAG = "--port-file"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
SCRATCH_DIR = "jobfleet-metrics"  # under $TMPDIR: one directory per supervisor
# Between restarts of one child: 1 s, 2 s, 4 s ... 30 s, afresh once it ran STEADY seconds.
RESTART = Backoff(base=1.0, cap=30.0, jitter="none")
STEADY = 60.0
# More restarts than this within RESTART_WINDOW seconds, summed over the children, and the
# supervisor gives up (exit 1): the pod restarts, visibly, instead of looping inside.
MAX_RESTARTS = 10
RESTART_WINDOW = 300.0
POLL_INTERVAL = 1.0  # how often the children's /readyz and /status are read
POLL_TIMEOUT = 2.0
# Exit codes of `jobfleet` for bad settings or a failed start (cli.EXIT_ERROR, EXIT_USAGE):
# a child that exits with one before it was ever ready would fail again the same way.
FATAL_CODES = (1, 2)
EXIT_CHILD_FAILED = 1


@dataclass
class Child:
    """One worker process slot of the pod (a restart keeps the slot, not the pid)."""

    index: int
    port_file: Path
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    port: int | None = None
    ready: bool = False
    alive: bool = True
    was_ready: bool = False
    restarts: int = 0
    failures: int = 0  # deaths in a row without a steady run (the backoff's count)
    state: str = "starting"
    doc: dict[str, Any] | None = None
    exit_code: int | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "pid": self.proc.pid if self.proc is not None else None,
            "state": self.state,
            "ready": self.ready,
            "restarts": self.restarts,
            "status": self.doc,
        }


class ChildSupervisor:
    """Keeps `processes` children of one `jobfleet` command running until SIGTERM (a dead
    one restarted after a backoff); `run()` returns the exit code. A subclass says what a
    child runs (`child_args`, `child_input`) and how it learns that a child is ready
    (`poll`), and may serve something of its own while the children run (`open`, `close`)."""

    kind = "child"  # for the log: "<kind> process 1 ..."
    restart_note = ""  # what a child's death means, for the log line of its restart

    def __init__(
        self,
        processes: int,
        *,
        log_level: str = "INFO",
        scratch: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`scratch`: where the supervisors' directories live (default `$TMPDIR/` +
        SCRATCH_DIR); `clock`: monotonic seconds (restart backoff and rate cap)."""
        self.log_level = log_level
        self.stopping = False
        self.clock = clock
        self._root = make_scratch(scratch or scratch_root(), self.kind)
        self.metrics_dir = self._root / "metrics"
        self.metrics_dir.mkdir()
        self._stop = asyncio.Event()
        self._fatal: int | None = None
        self._deaths: deque[float] = deque()
        self.children = [Child(i, self._root / f"child-{i}.port") for i in range(processes)]

    # -- what a subclass says -----------------------------------------------------------

    def child_args(self, child: Child) -> list[str]:
        """The `jobfleet` subcommand and flags of a child (after `--log-level`)."""
        raise NotImplementedError

    def child_input(self) -> bytes:
        """What a child reads on stdin: its settings (never on its command line)."""
        raise NotImplementedError

    def child_env(self) -> dict[str, str]:
        """Variables a child gets besides the supervisor's own and the metrics directory."""
        return {}

    async def open(self) -> None:
        """Before the children start: what the supervisor serves itself."""

    async def close(self) -> None:
        """After the last child exited."""

    async def poll(self) -> None:
        """Runs while the children do: keeps each child's `ready` and `was_ready` current."""
        raise NotImplementedError

    # -- lifecycle ----------------------------------------------------------------------

    def stop(self) -> None:
        """Begin the graceful stop: every child gets SIGTERM and drains."""
        if self.stopping:
            return
        self.stopping = True
        log.info("stopping: SIGTERM to %d %s processes", len(self.children), self.kind)
        for child in self.children:
            self._signal(child, signal.SIGTERM)
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        try:
            await self.open()
            poller = asyncio.create_task(self.poll(), name=f"jobfleet-{self.kind}-supervisor")
            try:
                await asyncio.gather(*(self._keep(c) for c in self.children))
            finally:
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)
        finally:
            for child in self.children:  # only on an error of our own: none should remain
                self._signal(child, signal.SIGKILL)
            await self.close()
            shutil.rmtree(self._root, ignore_errors=True)
            _MINE.discard(self._root.name)
        if self._fatal is not None:
            return self._fatal
        failed = [c for c in self.children if c.exit_code not in (0, None)]
        for c in failed:
            log.error("%s process %d exited with code %s", self.kind, c.index, c.exit_code)
        return EXIT_CHILD_FAILED if failed else 0

    def registry(self) -> CollectorRegistry:
        """The children's metrics summed (prometheus-client's multiprocess mode)."""
        return multiprocess_registry(self.metrics_dir)

    # -- one child ----------------------------------------------------------------------

    async def _keep(self, child: Child) -> None:
        """Run the child, and run it again when it dies, until the pod stops."""
        while not self.stopping:
            await self._start(child)
            assert child.proc is not None
            code = await child.proc.wait()
            # A stop may have begun while it ran (mypy would keep `stopping` False here).
            if self._gone(child, code):
                return
            delay = self._restart_delay(child, code)
            if delay is None:
                return
            child.state = "restarting"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    async def _start(self, child: Child) -> None:
        child.port_file.unlink(missing_ok=True)
        env = {**os.environ, METRICS_DIR_ENV: str(self.metrics_dir), **self.child_env()}
        child.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jobfleet",
            "--log-level",
            self.log_level,
            *self.child_args(child),
            stdin=asyncio.subprocess.PIPE,
            env=env,
        )
        assert child.proc.stdin is not None
        child.proc.stdin.write(self.child_input())
        with contextlib.suppress(ConnectionError):
            await child.proc.stdin.drain()
        child.proc.stdin.close()
        if self.stopping:  # the stop's SIGTERMs went out while this one was being started
            self._signal(child, signal.SIGTERM)
        child.started = self.clock()
        child.port, child.ready, child.alive, child.doc = None, False, True, None
        child.was_ready = False  # per run: a start that fails fails again (FATAL_CODES)
        child.state = "starting"
        log.info("%s process %d started (pid %d)", self.kind, child.index, child.proc.pid)

    def _gone(self, child: Child, code: int) -> bool:
        """Note the child's exit; True when the pod is stopping (no restart)."""
        from prometheus_client import multiprocess

        assert child.proc is not None
        # Its live gauges (jobs in flight) leave the sums; its counters stay in them.
        multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]  # untyped upstream
            child.proc.pid, str(self.metrics_dir)
        )
        child.exit_code = code
        child.ready, child.port, child.doc, child.alive = False, None, None, True
        child.state = "exited"
        if self.stopping:
            log.info(
                "%s process %d (pid %d) exited: %d", self.kind, child.index, child.proc.pid, code
            )
        return self.stopping

    def _restart_delay(self, child: Child, code: int) -> float | None:
        """Seconds before the child starts again, or None: the supervisor gives up."""
        pid = child.proc.pid if child.proc is not None else None
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        now = self.clock()
        if code in FATAL_CODES and not child.was_ready:
            log.error(
                "%s process %d %s before it was ready; stopping the pod",
                self.kind,
                child.index,
                how,
            )
            self._give_up(code)
            return None
        self._deaths.append(now)
        while self._deaths and now - self._deaths[0] > RESTART_WINDOW:
            self._deaths.popleft()
        if len(self._deaths) > MAX_RESTARTS:
            log.error(
                "%s process %d %s: %d restarts within %g s; stopping the pod",
                self.kind,
                child.index,
                how,
                len(self._deaths) - 1,
                RESTART_WINDOW,
            )
            self._give_up(EXIT_CHILD_FAILED)
            return None
        child.failures = 1 if now - child.started >= STEADY else child.failures + 1
        child.restarts += 1
        delay = RESTART.delay(child.failures)
        log.warning(
            "%s process %d (pid %s) %s%s; restarting it in %.0f s",
            self.kind,
            child.index,
            pid,
            how,
            self.restart_note,
            delay,
        )
        return delay

    def _give_up(self, code: int) -> None:
        if self._fatal is None:
            self._fatal = code
        self.stop()

    @staticmethod
    def _signal(child: Child, sig: int) -> None:
        if child.proc is not None and child.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(sig)


class Supervisor(ChildSupervisor):
    """`jobfleet worker --processes N`: the children are workers; the supervisor serves the
    pod's health, status and metrics port and reads each child's own health port."""

    kind = "worker"
    restart_note = "; its jobs come back when their leases expire"

    def __init__(self, settings: WorkerSettings, log_level: str = "INFO") -> None:
        super().__init__(settings.processes, log_level=log_level)
        self.settings = settings
        self.http: HealthServer | None = None
        # What each child reads on stdin: the same settings, as one worker on loopback.
        self._child_settings = self.settings.model_copy(
            update={"processes": 1, "http_host": "127.0.0.1", "http_port": 0}
        ).model_dump_json()

    def child_args(self, child: Child) -> list[str]:
        return ["worker", CHILD_FLAG, str(os.getpid()), PORT_FILE_FLAG, str(child.port_file)]

    def child_input(self) -> bytes:
        return self._child_settings.encode()

    def child_env(self) -> dict[str, str]:
        # The child reads its settings from stdin alone; $JOBFLEET_REDIS_URL is for its error
        # messages: the URL they name, and the password they must redact (cli._secrets).
        return {"JOBFLEET_REDIS_URL": self.settings.redis_url}

    async def open(self) -> None:
        from .health import HealthServer

        if self.settings.http_port is None:
            return
        self.http = HealthServer(
            self.settings.http_host,
            self.settings.http_port,
            alive=lambda: all(c.alive for c in self.children),
            ready=self.ready,
            status=self.status,
            registry=self.registry(),
        )
        await self.http.start()
        log.info(
            "supervisor %d: %d worker processes, health and metrics on port %d",
            os.getpid(),
            len(self.children),
            self.http.port,
        )

    async def close(self) -> None:
        if self.http is not None:
            await self.http.stop()

    def ready(self) -> bool:
        """The pod may get work: every child says it may."""
        return not self.stopping and all(c.ready for c in self.children)

    def status(self) -> dict[str, Any]:
        return status.pod_document(
            processes=len(self.children),
            stopping=self.stopping,
            children=[c.describe() for c in self.children],
        )

    # -- what the children report -------------------------------------------------------

    async def poll(self) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=POLL_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await asyncio.gather(*(self._read(session, c) for c in self.children))
                await asyncio.sleep(POLL_INTERVAL)

    async def _read(self, session: aiohttp.ClientSession, child: Child) -> None:
        import aiohttp

        proc = child.proc
        if proc is None or proc.returncode is not None:
            return
        if child.port is None:
            with contextlib.suppress(OSError, ValueError):
                child.port = int(child.port_file.read_text())
            if child.port is None:
                return
        base = f"http://127.0.0.1:{child.port}"
        try:
            async with session.get(f"{base}/healthz") as r:
                alive = r.status == 200
            async with session.get(f"{base}/readyz") as r:
                ready = r.status == 200
            async with session.get(f"{base}/status") as r:
                doc = await r.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return  # starting, stopping or busy: keep what was last known
        if child.proc is not proc or proc.returncode is not None:
            return  # it died while we asked
        child.alive, child.ready, child.doc = alive, ready, doc
        child.was_ready = child.was_ready or ready
        child.state = "stopping" if doc.get("stopping") else "running"


# Names of the scratch directories this process made and still uses (tests run several
# supervisors in one process; a directory of our pid that is not in here was a previous
# process's, e.g. pid 1 of the container before a restart).
_MINE: set[str] = set()


def scratch_root() -> Path:
    return Path(tempfile.gettempdir()) / SCRATCH_DIR


def make_scratch(parent: Path, kind: str) -> Path:
    """A new directory of this supervisor under `parent`, once those of supervisors that
    are gone (killed with SIGKILL: they could not remove their own) have been removed."""
    parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_scratch(parent):
        log.info("removing %s: its supervisor is gone", stale)
        shutil.rmtree(stale, ignore_errors=True)
    path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}.{kind}.", dir=parent))
    _MINE.add(path.name)
    return path


def stale_scratch(parent: Path) -> list[Path]:
    """The directories under `parent` named after a pid that no process has (and those of
    this pid that this process did not make); other names are left alone."""
    from .process_pool import pid_alive

    out: list[Path] = []
    for entry in sorted(parent.iterdir()):
        pid, dot, _ = entry.name.partition(".")
        if not dot or not pid.isdigit() or not entry.is_dir():
            continue
        mine = int(pid) == os.getpid()
        if (mine and entry.name not in _MINE) or (not mine and not pid_alive(int(pid))):
            out.append(entry)
    return out


def multiprocess_registry(directory: Path) -> CollectorRegistry:
    """A registry that reads the metrics every process wrote under `directory`: counters and
    histograms summed (those of dead processes too), gauges by their multiprocess_mode."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]  # untyped upstream
        registry, path=str(directory)
    )
    return registry


def announce(port_file: str) -> Callable[[int], None]:
    """The `on_listening` of a supervised child: write its port where the supervisor looks
    (through a rename, so that it never reads half a number)."""

    def write(port: int) -> None:
        tmp = f"{port_file}.tmp"
        Path(tmp).write_text(str(port))
        os.replace(tmp, port_file)

    return write


def watch_parent(parent: int) -> None:
    """In a child: SIGTERM (a graceful drain) when the supervisor dies, even by SIGKILL."""
    from .process_pool import die_with

    die_with(parent, signal.SIGTERM)


__all__ = [
    "CHILD_FLAG",
    "PORT_FILE_FLAG",
    "Child",
    "ChildSupervisor",
    "Supervisor",
    "announce",
    "multiprocess_registry",
    "watch_parent",
]
