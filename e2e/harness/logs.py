"""Pod output: one readable file per pod, plus CRI-format files per container for `kubectl logs`."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import BinaryIO


def _cri_time() -> bytes:
    # CRI log lines start with an RFC 3339 timestamp with nanosecond precision.
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%f").encode() + b"000Z"


class PodLog:
    """Thread-safe sink for every container of one pod.

    `<logs>/<ns>_<pod>.log` interleaves all containers with `=== harness:` markers (for people
    and `support.pod_log`); `<logs>/cri/<ns>_<pod>/<container>.log` is what kwok serves to
    `kubectl logs` (see the Logs object the harness creates per pod).
    """

    def __init__(self, logs_dir: Path, key: str) -> None:
        self.path = logs_dir / f"{key}.log"
        self.cri_dir = logs_dir / "cri" / key
        self.cri_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._main: BinaryIO = open(self.path, "ab", buffering=0)  # noqa: SIM115 - lives with the pod
        self._cri: dict[str, BinaryIO] = {}
        self._closed = False

    def cri_path(self, container: str) -> Path:
        """The CRI log file of one container."""
        return self.cri_dir / f"{container}.log"

    def write(self, container: str, stream: str, line: bytes) -> None:
        """One line of a container's stdout or stderr."""
        if not line.endswith(b"\n"):
            line += b"\n"
        with self._lock:
            if self._closed:  # a straggler that outlived its container's process group
                return
            self._main.write(line)
            cri = self._cri.get(container)
            if cri is None:
                cri = self._cri[container] = open(self.cri_path(container), "ab", buffering=0)  # noqa: SIM115
            cri.write(_cri_time() + f" {stream} F ".encode() + line)

    def note(self, text: str) -> None:
        """A harness marker line (readable log only)."""
        with self._lock:
            if not self._closed:
                self._main.write(f"=== harness: {text}\n".encode())

    def close(self) -> None:
        """Close every file (after all processes of the pod have stopped)."""
        with self._lock:
            self._closed = True
            for f in [self._main, *self._cri.values()]:
                f.close()
            self._cri.clear()
