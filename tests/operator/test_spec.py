"""The Queue spec model: defaults, bounds and the reconciler-side twins of the CEL rules."""

from __future__ import annotations

from typing import Any

import pytest
from jobfleet_operator import crd
from jobfleet_operator.spec import QueueSpec, check_cron, describe_errors
from pydantic import ValidationError

MINIMAL: dict[str, Any] = {
    "redis": {"url": "redis://redis:6379/0"},
    "worker": {"image": "ghcr.io/acme/jobs:1", "handlers": ["acme.jobs"]},
}


def spec(**changes: Any) -> QueueSpec:
    body = {**MINIMAL}
    for dotted, value in changes.items():
        node = body
        *parents, leaf = dotted.split("__")
        for p in parents:
            node[p] = dict(node.get(p, {}))
            node = node[p]
        node[leaf] = value
    return QueueSpec.model_validate(body)


def test_minimal_spec_defaults() -> None:
    s = spec()
    assert s.concurrency == 50
    assert s.autoscaling.min_replicas == 1 and s.autoscaling.max_replicas == 10
    assert s.autoscaling.poll_interval_seconds == 2.0
    assert s.target_backlog_per_replica == 50  # defaults to concurrency
    assert s.worker.mode == "inProcess"
    assert s.isolation == "thread"
    assert s.partitions == 1
    assert s.queue("emails") == "emails"
    assert spec(queueName="mail").queue("emails") == "mail"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
            "minReplicas must be <= autoscaling.maxReplicas",
        ),
        ({"concurrency": -1}, "concurrency\n  Value error, must be a whole number from 1 to 10000"),
        ({"worker": {"image": "x", "mode": "lambda"}}, "'inProcess' or 'sidecar'"),
        ({"worker": {"image": "x", "mode": "sidecar"}}, "worker.sidecar is required"),
        ({"worker": {"image": "x"}}, "worker.handlers must name at least one"),
        (
            {"worker": {"image": "x", "handlers": ["a"], "sidecar": {"image": "y"}}},
            "only allowed when",
        ),
        ({"sla": {"targetWaitSeconds": 0}}, "greater than 0"),
        ({"redis": {"url": "redis://:hunter2@redis:6379"}}, "must not contain a password"),
        ({"redis": {"url": "http://redis"}}, "scheme must be"),
        (
            {"redis": {}},
            "exactly one of redis.url, redis.urlSecretRef, redis.sentinel and redis.cluster",
        ),
        (
            {"redis": {"url": "redis://r:6379", "sentinel": {"masterName": "m", "nodes": ["s"]}}},
            "exactly one of redis.url, redis.urlSecretRef, redis.sentinel and redis.cluster",
        ),
        ({"redis": {"url": "redis+sentinel://s1,s2"}}, "needs the master's name"),
        (
            {
                "redis": {
                    "sentinel": {"masterName": "m", "nodes": ["s"]},
                    "cluster": {"nodes": ["c"]},
                }
            },
            "exactly one of redis.url, redis.urlSecretRef, redis.sentinel and redis.cluster",
        ),
        ({"redis": {"cluster": {"nodes": []}}}, "at least 1 item"),
        ({"redis": {"cluster": {"nodes": ["c:0"]}}}, "match pattern"),
        ({"redis": {"cluster": {"nodes": ["c:6379,d"]}}}, "match pattern"),
        ({"redis": {"cluster": {"nodes": ["c", "c"]}}}, "must not repeat"),
        ({"redis": {"url": "redis+cluster://c1/4"}}, "only database 0"),
        ({"redis": {"url": "redis+cluster://:pw@c1,c2/"}}, "must not contain a password"),
        ({"redis": {"url": "redis+sentinel://:pw@s1/m"}}, "must not contain a password"),
        ({"redis": {"sentinel": {"masterName": "m", "nodes": []}}}, "at least 1 item"),
        ({"redis": {"sentinel": {"masterName": "m"}}}, "redis.sentinel.nodes\n  Field required"),
        ({"redis": {"sentinel": {"nodes": ["s:26379"]}}}, "masterName\n  Field required"),
        ({"redis": {"sentinel": {"masterName": "my master", "nodes": ["s"]}}}, "match pattern"),
        ({"redis": {"sentinel": {"masterName": "m", "nodes": ["s:0"]}}}, "match pattern"),
        ({"redis": {"sentinel": {"masterName": "m", "nodes": ["s:26379,t"]}}}, "match pattern"),
        ({"redis": {"sentinel": {"masterName": "m", "nodes": ["s", "s"]}}}, "must not repeat"),
        ({"redis": {"sentinel": {"masterName": "m", "nodes": ["s"], "db": -1}}}, "greater than"),
        ({"retry": {"baseDelaySeconds": 10, "maxDelaySeconds": 1}}, "maxDelaySeconds must be >="),
        ({"schedules": [{"name": "nightly", "cron": "0 3 * *", "job": "x"}]}, "five fields"),
        (
            {"schedules": [{"name": "nightly", "cron": "0 25 * * *", "job": "x"}]},
            "schedule 'nightly': cron '0 25 * * *' is not valid",
        ),
        (
            {
                "schedules": [
                    {"name": "n", "cron": "@daily", "job": "x", "timezone": "Mars/Olympus"}
                ]
            },
            "unknown time zone",
        ),
        ({"concurrenc": 5}, "Extra inputs are not permitted"),
        ({"isolation": "fork"}, "isolation\n  Input should be 'thread' or 'process'"),
        ({"partitions": 0}, "partitions\n  Value error, must be a whole number from 1 to 256"),
        ({"partitions": 257}, "partitions\n  Value error, must be a whole number from 1 to 256"),
        ({"partitions": 2.5}, "partitions\n  Input should be a valid integer, got a number with a"),
        ({"partitions": "four"}, "partitions\n  Input should be a valid integer"),
        (
            {"partitions": 4, "rateLimit": {"max": 3, "periodSeconds": 1}},
            "rateLimit.max must be at least spec.partitions",
        ),
    ],
)
def test_invalid_specs_are_rejected_readably(changes: dict[str, Any], message: str) -> None:
    body = {**MINIMAL, **changes}
    with pytest.raises(ValidationError) as err:
        QueueSpec.model_validate(body)
    assert message in str(err.value)


def test_described_errors_name_the_field_and_never_echo_a_password() -> None:
    with pytest.raises(ValidationError) as err:
        QueueSpec.model_validate(
            {**MINIMAL, "redis": {"url": "redis://u:hunter2@redis:6379"}, "concurrenc": 1}
        )
    text = describe_errors(err.value)
    assert "hunter2" not in text
    assert text == (
        "spec.redis: redis.url must not contain a password: put it in a Secret and set "
        "redis.passwordSecretRef; spec.concurrenc: unknown field"
    )


def test_cluster_spec() -> None:
    s = spec(redis={"cluster": {"nodes": ["redis-0.redis:6379", "10.0.0.7", "[fd00::7]:7000"]}})
    assert s.redis.cluster is not None
    assert s.redis.plain_url() == "redis+cluster://redis-0.redis:6379,10.0.0.7,[fd00::7]:7000/"
    url = spec(redis={"url": "rediss+cluster://c1,c2:7001/"}).redis.url
    assert url == "rediss+cluster://c1,c2:7001/"


def test_sentinel_spec() -> None:
    s = spec(
        redis={
            "sentinel": {
                "masterName": "jobs",
                "nodes": ["redis-sentinel-0.redis:26379", "10.0.0.7", "[fd00::7]:26380"],
                "passwordSecretRef": {"name": "sentinel", "key": "password"},
            }
        }
    )
    sentinel = s.redis.sentinel
    assert sentinel is not None and sentinel.db == 0
    assert sentinel.url() == (
        "redis+sentinel://redis-sentinel-0.redis:26379,10.0.0.7,[fd00::7]:26380/jobs/0"
    )
    url = spec(redis={"url": "rediss+sentinel://s1,s2:26380/jobs/1"}).redis.url
    assert url == "rediss+sentinel://s1,s2:26380/jobs/1"


@pytest.mark.parametrize("expr", ["*/5 * * * *", "0 3 * * MON-FRI", "@hourly", " 0 0 1 1 * "])
def test_valid_cron(expr: str) -> None:
    assert check_cron(expr) == expr


def test_crd_defaults_equal_model_defaults() -> None:
    """What the API server fills in is what the model would assume."""
    root = crd.build()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    parsed = spec().model_dump(by_alias=True, exclude_none=True)

    def check(node: dict[str, Any], value: Any, path: str) -> None:
        for name, sub in node.get("properties", {}).items():
            if "default" in sub:
                assert value.get(name) == sub["default"], f"{path}.{name}"
            if sub.get("type") == "object" and isinstance(value.get(name), dict):
                check(sub, value[name], f"{path}.{name}")

    check(root, parsed, "spec")


def test_priority_names_are_the_engines_everywhere() -> None:
    """The Queue's per-priority SLA and the schedules' priorities name the engine's levels."""
    from jobfleet.job import Priority
    from jobfleet.settings import PRIORITY_NAMES
    from jobfleet_operator.spec import PrioritySLA

    assert tuple(p.name.lower() for p in Priority) == PRIORITY_NAMES
    assert tuple(PrioritySLA.model_fields) == PRIORITY_NAMES


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (None, 1),  # no limit: one process, as before
        ({"memory": "1Gi"}, 1),
        ({"cpu": 1}, 1),
        ({"cpu": "500m"}, 1),
        ({"cpu": "1500m"}, 2),  # rounded up: the second process uses the half core
        ({"cpu": "2"}, 2),
        ({"cpu": 4}, 4),
        ({"cpu": "3.2"}, 4),
        ({"cpu": "1000"}, 64),  # capped at the settings' bound
        ({"cpu": "lots"}, 1),  # not a quantity the default can read
    ],
)
def test_processes_default_from_the_worker_cpu_limit(
    limits: dict[str, Any] | None, expected: int
) -> None:
    resources = {} if limits is None else {"limits": limits}
    s = spec(worker__resources=resources)
    assert s.worker.processes is None
    assert s.worker.processes_per_pod == expected


def test_explicit_processes_win_and_sidecar_pods_default_to_one() -> None:
    s = spec(worker__processes=3, worker__resources={"limits": {"cpu": 8}})
    assert s.worker.processes_per_pod == 3
    sidecar = spec(
        worker__mode="sidecar",
        worker__handlers=[],
        worker__sidecar={"image": "ghcr.io/acme/handler:1"},
        worker__resources={"limits": {"cpu": 8}},
    )
    assert sidecar.worker.processes_per_pod == 1


@pytest.mark.parametrize("bad", [0, 65, -2])
def test_processes_out_of_range_are_refused_with_the_range(bad: int) -> None:
    with pytest.raises(ValidationError, match="from 1 to 64"):
        spec(worker__processes=bad)
    worker = crd.schema_of(QueueSpec)["properties"]["worker"]["properties"]
    assert (worker["processes"]["minimum"], worker["processes"]["maximum"]) == (1, 64)


def test_a_pod_carries_concurrency_times_processes_by_default() -> None:
    s = spec(concurrency=10, worker__processes=4)
    assert s.target_backlog_per_replica == 40
    assert (
        spec(concurrency=10, worker__resources={"limits": {"cpu": 2}}).target_backlog_per_replica
        == 20
    )
    set_by_hand = spec(concurrency=10, worker__processes=4, autoscaling__targetBacklogPerReplica=7)
    assert set_by_hand.target_backlog_per_replica == 7
