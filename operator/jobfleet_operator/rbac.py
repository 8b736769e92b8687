"""The exact RBAC rules the operator needs; the Helm chart and the e2e tests render them."""

from __future__ import annotations

from typing import Any

from .spec import GROUP, PLURAL

Rule = dict[str, list[str]]


def rules() -> list[Rule]:
    """Rules in every namespace the operator watches (a Role each, or one ClusterRole).

    Why each verb: kopf lists/watches Queues and patches its bookkeeping annotations on them;
    status is written through the status subresource; children are created and updated by
    server-side apply (PATCH, which needs `create` for the first apply); replicas change only
    through the scale subresource; Deployments and ConfigMaps are watched to repair manual
    drift; a Secret is
    read (`get` only, never listed) when a Queue names one for its Redis URL or password;
    worker pods are listed and annotated with their pod-deletion-cost before a scale-in, so
    that idle workers are removed first;
    Events record scale decisions and errors (kopf writes core/v1 ones, we events.k8s.io/v1).
    """
    return [
        {
            "apiGroups": [GROUP],
            "resources": [PLURAL],
            "verbs": ["get", "list", "watch", "patch"],
        },
        {
            "apiGroups": [GROUP],
            "resources": [f"{PLURAL}/status"],
            "verbs": ["get", "patch", "update"],
        },
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "verbs": ["get", "list", "watch", "create", "patch"],
        },
        {
            "apiGroups": ["apps"],
            "resources": ["deployments/scale"],
            "verbs": ["get", "patch", "update"],
        },
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "verbs": ["get", "list", "watch", "create", "patch"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ]


def leader_election_rules() -> list[Rule]:
    """Rules in the operator's own namespace, for its leader-election Lease."""
    return [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        },
    ]


def manifests(
    namespace: str,
    service_account: str = "jobfleet-operator",
    *,
    operator_namespace: str | None = None,
    leader_election: bool = True,
) -> list[dict[str, Any]]:
    """Reference Roles + RoleBindings granting `rules()` in `namespace` to the operator's
    ServiceAccount (which lives in `operator_namespace`, default the same), plus the Lease
    rules when `namespace` is the operator's own."""
    home = operator_namespace or namespace
    subject = {"kind": "ServiceAccount", "name": service_account, "namespace": home}
    sets = [("jobfleet-operator", rules())]
    if leader_election and home == namespace:
        sets.append(("jobfleet-operator-leader-election", leader_election_rules()))
    out: list[dict[str, Any]] = []
    for name, rule_set in sets:
        out.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": name, "namespace": namespace},
                "rules": rule_set,
            }
        )
        out.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": name,
                },
                "subjects": [subject],
            }
        )
    return out
