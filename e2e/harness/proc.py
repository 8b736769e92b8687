"""One container as a local process group: start, watch, stop with a grace period."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from .logs import PodLog


def _short(argv: list[str], limit: int = 300) -> str:
    """The command line for the log, long inline scripts abbreviated."""
    text = shlex.join(argv)
    return text if len(text) <= limit else text[:limit] + " …"


class ProcessGroup:
    """A started container process; it leads its own process group so stop() reaches children."""

    def __init__(
        self,
        argv: list[str],
        env: Mapping[str, str],
        cwd: Path,
        log: PodLog,
        container: str,
        procs_dir: Path,
    ) -> None:
        exe = argv[0]
        if not os.path.isabs(exe) or not os.path.exists(exe):
            # Image paths such as /usr/local/bin/jobfleet do not exist here: resolve the
            # basename on the pod's PATH (the checkout's venv first).
            found = shutil.which(os.path.basename(exe), path=env.get("PATH"))
            if found is None:
                raise FileNotFoundError(f"{exe!r} not found on PATH {env.get('PATH')!r}")
            exe = found
        self.container = container
        self.started_at = time.time()
        self._log = log
        log.note(f"start {container}: {_short(argv)}")
        self.proc = subprocess.Popen(
            [exe, *argv[1:]],
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.pgid = self.proc.pid
        # A marker per live group lets `cluster.sh down` kill leftovers if the harness dies.
        self._marker = procs_dir / str(self.pgid)
        procs_dir.mkdir(parents=True, exist_ok=True)
        self._marker.touch()
        # Output is pumped line by line (not inherited) so each line can be stamped for the
        # CRI log that `kubectl logs` reads, and still go to the pod's readable log.
        self._pumps = [
            threading.Thread(
                target=self._pump, args=(pipe, name), daemon=True, name=f"log-{container}"
            )
            for pipe, name in ((self.proc.stdout, "stdout"), (self.proc.stderr, "stderr"))
        ]
        for t in self._pumps:
            t.start()

    def _pump(self, pipe: IO[bytes] | None, stream: str) -> None:
        assert pipe is not None
        with pipe:
            for line in iter(pipe.readline, b""):
                self._log.write(self.container, stream, line)

    @property
    def pid(self) -> int:
        """The container's main process id."""
        return self.proc.pid

    def poll(self) -> int | None:
        """Exit code of the main process, or None while it runs."""
        code = self.proc.poll()
        if code is not None:
            self._reap_group()
        return code

    def signal(self, sig: int) -> None:
        """Send sig to the whole group (a container's processes die together)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    def stop(self, grace: float) -> int:
        """SIGTERM, wait up to grace seconds, then SIGKILL (as a kubelet); returns the exit code."""
        if self.proc.poll() is None:
            self._note(f"SIGTERM (grace {grace:g}s)")
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=max(grace, 0))
            except subprocess.TimeoutExpired:
                self._note("grace period over: SIGKILL")
                self.signal(signal.SIGKILL)
                self.proc.wait()
        self._reap_group()
        return self.proc.returncode

    def _reap_group(self) -> None:
        # Children left behind by the main process die with the container, as in a cgroup;
        # that also closes the last writers of its pipes, so the pumps finish.
        self.signal(signal.SIGKILL)
        self._marker.unlink(missing_ok=True)
        for t in self._pumps:
            t.join(timeout=5)

    def _note(self, text: str) -> None:
        self._log.note(f"{self.container}: {text}")
