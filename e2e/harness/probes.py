"""Container probes (httpGet, tcpSocket, exec) with kubelet thresholds, aimed at loopback."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
from collections.abc import Mapping
from typing import Any

Obj = dict[str, Any]


def probe_once(probe: Obj, port: int, env: Mapping[str, str], cwd: str) -> bool:
    """One probe attempt. Network probes go to the container's harness-assigned port."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            get = probe["httpGet"]
            scheme = str(get.get("scheme", "HTTP")).upper()
            conn: http.client.HTTPConnection
            if scheme == "HTTPS":
                # kubelet does not verify probe certificates either.
                ctx = ssl._create_unverified_context()
                conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ctx)
            else:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
            try:
                conn.request("GET", get.get("path") or "/", headers=headers)
                status = conn.getresponse().status
            finally:
                conn.close()
            return 200 <= status < 400
        if "tcpSocket" in probe:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout):
                return True
        if "exec" in probe:
            done = subprocess.run(
                probe["exec"]["command"],
                env=dict(env),
                cwd=cwd,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
            return done.returncode == 0
        if "grpc" in probe:
            # No gRPC health client here; a listening port is the closest honest check.
            with socket.create_connection(("127.0.0.1", port), timeout=timeout):
                return True
    except (OSError, http.client.HTTPException, subprocess.TimeoutExpired):
        return False
    return False


class Prober:
    """Tracks one probe of one running container: when it is due, and its current verdict."""

    def __init__(self, probe: Obj, max_period: float, started_at: float, initial: bool) -> None:
        self.probe = probe
        self.period = min(float(probe.get("periodSeconds", 10)), max_period)
        self.success_threshold = int(probe.get("successThreshold", 1))
        self.failure_threshold = int(probe.get("failureThreshold", 3))
        self.next_at = started_at + float(probe.get("initialDelaySeconds", 0))
        self.result = initial
        self._successes = 0
        self._failures = 0

    def tick(self, now: float, port: int, env: Mapping[str, str], cwd: str) -> bool:
        """Probe if due; returns the verdict after applying success/failure thresholds."""
        if now < self.next_at:
            return self.result
        self.next_at = now + self.period
        if probe_once(self.probe, port, env, cwd):
            self._successes += 1
            self._failures = 0
            if self._successes >= self.success_threshold:
                self.result = True
        else:
            self._failures += 1
            self._successes = 0
            if self._failures >= self.failure_threshold:
                self.result = False
        return self.result

    @property
    def failed(self) -> bool:
        """Whether the failure threshold has been reached (liveness/startup: restart)."""
        return self._failures >= self.failure_threshold
