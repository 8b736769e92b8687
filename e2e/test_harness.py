"""Harness promises beyond the smoke tests: service-account identity, native sidecars."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from jobfleet.process_pool import pid_alive
from kubernetes import client

from .support import RUN, Kube, Tools, pod_log, wait_for

# The operator image carries the kubernetes client; the harness runs the checkout's venv.
OPERATOR_IMAGE = os.environ.get("E2E_OPERATOR_IMAGE", "jobfleet-operator:e2e")
PYTHON_IMAGE = os.environ.get("E2E_PYTHON_IMAGE", "python:3.12-slim")

WHOAMI = textwrap.dedent(
    """
    import os
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    config.load_config()  # KUBECONFIG from the harness, the mounted token on a real kubelet
    api, ns = client.CoreV1Api(), os.environ["POD_NAMESPACE"]
    for what, call in (("pods", api.list_namespaced_pod), ("secrets", api.list_namespaced_secret)):
        try:
            call(ns)
            print(f"{what}=200", flush=True)
        except ApiException as e:
            print(f"{what}={e.status}", flush=True)
    """
)


def test_processes_act_with_their_service_account(kube: Kube, namespace: str) -> None:
    rbac = client.RbacAuthorizationV1Api(kube.api_client)
    kube.core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    kube.core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "whoami"},
            "spec": {
                "serviceAccountName": "reader",
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "whoami",
                        "image": OPERATOR_IMAGE,
                        "command": ["python", "-c", WHOAMI],
                        "env": [
                            {
                                "name": "POD_NAMESPACE",
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                            }
                        ],
                    }
                ],
            },
        },
    )
    wait_for(
        "the pod to succeed",
        lambda: kube.core.read_namespaced_pod("whoami", namespace).status.phase == "Succeeded",
    )
    out = pod_log(kube, namespace, "whoami")
    assert "pods=200" in out, out  # granted by the Role
    assert "secrets=403" in out, out  # RBAC is enforced on the pod's identity


SIDECAR = textwrap.dedent(
    """
    import os, pathlib, signal, sys, time
    d = pathlib.Path(os.environ["MARKER_DIR"])
    me = os.environ["ROLE"]
    def on_term(*_):
        (d / f"{me}.stopped").write_text(str(time.time()))
        if me == "main":
            time.sleep(1)  # the sidecar must outlive this
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    if me == "main":
        assert (d / "sidecar.started").exists(), "sidecar did not start first"
    (d / f"{me}.started").write_text(str(time.time()))
    while True:
        time.sleep(1)
    """
)


def test_native_sidecar_starts_first_and_stops_last(kube: Kube, namespace: str) -> None:
    if not kube.harness:
        pytest.skip("reads markers the processes write on the host")
    markers = RUN / "markers" / namespace
    markers.mkdir(parents=True, exist_ok=True)

    def container(role: str) -> dict[str, object]:
        return {
            "name": role,
            "image": OPERATOR_IMAGE,
            "command": ["python", "-c", SIDECAR],
            "env": [{"name": "ROLE", "value": role}, {"name": "MARKER_DIR", "value": str(markers)}],
        }

    # As on a real kubelet, the main container waits for the sidecar's startup probe.
    started = {
        "exec": {"command": ["test", "-f", str(markers / "sidecar.started")]},
        "periodSeconds": 1,
    }
    sidecar = dict(container("sidecar"), restartPolicy="Always", startupProbe=started)
    kube.core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "with-sidecar"},
            "spec": {"initContainers": [sidecar], "containers": [container("main")]},
        },
    )
    wait_for("both containers to start", lambda: (markers / "main.started").exists())
    pod = kube.core.read_namespaced_pod("with-sidecar", namespace)
    assert pod.status.phase == "Running"
    assert pod.status.container_statuses[0].restart_count == 0, "main saw the sidecar running"
    kube.core.delete_namespaced_pod("with-sidecar", namespace)
    wait_for("the pod to go away", lambda: not kube.core.list_namespaced_pod(namespace).items)
    main_stopped = float((markers / "main.stopped").read_text())
    sidecar_stopped = float((markers / "sidecar.stopped").read_text())
    assert sidecar_stopped > main_stopped, "the sidecar is stopped after the main container"


STUBBORN = textwrap.dedent(
    """
    import os, pathlib, signal, time
    d = pathlib.Path(os.environ["MARKER_DIR"])
    def on_term(*_):
        (d / "term").write_text(str(os.getpid()))  # and keep running: only SIGKILL stops us
    signal.signal(signal.SIGTERM, on_term)
    (d / "started").write_text(str(os.getpid()))
    while True:
        time.sleep(0.1)
    """
)


def test_process_ignoring_sigterm_is_killed_after_the_grace_period(
    kube: Kube, namespace: str
) -> None:
    if not kube.harness:
        pytest.skip("reads markers the processes write on the host")
    markers = RUN / "markers" / namespace
    markers.mkdir(parents=True, exist_ok=True)
    kube.core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "stubborn"},
            "spec": {
                "terminationGracePeriodSeconds": 2,
                "containers": [
                    {
                        "name": "c",
                        "image": OPERATOR_IMAGE,
                        "command": ["python", "-c", STUBBORN],
                        "env": [{"name": "MARKER_DIR", "value": str(markers)}],
                    }
                ],
            },
        },
    )
    pid = int(wait_for("the process to start", lambda: _read(markers / "started")))
    kube.core.delete_namespaced_pod("stubborn", namespace)
    # The pod stays (Terminating) while the harness waits out the grace period...
    wait_for("SIGTERM to arrive", lambda: _read(markers / "term"))
    # ...and goes once the process is gone, killed since it ignored SIGTERM.
    wait_for("the pod to go away", lambda: not kube.core.list_namespaced_pod(namespace).items)
    assert not pid_alive(pid)


def _read(path: Path) -> str | None:
    try:
        return path.read_text() or None
    except FileNotFoundError:
        return None


def test_configmap_volume_paths_reach_the_process(kube: Kube, namespace: str, tools: Tools) -> None:
    # On kwok the harness writes the volume to a directory and rewrites mountPath-based
    # arguments and env values; on kind the kubelet mounts it. The process sees the same.
    kube.core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="cfg"), data={"queue.yaml": "name: emails"}
        ),
    )
    script = "import os, sys\nprint('arg:', open(sys.argv[1]).read())\n"
    script += "print('env:', open(os.environ['CFG']).read())\n"
    kube.core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "reader"},
            "spec": {
                "restartPolicy": "Never",
                "volumes": [{"name": "config", "configMap": {"name": "cfg"}}],
                "containers": [
                    {
                        "name": "c",
                        "image": PYTHON_IMAGE,
                        "command": ["python", "-c", script, "/etc/jobfleet/queue.yaml"],
                        "env": [{"name": "CFG", "value": "/etc/jobfleet/queue.yaml"}],
                        "volumeMounts": [{"name": "config", "mountPath": "/etc/jobfleet"}],
                    }
                ],
            },
        },
    )
    wait_for(
        "the pod to succeed",
        lambda: kube.core.read_namespaced_pod("reader", namespace).status.phase == "Succeeded",
    )
    out = tools.kubectl_run("-n", namespace, "logs", "reader")
    assert "arg: name: emails" in out
    assert "env: name: emails" in out
