"""Smoke tests of the e2e cluster itself: control plane, scheduling, pods as processes, GC."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from jobfleet.process_pool import pid_alive
from kubernetes import client

from .support import MODE, RUN, Kube, Tools, versions, wait_for

PYTHON_IMAGE = os.environ.get("E2E_PYTHON_IMAGE", "python:3.12-slim")

# A tiny HTTP server: /healthz answers 200 once READY_FILE exists (if set); on SIGTERM it
# writes <pod>.sigterm into MARKER_DIR and exits. Kept inline so it runs unchanged in a
# stock python image on kind.
APP = textwrap.dedent(
    """
    import http.server, json, os, pathlib, signal, sys
    name = os.environ["POD_NAME"]
    markers = pathlib.Path(os.environ["MARKER_DIR"])
    markers.mkdir(parents=True, exist_ok=True)
    ready_file = os.environ.get("READY_FILE")
    def on_term(*_):
        (markers / f"{name}.sigterm").write_text(str(os.getpid()))
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.path == "/healthz" and (not ready_file or os.path.exists(ready_file))
            self.send_response(200 if ok else 503)
            self.end_headers()
        def log_message(self, *args):
            pass
    seen = {k: os.environ.get(k) for k in ("POD_NAME", "POD_NAMESPACE", "POD_IP", "NODE_NAME",
            "FROM_CONFIGMAP", "FROM_SECRET", "GREETING", "APP_MODE", "KUBECONFIG",
            "JOBFLEET_HTTP_PORT")}
    (markers / f"{name}.started").write_text(json.dumps({"pid": os.getpid(), "env": seen}))
    address = (os.environ["POD_IP"], int(os.environ["JOBFLEET_HTTP_PORT"]))
    server = http.server.HTTPServer(address, Health)
    server.serve_forever()
    """
)


def _deployment(
    name: str, replicas: int, marker_dir: str, ready_file: str | None = None
) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        # The pod's own value; the harness replaces it with a free loopback port.
        {"name": "JOBFLEET_HTTP_PORT", "value": "8080"},
        {"name": "MARKER_DIR", "value": marker_dir},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {
            "name": "FROM_CONFIGMAP",
            "valueFrom": {"configMapKeyRef": {"name": "smoke", "key": "colour"}},
        },
        {
            "name": "FROM_SECRET",
            "valueFrom": {"secretKeyRef": {"name": "smoke", "key": "password"}},
        },
        {"name": "GREETING", "value": "hello $(POD_NAME)"},
    ]
    if ready_file:
        env.append({"name": "READY_FILE", "value": ready_file})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 20,
                    "containers": [
                        {
                            "name": "app",
                            "image": PYTHON_IMAGE,
                            "command": ["python", "-c", APP],
                            "env": env,
                            "envFrom": [{"configMapRef": {"name": "smoke"}}],
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


def _inputs(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="smoke"), data={"colour": "blue", "APP_MODE": "smoke"}
        ),
    )
    kube.core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="smoke"), string_data={"password": "s3cret"}
        ),
    )


def _pods(kube: Kube, namespace: str, app: str) -> list[client.V1Pod]:
    return kube.core.list_namespaced_pod(namespace, label_selector=f"app={app}").items


def _ready(pod: client.V1Pod) -> bool:
    conds = {c.type: c.status for c in pod.status.conditions or []}
    return pod.status.phase == "Running" and conds.get("Ready") == "True"


def _deploy_and_wait(
    kube: Kube, namespace: str, name: str, replicas: int, markers: Path
) -> list[client.V1Pod]:
    _inputs(kube, namespace)
    kube.apps.create_namespaced_deployment(namespace, _deployment(name, replicas, str(markers)))

    def available() -> list[client.V1Pod] | None:
        dep = kube.apps.read_namespaced_deployment(name, namespace)
        pods = _pods(kube, namespace, name)
        if (
            (dep.status.ready_replicas or 0) == replicas
            and len(pods) == replicas
            and all(map(_ready, pods))
        ):
            return pods
        return None

    return wait_for(f"deployment {name} to have {replicas} ready pods", available, 180)


def _marker_dir(namespace: str) -> Path:
    # Inside the container on kind (not inspectable); on the host under e2e/.run with kwok.
    return RUN / "markers" / namespace if MODE == "kwok" else Path("/tmp/markers")


def test_api_server_is_healthy(kube: Kube, tools: Tools) -> None:
    assert tools.kubectl_run("get", "--raw", "/readyz").strip() == "ok"
    assert tools.kubectl_run("get", "--raw", "/livez").strip() == "ok"
    version = client.VersionApi(kube.api_client).get_code()
    if kube.harness:
        # The control plane is the pinned build and reports the version it was built from.
        assert version.git_version == versions()["KUBE_VERSION"]


def test_nodes_are_ready(kube: Kube) -> None:
    nodes = kube.core.list_node().items
    assert nodes
    for node in nodes:
        conds = {c.type: c.status for c in node.status.conditions or []}
        assert conds.get("Ready") == "True", node.metadata.name
    if kube.harness:
        kwok = [n for n in nodes if "kwok.x-k8s.io/node" in (n.metadata.annotations or {})]
        assert len(kwok) >= 3


def test_deployment_pods_run_as_processes(kube: Kube, namespace: str) -> None:
    markers = _marker_dir(namespace)
    pods = _deploy_and_wait(kube, namespace, "web", 2, markers)
    nodes = {n.metadata.name for n in kube.core.list_node().items}
    for pod in pods:
        assert pod.spec.node_name in nodes
    if not kube.harness:
        return
    for pod in pods:
        name = pod.metadata.name
        started = json.loads(
            wait_for(f"{name} start marker", lambda n=name: _read(markers / f"{n}.started"))
        )
        assert pid_alive(started["pid"]), "the pod's process is running"
        env = started["env"]
        assert env["POD_NAME"] == name
        assert env["POD_NAMESPACE"] == namespace
        assert env["POD_IP"] == "127.0.0.1"
        assert env["NODE_NAME"] == pod.spec.node_name
        assert env["FROM_CONFIGMAP"] == "blue"
        assert env["FROM_SECRET"] == "s3cret"
        assert env["APP_MODE"] == "smoke"  # envFrom
        assert env["GREETING"] == f"hello {name}"  # $(VAR) expansion
        assert env["JOBFLEET_HTTP_PORT"] != "8080"  # the harness assigned a free port
        assert Path(env["KUBECONFIG"]).is_file()  # the pod's service-account identity
    ports = {
        json.loads(_read(markers / f"{p.metadata.name}.started"))["env"]["JOBFLEET_HTTP_PORT"]
        for p in pods
    }
    assert len(ports) == len(pods), "each pod gets its own port"


def test_deleting_a_deployment_collects_its_children_and_sigterms_them(
    kube: Kube, namespace: str
) -> None:
    markers = _marker_dir(namespace)
    pods = _deploy_and_wait(kube, namespace, "doomed", 2, markers)
    rs_names = [rs.metadata.name for rs in kube.apps.list_namespaced_replica_set(namespace).items]
    assert rs_names
    pids = {}
    if kube.harness:
        for pod in pods:
            name = pod.metadata.name
            pids[name] = json.loads(
                wait_for(f"{name} start", lambda n=name: _read(markers / f"{n}.started"))
            )["pid"]

    # Background propagation: the Deployment goes at once, the garbage collector then
    # removes the ReplicaSet, and its pods go through graceful deletion.
    kube.apps.delete_namespaced_deployment(
        "doomed", namespace, body=client.V1DeleteOptions(propagation_policy="Background")
    )
    wait_for(
        "the ReplicaSet to be garbage-collected",
        lambda: not kube.apps.list_namespaced_replica_set(namespace).items,
    )
    wait_for("the pods to be garbage-collected", lambda: not _pods(kube, namespace, "doomed"), 180)
    if kube.harness:
        for name, pid in pids.items():
            assert (markers / f"{name}.sigterm").read_text() == str(pid), f"{name} got SIGTERM"
            assert not pid_alive(pid)


def test_pod_is_ready_only_when_its_probe_passes(kube: Kube, namespace: str) -> None:
    if not kube.harness:
        pytest.skip("needs the harness: the test toggles readiness through a host file")
    markers = _marker_dir(namespace)
    ready_file = markers / "ready"
    _inputs(kube, namespace)
    kube.apps.create_namespaced_deployment(
        namespace, _deployment("gated", 1, str(markers), str(ready_file))
    )
    pod = wait_for("the pod to start", lambda: _running(kube, namespace, "gated"))
    name = pod.metadata.name
    wait_for("the process to start", lambda: _read(markers / f"{name}.started"))
    pod = kube.core.read_namespaced_pod(name, namespace)
    assert not _ready(pod), "readiness probe answers 503, so the pod is not Ready"
    ready_file.write_text("")
    wait_for(
        "the pod to become Ready", lambda: _ready(kube.core.read_namespaced_pod(name, namespace))
    )


def test_crashed_container_is_restarted(kube: Kube, namespace: str) -> None:
    if not kube.harness:
        pytest.skip("exercises the harness's restart handling")
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="crasher"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="c", image=PYTHON_IMAGE, command=["python", "-c", "raise SystemExit(3)"]
                )
            ]
        ),
    )
    kube.core.create_namespaced_pod(namespace, pod)

    def restarted() -> client.V1ContainerStatus | None:
        st = kube.core.read_namespaced_pod("crasher", namespace).status.container_statuses or []
        return st[0] if st and st[0].restart_count >= 1 and st[0].last_state.terminated else None

    status = wait_for("the container to be restarted", restarted)
    assert status.last_state.terminated.exit_code == 3

    def backoff_event() -> bool:
        events = kube.core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=crasher"
        )
        return any(e.reason == "BackOff" and e.source.component == "kubelet" for e in events.items)

    wait_for("a kubelet BackOff event", backoff_event)


def _running(kube: Kube, namespace: str, app: str) -> client.V1Pod | None:
    pods = [p for p in _pods(kube, namespace, app) if p.status.phase == "Running"]
    return pods[0] if pods else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text() or None
    except FileNotFoundError:
        return None


def test_kubectl_logs_shows_process_output(kube: Kube, namespace: str, tools: Tools) -> None:
    # On kwok, kwok's kubelet endpoint serves the CRI log the harness writes per container.
    script = "import os, sys, time\nprint('hello from', os.environ['HOSTNAME'], flush=True)\n"
    script += "print('to stderr', file=sys.stderr, flush=True)\ntime.sleep(3600)\n"
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="talker"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(name="c", image=PYTHON_IMAGE, command=["python", "-c", script])
            ]
        ),
    )
    kube.core.create_namespaced_pod(namespace, pod)
    out = wait_for(
        "the pod's output in kubectl logs",
        lambda: (
            (text := tools.kubectl_run("-n", namespace, "logs", "talker", check=False))
            and "to stderr" in text
            and text
        ),
    )
    assert "hello from talker" in out


def test_helm_installs_and_uninstalls_a_chart(
    kube: Kube, namespace: str, tools: Tools, tmp_path: Path
) -> None:
    chart = tmp_path / "smoke"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: smoke\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    )
    tools.helm_run(
        "install", "smoke", str(chart), "-n", namespace, "--set", "greeting=hi", "--wait"
    )
    assert kube.core.read_namespaced_config_map("smoke-cm", namespace).data == {"greeting": "hi"}
    assert "smoke" in tools.helm_run("list", "-n", namespace, "-q")
    tools.helm_run("uninstall", "smoke", "-n", namespace, "--wait")
    wait_for(
        "the release's objects to go",
        lambda: (
            not kube.core.list_namespaced_config_map(
                namespace, field_selector="metadata.name=smoke-cm"
            ).items
        ),
    )
