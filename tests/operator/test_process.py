"""The operator process: command line, namespaces, health and metrics endpoint, RBAC rules."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import pytest
import yaml
from jobfleet_operator import __main__ as cli
from jobfleet_operator import rbac
from jobfleet_operator.metrics import Metrics, http_port, serve


def opts(argv: list[str], **env: str) -> cli.Options:
    _, args = cli.parse(argv)
    return cli.options(args, env)


def test_namespaces_from_flags_env_or_pod() -> None:
    assert opts(["-n", "a", "--namespace", "b,c"]).namespaces == ["a", "b", "c"]
    assert opts([], JOBFLEET_NAMESPACES="x, y").namespaces == ["x", "y"]
    assert opts([], JOBFLEET_NAMESPACES="*", POD_NAMESPACE="ops").all_namespaces
    assert opts(["-A"], POD_NAMESPACE="ops").all_namespaces
    o = opts([], POD_NAMESPACE="ops", POD_NAME="op-7d9")
    assert (o.namespaces, o.lease_namespace, o.identity) == (["ops"], "ops", "op-7d9")


def test_run_subcommand_takes_the_same_flags() -> None:
    assert opts(["run", "-n", "a"]).namespaces == ["a"]


def test_log_format() -> None:
    assert opts(["-n", "a"]).log_format == "text"
    assert opts(["-n", "a", "--log-format", "json"]).log_format == "json"
    assert opts(["-n", "a"], JOBFLEET_LOG_FORMAT="json").log_format == "json"
    with pytest.raises(SystemExit, match="text or json"):
        opts(["-n", "a"], JOBFLEET_LOG_FORMAT="xml")


def test_leader_election_default_on_and_switchable() -> None:
    assert opts(["-n", "a"]).leader_election
    assert not opts(["-n", "a", "--no-leader-election"]).leader_election
    assert not opts(["-n", "a"], JOBFLEET_LEADER_ELECTION="false").leader_election


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {}, "no namespace to watch"),
        (["-n", "a", "-A"], {}, "not both"),
        (["-A"], {}, "leader election needs --lease-namespace"),
    ],
)
def test_unusable_options_explain_themselves(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(SystemExit) as err:
        opts(argv, **env)
    assert message in str(err.value)


def test_http_port_from_env() -> None:
    assert http_port({}) == 8081
    assert http_port({"JOBFLEET_HTTP_PORT": "19090"}) == 19090


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_health_and_metrics_endpoint() -> None:
    metrics = Metrics()
    metrics.backlog.labels("shop", "emails").set(42)
    metrics.scale_events.labels("shop", "emails", "up").inc()
    state = {"alive": True}
    port = free_port()
    runner = await serve(
        metrics, alive=lambda: state["alive"], ready=lambda: True, host="127.0.0.1", port=port
    )
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            async with http.get(base + "/healthz") as r:
                assert r.status == 200
            async with http.get(base + "/readyz") as r:
                assert r.status == 200
            async with http.get(base + "/metrics") as r:
                text = await r.text()
            assert 'jobfleet_operator_queue_backlog{namespace="shop",queue="emails"} 42.0' in text
            series = 'scale_events_total{direction="up",namespace="shop",queue="emails"} 1.0'
            assert "jobfleet_operator_" + series in text
            state["alive"] = False
            async with http.get(base + "/healthz") as r:
                assert r.status == 503
    finally:
        await runner.cleanup()


def test_a_tracked_queues_counters_start_at_zero() -> None:
    # A counter first exported at 1 has no increase() in Prometheus: the first SLA breach of
    # a queue would never fire JobfleetSLABreached (e2e/test_alerts.py showed it).
    metrics = Metrics()
    metrics.track("shop", "emails")
    text = metrics.render().decode()
    assert 'jobfleet_operator_sla_breaches_total{namespace="shop",queue="emails"} 0.0' in text
    for direction in ("up", "down"):
        series = f'scale_events_total{{direction="{direction}",namespace="shop",queue="emails"}}'
        assert f"jobfleet_operator_{series} 0.0" in text
    metrics.forget("shop", "emails")
    assert b'queue="emails"' not in metrics.render()


def test_forget_drops_a_queues_series() -> None:
    metrics = Metrics()
    metrics.backlog.labels("shop", "emails").set(1)
    metrics.scale_events.labels("shop", "emails", "down").inc()
    metrics.forget("shop", "emails")
    assert b'queue="emails"' not in metrics.render()


def test_rbac_rules_cover_what_the_operator_calls() -> None:
    verbs: dict[tuple[str, str], set[str]] = {}
    for rule in rbac.rules() + rbac.leader_election_rules():
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                verbs.setdefault((group, resource), set()).update(rule["verbs"])
    assert {"list", "watch", "patch"} <= verbs[("jobfleet.dev", "queues")]
    assert "patch" in verbs[("jobfleet.dev", "queues/status")]
    assert {"create", "patch", "watch"} <= verbs[("apps", "deployments")]
    assert "patch" in verbs[("apps", "deployments/scale")]
    assert verbs[("", "secrets")] == {"get"}  # never list or watch Secrets
    assert {"get", "create", "update"} <= verbs[("coordination.k8s.io", "leases")]
    assert not any("delete" in v or "*" in v for v in verbs.values())


def test_rbac_subcommand_prints_roles(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rbac", "--namespace", "ops"]) == 0
    docs: list[dict[str, Any]] = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["kind"] for d in docs] == ["Role", "RoleBinding", "Role", "RoleBinding"]
    assert docs[0]["rules"] == rbac.rules()
    assert docs[1]["subjects"][0] == {
        "kind": "ServiceAccount",
        "name": "jobfleet-operator",
        "namespace": "ops",
    }


def test_rbac_for_a_watched_namespace_binds_the_operators_service_account() -> None:
    docs = rbac.manifests("team-a", operator_namespace="jobfleet")
    assert [d["kind"] for d in docs] == ["Role", "RoleBinding"]  # no Lease rules there
    assert docs[0]["metadata"]["namespace"] == "team-a"
    assert docs[1]["subjects"] == [
        {"kind": "ServiceAccount", "name": "jobfleet-operator", "namespace": "jobfleet"}
    ]
