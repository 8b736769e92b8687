"""The operator as a pod of the e2e cluster: the Queue CRD, its Deployment with exactly the
RBAC rules of `jobfleet_operator.rbac`, and its log printed after the test. The fixtures
built on it (`queue_crd`, `operator`) are in e2e/conftest.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from jobfleet_operator import rbac
from kubernetes import client

from .support import REPO, Kube, Tools, pod_log, wait_for

CRD = REPO / "crds" / "jobfleet.dev_queues.yaml"
# The tag e2e/cluster.sh builds and loads on kind; on kwok the harness maps it to the
# checkout's console script.
OPERATOR_IMAGE = "jobfleet-operator:e2e"


def install_crd(tools: Tools) -> None:
    """The Queue CRD (the generated file, as the chart ships it)."""
    tools.kubectl_run("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    tools.kubectl_run(
        "wait", "--for=condition=Established", "crd/queues.jobfleet.dev", "--timeout=60s"
    )


def operator_objects(namespace: str, watched: str | None = None) -> list[dict[str, Any]]:
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "jobfleet-operator"}}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "jobfleet-operator"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "jobfleet-operator"}},
            "template": {
                "metadata": {"labels": {"app": "jobfleet-operator"}},
                "spec": {
                    "serviceAccountName": "jobfleet-operator",
                    "terminationGracePeriodSeconds": 10,
                    "containers": [
                        {
                            "name": "operator",
                            "image": OPERATOR_IMAGE,
                            "args": ["--verbose"],
                            "env": [
                                {"name": "JOBFLEET_NAMESPACES", "value": watched or namespace},
                                {
                                    "name": "POD_NAMESPACE",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                                },
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                },
                            ],
                            "ports": [{"name": "http", "containerPort": 8081}],
                            # Liveness only once the port is open: on a loaded machine the
                            # imports alone (kopf, kubernetes) outlast three 1 s probes.
                            "startupProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 1,
                                "failureThreshold": 120,
                            },
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}},
                        }
                    ],
                },
            },
        },
    }
    return [sa, *rbac.manifests(namespace), deployment]


def run_operator(
    kube: Kube, tools: Tools, namespace: str, watched: str | None = None
) -> Iterator[str]:
    """Deploy the operator in `namespace` with the documented RBAC rules; print its log after.

    `watched`: a comma list of namespaces to watch instead of its own.
    """
    manifest = "\n---\n".join(json.dumps(o) for o in operator_objects(namespace, watched))
    tools.kubectl_run("-n", namespace, "apply", "-f", "-", input=manifest)
    wait_for(
        "the operator pod to be ready",
        lambda: ready_pods(kube, namespace, "jobfleet-operator"),
        180,
    )
    yield namespace
    for name in sorted(operator_pods(kube, namespace)):
        log = pod_log(kube, namespace, name)[-6000:]
        print(f"---- operator log {name}\n{log}")


def operator_pods(kube: Kube, namespace: str) -> set[str]:
    """The names of the operator's pods (terminating ones too)."""
    pods = kube.core.list_namespaced_pod(namespace, label_selector="app=jobfleet-operator")
    return {p.metadata.name for p in pods.items}


def kill_operator(kube: Kube, namespace: str) -> set[str]:
    """Delete the operator's pods (its Deployment starts another); their names."""
    old = operator_pods(kube, namespace)
    for name in old:
        kube.core.delete_namespaced_pod(name, namespace)
    return old


def ready_pods(kube: Kube, namespace: str, app: str) -> list[client.V1Pod]:
    pods = kube.core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
    ]
