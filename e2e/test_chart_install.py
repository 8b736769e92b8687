"""The Helm chart against a real API server (issue 6, acceptance 2).

`helm install` of helm/jobfleet as a user runs it: the operator runs under the chart's
ServiceAccount with exactly the chart's RBAC (on kwok the pod is a process of this checkout
holding a token of that account, so every request it makes is authorised for real). With
that, a Queue is reconciled, scaled and drained; and what the chart does not grant — Secrets
of another namespace, listing Secrets, deleting objects, anything cluster-wide — is denied.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client

from .support import REPO, Kube, RedisServer, Tools, create_namespace, wait_for
from .test_operator import apply, condition, get_queue, replicas, scale_events, stats

CHART = REPO / "helm" / "jobfleet"
RELEASE = "jf"
SERVICE_ACCOUNT = "jf-jobfleet-operator"  # <release>-jobfleet-operator
REDIS_SECRET = "jf-jobfleet-redis"  # the Secret the chart writes from redis.url
# Images by the tags e2e/cluster.sh builds and loads on kind (the examples image is
# examples/Dockerfile FROM jobfleet-worker:e2e: the worker plus examples.handlers). On kwok
# the harness runs this checkout's console scripts for them instead.
OPERATOR_IMAGE = ("jobfleet-operator", "e2e")
WORKER_IMAGE = "jobfleet-examples:e2e"


def helm_install(tools: Tools, namespace: str, *sets: str) -> str:
    """Install the chart as a user would, waiting for the operator to be Ready."""
    args = [
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        f"image.repository={OPERATOR_IMAGE[0]}",
        "--set",
        f"image.tag={OPERATOR_IMAGE[1]}",
        # kind: the image was `kind load`ed, never pulled.
        "--set",
        "image.pullPolicy=Never",
        "--set",
        "operator.verbose=true",
        "--wait",
        "--timeout",
        "180s",
    ]
    for s in sets:
        args += ["--set", s]
    return tools.helm_run(*args)


def label_namespace(kube: Kube, namespace: str, labels: dict[str, str]) -> None:
    kube.core.patch_namespace(namespace, {"metadata": {"labels": labels}})


@pytest.fixture
def release(kube: Kube, tools: Tools, namespace: str, redis: RedisServer) -> Iterator[str]:
    """The chart installed in the test's namespace with the test's Redis; uninstalled after.

    The namespace enforces the `restricted` Pod Security Standard: the operator's pods, and
    the worker pods it creates, are admitted only if they meet it.
    """
    label_namespace(kube, namespace, {"pod-security.kubernetes.io/enforce": "restricted"})
    notes = helm_install(tools, namespace, f"redis.url={redis.pod_url}")
    try:
        yield notes
    finally:
        tools.helm_run("uninstall", RELEASE, "--namespace", namespace, "--wait", check=False)


@pytest.fixture
def other_namespace(kube: Kube) -> Iterator[str]:
    """A namespace the chart grants nothing in, holding a Secret."""
    name = f"e2e-chart-other-{uuid.uuid4().hex[:5]}"
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    kube.core.create_namespaced_secret(
        name,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="db-credentials"),
            string_data={"password": "not-for-jobfleet"},
        ),
    )
    try:
        yield name
    finally:
        kube.core.delete_namespace(name)


def enqueue_emails(redis_url: str, queue: str, n: int) -> None:
    import jobfleet

    async def go() -> None:
        async with jobfleet.Client(redis_url, queue=queue) as c:
            await c.enqueue_many(
                [{"name": "send-email", "payload": {"to": f"u{i}@example.com"}} for i in range(n)]
            )

    asyncio.run(go())


def test_the_operator_works_with_exactly_the_charts_rbac(
    kube: Kube, tools: Tools, namespace: str, redis: RedisServer, release: str
) -> None:
    assert "kubectl get jfq" in release  # NOTES: the next step
    dep = kube.apps.read_namespaced_deployment(SERVICE_ACCOUNT, namespace)
    assert dep.status.ready_replicas == 1
    svc = kube.core.read_namespaced_service(f"{SERVICE_ACCOUNT}-metrics", namespace)
    assert svc.spec.ports[0].name == "http"
    # Nothing but the chart grants this account anything: its bindings are the chart's, both
    # namespaced (no ClusterRoleBinding by default).
    assert sorted(_bindings_of_operator(kube, namespace)) == [
        f"{namespace}/{SERVICE_ACCOUNT}",
        f"{namespace}/{SERVICE_ACCOUNT}-leader-election",
    ]

    # A Queue that reads its Redis URL from the chart's Secret (secrets: get), gets a
    # ConfigMap and a Deployment (create/patch), is scaled (deployments/scale), reports
    # status (queues/status) and records Events.
    body = {
        "apiVersion": "jobfleet.dev/v1alpha1",
        "kind": "Queue",
        "metadata": {"name": "emails"},
        "spec": {
            "redis": {"urlSecretRef": {"name": REDIS_SECRET, "key": "url"}},
            "worker": {
                "image": WORKER_IMAGE,
                "handlers": ["examples.handlers"],
                "terminationGracePeriodSeconds": 10,
                # No provider hiccups here: the test counts completions.
                "env": [{"name": "EXAMPLES_EMAIL_TEMPFAIL", "value": "0"}],
            },
            "concurrency": 10,
            "autoscaling": {
                "minReplicas": 0,
                "maxReplicas": 2,
                "targetBacklogPerReplica": 50,
                "cooldownSeconds": 5,
                "scaleDown": {"stabilizationWindowSeconds": 5},
            },
        },
    }
    apply(tools, namespace, body)
    enqueue_emails(redis.url, "emails", 200)

    wait_for("the fleet to scale up", lambda: (replicas(kube, namespace, "emails") or 0) >= 1, 120)
    wait_for(
        "all 200 jobs to complete", lambda: stats(redis.url, "emails").completed_total == 200, 240
    )
    wait_for(
        "the fleet to scale back to zero", lambda: replicas(kube, namespace, "emails") == 0, 180
    )

    queue = get_queue(kube, namespace, "emails")
    reachable = condition(queue, "RedisReachable")
    assert reachable is not None and reachable["status"] == "True"
    directions = {e["reason"] for e in scale_events(kube, namespace, "emails")}
    assert directions == {"ScaledUp", "ScaledDown"}
    assert stats(redis.url, "emails").dead == 0


def _bindings_of_operator(kube: Kube, release_namespace: str) -> list[str]:
    """Every (Cluster)RoleBinding naming the chart's ServiceAccount, as namespace/name."""
    rbac_api = client.RbacAuthorizationV1Api(kube.api_client)
    found = []
    for b in [
        *rbac_api.list_role_binding_for_all_namespaces().items,
        *rbac_api.list_cluster_role_binding().items,
    ]:
        for s in b.subjects or []:
            if s.name == SERVICE_ACCOUNT and s.namespace == release_namespace:
                found.append(f"{b.metadata.namespace or '<cluster>'}/{b.metadata.name}")
    return found


def _can_i(tools: Tools, release_namespace: str, namespace: str | None, *what: str) -> bool:
    """`kubectl auth can-i` as the chart's ServiceAccount: a SubjectAccessReview."""
    user = f"system:serviceaccount:{release_namespace}:{SERVICE_ACCOUNT}"
    where = ["-n", namespace] if namespace else ["--all-namespaces"]
    out = tools.kubectl_run("auth", "can-i", *what, *where, "--as", user, check=False)
    return out.strip() == "yes"


def test_actions_outside_the_charts_rbac_are_denied(
    kube: Kube, tools: Tools, namespace: str, other_namespace: str, release: str
) -> None:
    # What the chart grants, in the release namespace ...
    for what in (
        ("get", "secrets"),
        ("patch", "deployments.apps/scale"),
        ("patch", "queues.jobfleet.dev/status"),
        ("update", "leases.coordination.k8s.io"),
    ):
        assert _can_i(tools, namespace, namespace, *what), what
    # ... and nothing more: not another namespace, not listing Secrets, no deletes, no
    # cluster-wide reads.
    denied = [
        (other_namespace, ("get", "secrets")),
        (other_namespace, ("list", "queues.jobfleet.dev")),
        (other_namespace, ("create", "deployments.apps")),
        (namespace, ("list", "secrets")),
        (namespace, ("watch", "secrets")),
        (namespace, ("delete", "deployments.apps")),
        (namespace, ("delete", "queues.jobfleet.dev")),
        (namespace, ("create", "pods")),
        (namespace, ("create", "rolebindings.rbac.authorization.k8s.io")),
        (None, ("list", "namespaces")),
        (None, ("get", "customresourcedefinitions.apiextensions.k8s.io")),
    ]
    allowed = [(ns, what) for ns, what in denied if _can_i(tools, namespace, ns, *what)]
    assert not allowed

    # The same with a real request carrying the account's token, as the operator makes them.
    token = tools.kubectl_run("-n", namespace, "create", "token", SERVICE_ACCOUNT).strip()
    conf = client.Configuration()
    base = kube.api_client.configuration
    conf.host, conf.ssl_ca_cert, conf.verify_ssl = base.host, base.ssl_ca_cert, base.verify_ssl
    conf.api_key = {"authorization": f"Bearer {token}"}
    as_operator = client.CoreV1Api(client.ApiClient(conf))
    with pytest.raises(client.ApiException) as denied_read:
        as_operator.read_namespaced_secret("db-credentials", other_namespace)
    assert denied_read.value.status == 403
    assert SERVICE_ACCOUNT in denied_read.value.body
    # ... while the chart's own Secret in its namespace is readable by name.
    secret = as_operator.read_namespaced_secret(REDIS_SECRET, namespace)
    assert secret.data and "url" in secret.data


def test_every_workload_of_the_chart_meets_the_restricted_pod_security_standard(
    kube: Kube, tools: Tools, namespace: str
) -> None:
    """All workloads the chart can render — the operator with a standby and the development
    Redis — pass the API server's own Pod Security admission (a server-side dry run: the
    development Redis needs a real container runtime to run)."""
    label_namespace(kube, namespace, {"pod-security.kubernetes.io/warn": "restricted"})
    server = client.VersionApi(kube.api_client).get_code().git_version
    rendered = tools.helm_run(
        "template", RELEASE, str(CHART), "--namespace", namespace, "--kube-version", server,
        "--values", str(CHART / "ci" / "dev-redis-values.yaml"),
        "--set", "operator.replicas=2", "--set", "operator.leaderElection=true",
    )  # fmt: skip
    done = subprocess.run(
        [
            str(tools.kubectl), "--kubeconfig", str(tools.kubeconfig), "-n", namespace,
            "apply", "--dry-run=server", "-f", "-",
        ],
        input=rendered, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "statefulset.apps/jf-jobfleet-redis created (server dry run)" in done.stdout
    assert "deployment.apps/jf-jobfleet-operator created (server dry run)" in done.stdout
    assert "PodSecurity" not in done.stderr, done.stderr


@pytest.fixture
def second_namespace(kube: Kube) -> Iterator[str]:
    """Another namespace whose pods the harness runs (the operator will serve it too)."""
    name = f"e2e-chart-team-{uuid.uuid4().hex[:5]}"
    create_namespace(kube, name)
    try:
        yield name
    finally:
        kube.core.delete_namespace(name)
        wait_for(f"namespace {name} to go", lambda: not _exists(kube, name), 180, 1.0)


def _exists(kube: Kube, namespace: str) -> bool:
    try:
        kube.core.read_namespace(namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def test_one_release_serves_a_list_of_namespaces_with_a_role_in_each(
    kube: Kube, tools: Tools, namespace: str, second_namespace: str, redis: RedisServer
) -> None:
    helm_install(tools, namespace, f"operator.watchNamespaces={{{namespace},{second_namespace}}}")
    try:
        assert sorted(_bindings_of_operator(kube, namespace)) == sorted(
            [
                f"{namespace}/{SERVICE_ACCOUNT}",
                f"{namespace}/{SERVICE_ACCOUNT}-leader-election",
                f"{second_namespace}/{SERVICE_ACCOUNT}",
            ]
        )
        body = {
            "apiVersion": "jobfleet.dev/v1alpha1",
            "kind": "Queue",
            "metadata": {"name": "reports"},
            "spec": {
                "redis": {"url": redis.pod_url},
                "worker": {"image": WORKER_IMAGE, "handlers": ["examples.handlers"]},
                "autoscaling": {"minReplicas": 1, "maxReplicas": 1},
            },
        }
        apply(tools, second_namespace, body)
        wait_for(
            "the Queue in the second namespace to be Ready",
            lambda: (
                (condition(get_queue(kube, second_namespace, "reports"), "Ready") or {}).get(
                    "status"
                )
                == "True"
            ),
            180,
        )
        assert replicas(kube, second_namespace, "reports") == 1
    finally:
        tools.helm_run("uninstall", RELEASE, "--namespace", namespace, "--wait", check=False)


def test_cluster_wide_release_serves_any_namespace_through_its_cluster_role(
    kube: Kube, tools: Tools, namespace: str, second_namespace: str, redis: RedisServer
) -> None:
    helm_install(tools, namespace, "operator.watchAllNamespaces=true")
    try:
        assert sorted(_bindings_of_operator(kube, namespace)) == [
            f"<cluster>/{SERVICE_ACCOUNT}",
            f"{namespace}/{SERVICE_ACCOUNT}-leader-election",
        ]
        body = {
            "apiVersion": "jobfleet.dev/v1alpha1",
            "kind": "Queue",
            "metadata": {"name": "anywhere"},
            "spec": {
                "redis": {"url": redis.pod_url},
                "worker": {"image": WORKER_IMAGE, "handlers": ["examples.handlers"]},
                "autoscaling": {"minReplicas": 1, "maxReplicas": 1},
            },
        }
        apply(tools, second_namespace, body)
        wait_for(
            "the Queue in a namespace created after the install to be Ready",
            lambda: (
                (condition(get_queue(kube, second_namespace, "anywhere"), "Ready") or {}).get(
                    "status"
                )
                == "True"
            ),
            180,
        )
        assert replicas(kube, second_namespace, "anywhere") == 1
    finally:
        tools.helm_run("uninstall", RELEASE, "--namespace", namespace, "--wait", check=False)


def _lease_holder(kube: Kube, namespace: str) -> str | None:
    lease = client.CoordinationV1Api(kube.api_client).read_namespaced_lease(
        "jobfleet-operator", namespace
    )
    return lease.spec.holder_identity


def test_two_replicas_elect_one_leader_and_fail_over(
    kube: Kube, tools: Tools, namespace: str, redis: RedisServer
) -> None:
    """operator.replicas=2: one replica holds the Lease and acts; when its pod goes, the
    standby takes over (a clean shutdown releases the Lease)."""
    helm_install(tools, namespace, "operator.replicas=2")
    try:
        selector = "app.kubernetes.io/component=operator"
        pods = {
            p.metadata.name
            for p in kube.core.list_namespaced_pod(namespace, label_selector=selector).items
        }
        assert len(pods) == 2
        leader = wait_for("a Lease holder", lambda: _lease_holder(kube, namespace), 120)
        assert leader in pods
        (standby,) = pods - {leader}
        # Take the leader's pod away for good: a plain delete would let the ReplicaSet start
        # a replacement that can win the Lease before the standby does. Scaling in with the
        # leader marked cheapest to delete removes exactly that pod and starts none.
        kube.core.patch_namespaced_pod(
            leader,
            namespace,
            {"metadata": {"annotations": {"controller.kubernetes.io/pod-deletion-cost": "-1000"}}},
        )
        kube.apps.patch_namespaced_deployment_scale(
            SERVICE_ACCOUNT, namespace, {"spec": {"replicas": 1}}
        )
        successor = wait_for(
            "the standby to take the Lease",
            lambda: (h := _lease_holder(kube, namespace)) not in (None, "", leader) and h,
            120,
        )
        assert successor == standby
    finally:
        tools.helm_run("uninstall", RELEASE, "--namespace", namespace, "--wait", check=False)
