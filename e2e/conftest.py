"""Fixtures of the e2e tier: cluster, harness, kube, namespace, redis, tools.

The session brings the cluster up once (``e2e/cluster.sh up``) unless ``E2E_REUSE=1`` says
one is already running at ``$KUBECONFIG`` (``e2e/run.sh`` does that), and tears it down at
the end unless ``E2E_KEEP=1``. With ``E2E_CLUSTER=kwok`` (default) the pods-as-processes
harness runs for the whole session; with ``E2E_CLUSTER=kind`` real kubelets run the pods.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from jobfleet.process_pool import pid_alive
from kubernetes import client, config

from .operator_pod import install_crd, run_operator
from .support import (
    E2E,
    MODE,
    REPO,
    RUN,
    Kube,
    RedisServer,
    Tools,
    create_namespace,
    namespace_gone,
    pod_log,
    redis_ping,
    tool_paths,
    wait_for,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def tools(cluster: Path) -> Tools:
    """Paths of kubectl and helm (pinned builds; on kind, PATH is used if they are missing)."""
    paths = tool_paths()

    def pick(var: str, name: str) -> Path:
        built = Path(paths.get(var, ""))
        if built.is_file():
            return built
        found = shutil.which(name)
        if not found:
            pytest.fail(f"{name} not found: run `bash e2e/tools/build.sh`")
        return Path(found)

    return Tools(
        kubectl=pick("TOOL_KUBECTL", "kubectl"), helm=pick("TOOL_HELM", "helm"), kubeconfig=cluster
    )


@pytest.fixture(scope="session")
def cluster() -> Iterator[Path]:
    """The kubeconfig of a running cluster: reused (E2E_REUSE=1) or brought up for the session."""
    reuse = os.environ.get("E2E_REUSE") == "1"
    kubeconfig = (
        Path(os.environ.get("KUBECONFIG") or RUN / "kubeconfig") if reuse else RUN / "kubeconfig"
    )
    if not reuse:
        missing = [p for k, p in tool_paths().items() if k != "TOOL_KIND" and not Path(p).is_file()]
        if MODE == "kwok" and missing:
            # A cold build takes ~10 min, longer than the per-test timeout: do it outside.
            pytest.exit(
                f"tools not built ({missing[0]}): run `bash e2e/run.sh` "
                "or `bash e2e/tools/build.sh` first",
                2,
            )
        subprocess.run(["bash", str(E2E / "cluster.sh"), "up"], check=True)
    try:
        yield kubeconfig
    finally:
        if not reuse and os.environ.get("E2E_KEEP") != "1":
            subprocess.run(["bash", str(E2E / "cluster.sh"), "down"], check=False)


@pytest.fixture(scope="session")
def harness(cluster: Path) -> Iterator[int | None]:
    """On kwok, the pods-as-processes harness for the whole session (its pid); None on kind."""
    if MODE != "kwok":
        yield None
        return
    pidfile = RUN / "harness.pid"
    if pidfile.exists() and pid_alive(int(pidfile.read_text())):
        yield int(pidfile.read_text())  # someone (a developer's shell) already runs one
        return
    (RUN / "logs").mkdir(parents=True, exist_ok=True)
    with open(RUN / "logs" / "harness.log", "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "e2e.harness",
                "--kubeconfig",
                str(cluster),
                "--run-dir",
                str(RUN),
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for("the harness to start", lambda: pidfile.exists() or proc.poll() is not None, 30)
    if proc.poll() is not None:
        pytest.fail(f"harness exited with {proc.returncode}; see {RUN / 'logs' / 'harness.log'}")
    try:
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def kube(cluster: Path, harness: int | None) -> Kube:
    """The cluster: kubeconfig path + ApiClient (the harness runs, on kwok, while it is used)."""
    api = config.new_client_from_config(config_file=str(cluster))
    kube = Kube(kubeconfig=cluster, api_client=api, mode=MODE)
    wait_for("the API server to become ready", lambda: _readyz(api) == "ok", 180)
    return kube


def _readyz(api: client.ApiClient) -> str:
    # /readyz is not in the generated API; a plain request with the client's TLS settings.
    conf = api.configuration
    pool = urllib3.PoolManager(
        cert_reqs="CERT_REQUIRED" if conf.verify_ssl else "CERT_NONE",
        ca_certs=conf.ssl_ca_cert,
        cert_file=conf.cert_file,
        key_file=conf.key_file,
    )
    headers = {}
    if conf.api_key.get("authorization"):
        headers["Authorization"] = conf.api_key["authorization"]
    resp = pool.request("GET", conf.host + "/readyz", headers=headers, timeout=5.0)
    return resp.data.decode().strip()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:30].strip("-")


_PHASES = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    """Remember each phase's report so fixtures can tell whether their test failed."""
    report: pytest.TestReport = yield
    item.stash.setdefault(_PHASES, {})[report.when] = report
    return report


@pytest.fixture
def namespace(kube: Kube, harness: int | None, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace labelled for the harness; deleted (and drained) after the test."""
    name = f"e2e-{_slug(request.node.name)}-{uuid.uuid4().hex[:5]}"
    create_namespace(kube, name)
    try:
        yield name
    finally:
        if any(r.failed for r in request.node.stash.get(_PHASES, {}).values()):
            # Shown under "Captured stdout teardown" in the failure report.
            print(_describe_namespace(kube, name))
        if harness is not None and not pid_alive(harness):
            pytest.fail(f"the harness died during the test; see {RUN / 'logs' / 'harness.log'}")
        if os.environ.get("E2E_KEEP_NAMESPACES") != "1":
            kube.core.delete_namespace(name)
            # Waiting keeps one test's processes from running into the next (2 cores).
            try:
                wait_for(
                    f"namespace {name} to be deleted",
                    lambda: namespace_gone(kube.core, name),
                    180,
                    1.0,
                )
            except AssertionError as e:
                print(f"warning: {e}", file=sys.stderr)


@pytest.fixture(scope="session")
def queue_crd(kube: Kube, tools: Tools) -> None:
    """The Queue CRD (the generated file), installed once for the session."""
    install_crd(tools)


@pytest.fixture
def operator(kube: Kube, tools: Tools, namespace: str, queue_crd: None) -> Iterator[str]:
    """The operator, running in the test's namespace and watching it (e2e/operator_pod.py)."""
    yield from run_operator(kube, tools, namespace)


def _describe_namespace(kube: Kube, namespace: str) -> str:
    """Pods, their container states, recent events and log tails: what one needs after a failure."""
    lines = [f"==== e2e diagnostics for namespace {namespace}"]
    try:
        for pod in kube.core.list_namespaced_pod(namespace).items:
            conds = {c.type: c.status for c in pod.status.conditions or []}
            lines.append(
                f"-- pod {pod.metadata.name} node={pod.spec.node_name} phase={pod.status.phase} "
                f"ready={conds.get('Ready')} deleting={pod.metadata.deletion_timestamp is not None}"
            )
            for cs in (pod.status.init_container_statuses or []) + (
                pod.status.container_statuses or []
            ):
                state = next((k for k, v in cs.state.to_dict().items() if v), "?")
                lines.append(f"   {cs.name}: {state} restarts={cs.restart_count} ready={cs.ready}")
            log_tail = pod_log(kube, namespace, pod.metadata.name).splitlines()[-40:]
            lines += [f"   | {line}" for line in log_tail]
        events = kube.core.list_namespaced_event(namespace).items
        lines.append("-- events (last 30)")
        for ev in sorted(events, key=lambda e: str(e.last_timestamp or e.event_time or ""))[-30:]:
            obj = f"{ev.involved_object.kind}/{ev.involved_object.name}"
            lines.append(f"   {ev.type} {ev.reason} {obj}: {ev.message}")
    except Exception as e:  # diagnostics must never mask the real failure
        lines.append(f"(diagnostics incomplete: {e!r})")
    return "\n".join(lines)


@pytest.fixture
def redis(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A real redis-server for one test (on kind: in the namespace, port-forwarded)."""
    if MODE == "kind":
        yield from _redis_in_cluster(request)
        return
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="e2e-redis-", dir=RUN if RUN.exists() else None))
    state: dict[str, subprocess.Popen[bytes]] = {}

    def start() -> None:
        state["proc"] = subprocess.Popen(
            [
                exe,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for("redis-server to accept connections", lambda: redis_ping(port), 30, 0.1)

    def stop() -> None:
        proc = state.pop("proc", None)
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)

    start()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        yield RedisServer(url=url, pod_url=url, port=port, stop=stop, start=start)
    finally:
        stop()
        shutil.rmtree(workdir, ignore_errors=True)


REDIS_MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: redis}
spec:
  selector: {matchLabels: {app: redis}}
  template:
    metadata: {labels: {app: redis}}
    spec:
      containers:
      - name: redis
        image: redis:7
        args: ["--save", "", "--appendonly", "no"]
        ports: [{containerPort: 6379}]
        readinessProbe: {tcpSocket: {port: 6379}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: redis}
spec:
  selector: {app: redis}
  ports: [{port: 6379}]
"""


def _redis_in_cluster(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    # On kind, pods cannot reach the host's loopback: Redis runs beside them, and the test
    # process reaches it through a port-forward.
    namespace: str = request.getfixturevalue("namespace")
    tools: Tools = request.getfixturevalue("tools")
    tools.kubectl_run("-n", namespace, "apply", "-f", "-", input=REDIS_MANIFEST)
    tools.kubectl_run("-n", namespace, "rollout", "status", "deploy/redis", "--timeout=300s")
    port = _free_port()
    forward: dict[str, subprocess.Popen[bytes]] = {}

    def start() -> None:
        tools.kubectl_run("-n", namespace, "scale", "deploy/redis", "--replicas=1")
        tools.kubectl_run("-n", namespace, "rollout", "status", "deploy/redis", "--timeout=300s")
        forward["proc"] = subprocess.Popen(
            [
                str(tools.kubectl),
                "--kubeconfig",
                str(tools.kubeconfig),
                "-n",
                namespace,
                "port-forward",
                "svc/redis",
                f"{port}:6379",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for("the redis port-forward", lambda: redis_ping(port), 60, 0.2)

    def stop() -> None:
        proc = forward.pop("proc", None)
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        tools.kubectl_run("-n", namespace, "scale", "deploy/redis", "--replicas=0")

    start()
    try:
        yield RedisServer(
            url=f"redis://127.0.0.1:{port}/0",
            pod_url=f"redis://redis.{namespace}.svc.cluster.local:6379/0",
            port=port,
            stop=stop,
            start=start,
        )
    finally:
        proc = forward.pop("proc", None)
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture
def redis_url(redis: RedisServer) -> str:
    """URL of the test's Redis as the test process reaches it (pods use `redis.pod_url`)."""
    return redis.url
