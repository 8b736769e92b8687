"""Shared helpers of the e2e tier: paths, polling, and the objects the fixtures hand out."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

E2E = Path(__file__).resolve().parent
REPO = E2E.parent
RUN = E2E / ".run"
MODE = os.environ.get("E2E_CLUSTER", "kwok")
NAMESPACE_LABEL = "jobfleet.dev/e2e"


def versions() -> dict[str, str]:
    """The pinned tool versions (e2e/tools/versions.env)."""
    text = (E2E / "tools" / "versions.env").read_text()
    return dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )


def tool_paths() -> dict[str, str]:
    """TOOL_<NAME> → path of every pinned tool (`e2e/tools/build.sh --print-env`)."""
    out = subprocess.run(
        ["bash", str(E2E / "tools" / "build.sh"), "--print-env"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def redis_ping(port: int) -> bool:
    """Whether a redis-server on this loopback port answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def create_namespace(kube: Kube, name: str) -> None:
    """A namespace labelled for the harness (it runs the processes of its pods)."""
    kube.core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={NAMESPACE_LABEL: "true"})
        )
    )


def namespace_gone(core: client.CoreV1Api, namespace: str) -> bool:
    """Whether the namespace is deleted (404), not merely terminating."""
    try:
        core.read_namespace(namespace)
    except client.ApiException as e:
        return e.status == 404
    return False


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 120.0, interval: float = 0.5
) -> Any:
    """Poll check() until it returns something truthy; fail with `what` after a generous deadline.

    The deadline only bounds a hang: tests assert eventual conditions, never durations.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as e:  # the API may briefly refuse while objects settle
            last_error = e
        time.sleep(interval)
    raise AssertionError(
        f"timed out waiting for {what}" + (f" (last error: {last_error!r})" if last_error else "")
    )


@dataclasses.dataclass(frozen=True)
class Tools:
    """The client binaries the suite may shell out to (pinned builds, or PATH on kind)."""

    kubectl: Path
    helm: Path
    kubeconfig: Path

    def kubectl_run(self, *args: str, check: bool = True, input: str | None = None) -> str:
        """Run kubectl against the e2e cluster; returns stdout."""
        return self._run(self.kubectl, args, check, input)

    def helm_run(self, *args: str, check: bool = True) -> str:
        """Run helm against the e2e cluster; returns stdout."""
        return self._run(self.helm, args, check, None)

    def _run(self, exe: Path, args: tuple[str, ...], check: bool, input: str | None) -> str:
        done = subprocess.run(
            [str(exe), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            input=input,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{exe.name} {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout


@dataclasses.dataclass
class Kube:
    """The cluster under test: kubeconfig path, an ApiClient, and typed API shortcuts."""

    kubeconfig: Path
    api_client: client.ApiClient
    mode: str

    @property
    def core(self) -> client.CoreV1Api:
        """core/v1."""
        return client.CoreV1Api(self.api_client)

    @property
    def apps(self) -> client.AppsV1Api:
        """apps/v1."""
        return client.AppsV1Api(self.api_client)

    @property
    def custom(self) -> client.CustomObjectsApi:
        """Custom resources (Queue)."""
        return client.CustomObjectsApi(self.api_client)

    @property
    def harness(self) -> bool:
        """Whether pods run as local processes (kwok) rather than in containers (kind)."""
        return self.mode == "kwok"


@dataclasses.dataclass
class RedisServer:
    """A Redis for one test: `url` for the test process, `pod_url` for pods in the cluster."""

    url: str
    pod_url: str
    port: int
    stop: Callable[[], None]
    start: Callable[[], None]


def pod_log(kube: Kube, namespace: str, pod: str) -> str:
    """A pod's output: the harness's log file on kwok, the kubelet's log API on kind."""
    if kube.harness:
        path = RUN / "logs" / f"{namespace}_{pod}.log"
        return path.read_text() if path.exists() else ""
    try:
        return str(kube.core.read_namespaced_pod_log(pod, namespace))
    except client.ApiException:
        return ""
