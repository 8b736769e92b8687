"""One container as a local process group: start, watch, stop with a grace period."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path


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
        log_path: Path,
        procs_dir: Path,
        label: str,
    ) -> None:
        exe = argv[0]
        if not os.path.isabs(exe) or not os.path.exists(exe):
            # Image paths such as /usr/local/bin/jobfleet do not exist here: resolve the
            # basename on the pod's PATH (the checkout's venv first).
            found = shutil.which(os.path.basename(exe), path=env.get("PATH"))
            if found is None:
                raise FileNotFoundError(f"{exe!r} not found on PATH {env.get('PATH')!r}")
            exe = found
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.label = label
        self.started_at = time.time()
        with open(log_path, "ab", buffering=0) as log:
            log.write(f"=== harness: start {label}: {_short(argv)}\n".encode())
            self.proc = subprocess.Popen(
                [exe, *argv[1:]],
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pgid = self.proc.pid
        # A marker per live group lets `cluster.sh down` kill leftovers if the harness dies.
        self._marker = procs_dir / str(self.pgid)
        procs_dir.mkdir(parents=True, exist_ok=True)
        self._marker.touch()
        self._log_path = log_path

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
        # Children left behind by the main process die with the container, as in a cgroup.
        self.signal(signal.SIGKILL)
        self._marker.unlink(missing_ok=True)

    def _note(self, text: str) -> None:
        with open(self._log_path, "ab", buffering=0) as log:
            log.write(f"=== harness: {self.label}: {text}\n".encode())
