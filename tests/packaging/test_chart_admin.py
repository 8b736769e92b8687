"""The chart's admin server (`admin.enabled`): Deployment, Service, token Secret, TLS,
NetworkPolicy, and the values it refuses."""

from __future__ import annotations

from typing import Any

import pytest
from chart_render import CHART, by_kind, needs_helm, render, render_error
from jobfleet.cli import build_parser

ADMIN_VALUES = CHART / "ci" / "admin-values.yaml"


def admin_objects(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        d
        for d in docs
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "admin"
    ]


@needs_helm
def test_admin_is_off_by_default() -> None:
    assert admin_objects(render()) == []
    assert admin_objects(render(sets={"redis.dev.enabled": "true"})) == []


@needs_helm
def test_admin_deployment_runs_jobfleet_admin_on_the_charts_redis() -> None:
    docs = render(ADMIN_VALUES)
    (dep,) = [
        d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "jf-jobfleet-admin"
    ]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == ["jobfleet"]
    args = build_parser().parse_args(c["args"])  # every flag is one the CLI has
    assert (args.command, args.host, args.port) == ("admin", "0.0.0.0", 8080)
    assert (args.tokens, args.max_body) == ("/etc/jobfleet/tokens", 1048576)
    assert (args.tls_cert, args.tls_key) == (
        "/etc/jobfleet/tls/tls.crt",
        "/etc/jobfleet/tls/tls.key",
    )
    (env,) = c["env"]
    assert env == {
        "name": "JOBFLEET_REDIS_URL",
        "valueFrom": {"secretKeyRef": {"name": "jf-jobfleet-redis", "key": "url"}},
    }
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http", "scheme": "HTTPS"}
    assert pod["automountServiceAccountToken"] is False
    # A directory mount, never subPath: a Secret update must reach the running server.
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["tokens"] == {
        "name": "tokens",
        "mountPath": "/etc/jobfleet/tokens",
        "readOnly": True,
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tokens"]["secret"]["secretName"] == "jf-jobfleet-admin-tokens"
    assert volumes["tls"]["secret"]["secretName"] == "admin-tls"


@needs_helm
def test_admin_tokens_secret_has_one_key_per_role() -> None:
    (secret,) = [
        s for s in by_kind(render(ADMIN_VALUES), "Secret") if "admin" in s["metadata"]["name"]
    ]
    assert secret["metadata"]["name"] == "jf-jobfleet-admin-tokens"
    assert secret["stringData"] == {
        "admin": "ci-admin-token-0123456789abcdef",
        "viewer": "ci-viewer-token-0123456789abcdef\nci-viewer-token-fedcba9876543210",
    }


@needs_helm
def test_admin_service_and_network_policy() -> None:
    docs = admin_objects(render(ADMIN_VALUES))
    (svc,) = by_kind(docs, "Service")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert svc["spec"]["selector"]["app.kubernetes.io/component"] == "admin"
    (policy,) = by_kind(docs, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == svc["spec"]["selector"]
    assert policy["spec"]["ingress"] == [
        {"ports": [{"port": "http", "protocol": "TCP"}], "from": [{"podSelector": {}}]}
    ]


@needs_helm
def test_an_existing_token_secret_is_used_as_it_is() -> None:
    sets = {
        "admin.enabled": "true",
        "redis.url": "redis://r:6379/0",
        "admin.existingSecret": "ops-tokens",
    }
    docs = admin_objects(render(sets=sets))
    assert by_kind(docs, "Secret") == []
    (dep,) = by_kind(docs, "Deployment")
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tokens"]["secret"]["secretName"] == "ops-tokens"
    assert "tls" not in volumes
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["livenessProbe"]["httpGet"]["scheme"] == "HTTP"
    assert by_kind(docs, "NetworkPolicy") == []


@needs_helm
@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"admin.enabled": "true"}, "admin.enabled needs a Redis"),
        ({"admin.enabled": "true", "redis.url": "redis://r/0"}, "admin.enabled needs tokens"),
        (
            {
                "admin.enabled": "true",
                "redis.url": "redis://r/0",
                "admin.existingSecret": "s",
                "admin.tokens.admin[0]": "0123456789abcdef0",
            },
            "set admin.tokens or admin.existingSecret, not both",
        ),
        ({"admin.tokens.admin[0]": "short"}, "/admin/tokens/admin/0"),
    ],
)
def test_admin_values_that_are_refused(sets: dict[str, str], message: str) -> None:
    assert message in render_error(sets)


@needs_helm
@pytest.mark.parametrize(
    ("sets", "processes"),
    [
        ({}, 1),  # no CPU limit: one process
        ({"admin.resources.limits.cpu": "1500m"}, 2),  # the half core the first cannot use
        ({"admin.resources.limits.cpu": "2"}, 2),
        ({"admin.resources.limits.cpu": "0.5"}, 1),
        ({"admin.resources.limits.cpu": "200"}, 64),
        ({"admin.resources.limits.cpu": "2", "admin.processes": "3"}, 3),
    ],
)
def test_admin_processes_default_from_the_cpu_limit(sets: dict[str, str], processes: int) -> None:
    (dep,) = [
        d
        for d in by_kind(render(ADMIN_VALUES, sets=sets), "Deployment")
        if d["metadata"]["name"] == "jf-jobfleet-admin"
    ]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert build_parser().parse_args(c["args"]).processes == processes


@needs_helm
def test_admin_processes_out_of_range_is_refused() -> None:
    assert "processes" in render_error({"admin.processes": "65"}, ADMIN_VALUES)
