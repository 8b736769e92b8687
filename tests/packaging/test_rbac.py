"""The chart grants exactly the permissions the operator declares (jobfleet_operator.rbac),
in exactly the namespaces it watches, to exactly its ServiceAccount."""

from __future__ import annotations

from typing import Any

import pytest
from chart_render import by_kind, needs_helm, render

rbac = pytest.importorskip("jobfleet_operator.rbac", reason="the operator extra is not installed")


def assert_same_rules(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Equal grants; on drift, print what helm/jobfleet/templates/_rbac.tpl should say."""
    import yaml

    assert _canonical(actual) == _canonical(expected), (
        "the chart's RBAC differs from jobfleet_operator.rbac: make the matching define in "
        "helm/jobfleet/templates/_rbac.tpl read\n" + yaml.safe_dump(expected, sort_keys=False)
    )


def _canonical(rules: list[dict[str, Any]]) -> list[tuple[tuple[str, ...], ...]]:
    """Order-insensitive form: the same grants however lists are ordered."""
    return sorted(
        tuple(tuple(sorted(r.get(k, []))) for k in ("apiGroups", "resources", "verbs"))
        for r in rules
    )


def _bound(docs: list[dict[str, Any]], kind: str) -> dict[tuple[str | None, str], Any]:
    """(namespace, role name) → rules, for every role bound to the operator's account."""
    roles = {
        (d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in by_kind(docs, kind)
    }
    out = {}
    for binding in by_kind(docs, kind + "Binding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "jf-jobfleet-operator", "namespace": "jobfleet"}
        ]
        ns = binding["metadata"].get("namespace")
        role = roles[(ns, binding["roleRef"]["name"])]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": kind,
            "name": role["metadata"]["name"],
        }
        out[(ns, role["metadata"]["name"])] = role["rules"]
    assert len(out) == len(roles), "every role is bound"
    return out


LEASE = ("jobfleet", "jf-jobfleet-operator-leader-election")


@needs_helm
def test_default_is_one_namespace_and_nothing_cluster_wide() -> None:
    docs = render()
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")
    roles = _bound(docs, "Role")
    assert set(roles) == {("jobfleet", "jf-jobfleet-operator"), LEASE}
    assert_same_rules(roles[("jobfleet", "jf-jobfleet-operator")], rbac.rules())
    assert_same_rules(roles[LEASE], rbac.leader_election_rules())


@needs_helm
def test_a_role_in_each_watched_namespace() -> None:
    roles = _bound(render(sets={"operator.watchNamespaces": "{team-a,team-b}"}), "Role")
    assert set(roles) == {
        ("team-a", "jf-jobfleet-operator"),
        ("team-b", "jf-jobfleet-operator"),
        LEASE,  # the Lease stays in the release namespace, which is not watched here
    }
    for key, rules in roles.items():
        expected = rbac.leader_election_rules() if key == LEASE else rbac.rules()
        assert_same_rules(rules, expected)


@needs_helm
def test_watching_all_namespaces_uses_one_cluster_role_with_the_same_rules() -> None:
    docs = render(sets={"operator.watchAllNamespaces": "true"})
    cluster = _bound(docs, "ClusterRole")
    assert set(cluster) == {(None, "jf-jobfleet-operator")}
    assert_same_rules(cluster[(None, "jf-jobfleet-operator")], rbac.rules())
    assert set(_bound(docs, "Role")) == {LEASE}


@needs_helm
def test_no_lease_permission_without_leader_election() -> None:
    roles = _bound(render(sets={"operator.leaderElection": "false"}), "Role")
    assert set(roles) == {("jobfleet", "jf-jobfleet-operator")}


@needs_helm
def test_rbac_can_be_left_to_a_cluster_admin() -> None:
    docs = render(sets={"rbac.create": "false"})
    assert not [d for d in docs if d["apiVersion"].startswith("rbac.authorization.k8s.io/")]


def test_secrets_are_never_listed_or_watched() -> None:
    """A Queue's Secret is read by name; list/watch would expose every Secret's contents."""
    for rule in rbac.rules():
        if "secrets" in rule["resources"]:
            assert rule["verbs"] == ["get"]
