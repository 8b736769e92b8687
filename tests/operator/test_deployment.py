"""Rendering a Queue into its ConfigMap and Deployment, field by field (acceptance 2)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jobfleet.settings import WorkerSettings, load_settings
from jobfleet_operator.deployment import (
    CONFIG_HASH_ANNOTATION,
    QueueRef,
    render_configmap,
    render_deployment,
    settings_json,
    worker_settings,
)
from jobfleet_operator.spec import QueueSpec
from pydantic import ValidationError

Q = QueueRef(name="emails", namespace="shop", uid="0f9c-uid")

IN_PROCESS: dict[str, Any] = {
    "redis": {
        "url": "redis://redis.shop:6379/2",
        "passwordSecretRef": {"name": "redis", "key": "password"},
    },
    "worker": {
        "image": "ghcr.io/acme/jobs:1.2",
        "imagePullPolicy": "IfNotPresent",
        "handlers": ["acme.jobs", "acme.mail"],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": 1}},
        "env": [{"name": "LOG_LEVEL", "value": "debug"}],
        "terminationGracePeriodSeconds": 90,
        "serviceAccountName": "jobs",
        "imagePullSecrets": ["ghcr"],
        "nodeSelector": {"pool": "jobs"},
        "tolerations": [{"key": "jobs", "operator": "Exists", "effect": "NoSchedule"}],
        "podLabels": {"team": "mail"},
        "podAnnotations": {"team.acme/owner": "mail"},
    },
    "concurrency": 20,
    "retry": {
        "maxAttempts": 7,
        "backoff": "fixed",
        "baseDelaySeconds": 5,
        "maxDelaySeconds": 60,
        "jitter": False,
    },
    "jobTimeoutSeconds": 120,
    "leaseSeconds": 15,
    "maxStalls": 4,
    "retention": {
        "completed": {"maxCount": 100, "maxAgeSeconds": 600},
        "deadLetters": {"maxCount": 50},
    },
}

SIDECAR: dict[str, Any] = {
    "redis": {"urlSecretRef": {"name": "redis-url", "key": "url"}},
    "worker": {
        "image": "ghcr.io/jobfleet/worker:0.1",
        "mode": "sidecar",
        "sidecar": {
            "image": "ghcr.io/acme/node-jobs:3",
            "command": ["node"],
            "args": ["server.js"],
            "port": 9000,
            "readinessPath": "/ready",
            "env": [{"name": "NODE_ENV", "value": "production"}],
            "resources": {"limits": {"memory": "512Mi"}},
        },
    },
}


def deploy(body: dict[str, Any], replicas: int = 3) -> dict[str, Any]:
    return render_deployment(Q, QueueSpec.model_validate(body), replicas)


def container(d: dict[str, Any], name: str = "worker") -> dict[str, Any]:
    pod = d["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] + pod.get("initContainers", []) if c["name"] == name)


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


# ---- metadata and ownership -------------------------------------------------------------------


def test_metadata_and_owner_reference() -> None:
    d = deploy(IN_PROCESS)
    meta = d["metadata"]
    assert (d["apiVersion"], d["kind"]) == ("apps/v1", "Deployment")
    assert (meta["name"], meta["namespace"]) == ("emails-jobfleet", "shop")
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "jobfleet-operator"
    assert meta["labels"]["jobfleet.dev/queue"] == "emails"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "jobfleet.dev/v1alpha1",
            "kind": "Queue",
            "name": "emails",
            "uid": "0f9c-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_selector_matches_pod_labels() -> None:
    d = deploy(IN_PROCESS)
    selector = d["spec"]["selector"]["matchLabels"]
    pod_labels = d["spec"]["template"]["metadata"]["labels"]
    assert selector == {"jobfleet.dev/queue": "emails", "app.kubernetes.io/component": "worker"}
    assert selector.items() <= pod_labels.items()
    assert pod_labels["team"] == "mail"


def test_user_pod_labels_cannot_break_the_selector() -> None:
    body = {
        **IN_PROCESS,
        "worker": {**IN_PROCESS["worker"], "podLabels": {"jobfleet.dev/queue": "x"}},
    }
    pod_labels = deploy(body)["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["jobfleet.dev/queue"] == "emails"


def test_replicas_and_strategy() -> None:
    spec = deploy(IN_PROCESS, replicas=7)["spec"]
    assert spec["replicas"] == 7
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": 0}


# ---- in-process pod ---------------------------------------------------------------------------


def test_in_process_pod() -> None:
    d = deploy(IN_PROCESS)
    pod = d["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 90
    assert pod["serviceAccountName"] == "jobs"
    assert pod["imagePullSecrets"] == [{"name": "ghcr"}]
    assert pod["nodeSelector"] == {"pool": "jobs"}
    assert pod["tolerations"] == [{"key": "jobs", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["enableServiceLinks"] is False
    assert "initContainers" not in pod
    assert [c["name"] for c in pod["containers"]] == ["worker"]


def test_worker_container() -> None:
    c = container(deploy(IN_PROCESS))
    assert c["image"] == "ghcr.io/acme/jobs:1.2"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["command"] == ["jobfleet", "worker"]
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # A slow start (imports on a busy node) gets two minutes before liveness may restart it.
    assert c["startupProbe"]["httpGet"] == c["livenessProbe"]["httpGet"]
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": 1}}
    assert c["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def with_worker(**changes: Any) -> dict[str, Any]:
    return {**IN_PROCESS, "worker": {**IN_PROCESS["worker"], **changes}}


def test_processes_from_the_cpu_limit_reach_the_command_and_the_settings() -> None:
    two_cores = with_worker(resources={"limits": {"cpu": "2"}})
    c = container(deploy(two_cores))
    assert c["command"] == ["jobfleet", "worker", "--processes", "2"]
    spec = QueueSpec.model_validate(two_cores)
    assert worker_settings(Q, spec).processes == 2
    # The worker, reading the command's flag over the ConfigMap, runs what was rendered.
    assert load_settings(
        env={"JOBFLEET_SETTINGS": settings_json(Q, spec)}, overrides={"processes": 2}
    ) == worker_settings(Q, spec)


def test_explicit_processes_win_and_one_process_keeps_the_old_command() -> None:
    c = container(deploy(with_worker(processes=3, resources={"limits": {"cpu": 1}})))
    assert c["command"] == ["jobfleet", "worker", "--processes", "3"]
    one = deploy(with_worker(processes=1, resources={"limits": {"cpu": 8}}))
    assert container(one)["command"] == ["jobfleet", "worker"]
    assert worker_settings(Q, QueueSpec.model_validate(IN_PROCESS)).processes == 1


def test_worker_env_wires_settings_and_secrets() -> None:
    env = env_of(container(deploy(IN_PROCESS)))
    assert env["JOBFLEET_SETTINGS"] == {
        "configMapKeyRef": {"name": "emails-jobfleet", "key": "settings.json"}
    }
    assert env["JOBFLEET_REDIS_PASSWORD"] == {"secretKeyRef": {"name": "redis", "key": "password"}}
    assert "JOBFLEET_REDIS_URL" not in env
    assert env["LOG_LEVEL"] == "debug"


def test_user_env_overrides_ours_without_duplicates() -> None:
    worker = {**IN_PROCESS["worker"], "env": [{"name": "JOBFLEET_SETTINGS", "value": "{}"}]}
    c = container(deploy({**IN_PROCESS, "worker": worker}))
    names = [e["name"] for e in c["env"]]
    assert len(names) == len(set(names))
    assert env_of(c)["JOBFLEET_SETTINGS"] == "{}"


def test_pod_annotations() -> None:
    annotations = deploy(IN_PROCESS)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["team.acme/owner"] == "mail"
    assert len(annotations[CONFIG_HASH_ANNOTATION]) == 16


def test_config_change_changes_the_hash_and_only_then() -> None:
    def hash_of(body: dict[str, Any], replicas: int = 3) -> str:
        return deploy(body, replicas)["spec"]["template"]["metadata"]["annotations"][
            CONFIG_HASH_ANNOTATION
        ]

    assert hash_of(IN_PROCESS) == hash_of(IN_PROCESS, replicas=9)
    assert hash_of(IN_PROCESS) != hash_of({**IN_PROCESS, "concurrency": 21})
    # autoscaling is the operator's business, not the workers': no rollout for it
    assert hash_of(IN_PROCESS) == hash_of({**IN_PROCESS, "autoscaling": {"maxReplicas": 3}})


# ---- sidecar pod ------------------------------------------------------------------------------


def test_sidecar_pod() -> None:
    d = deploy(SIDECAR)
    pod = d["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["worker"]
    assert [c["name"] for c in pod["initContainers"]] == ["handler"]
    side = container(d, "handler")
    assert side["restartPolicy"] == "Always"  # native sidecar: starts first, stops last
    assert side["image"] == "ghcr.io/acme/node-jobs:3"
    assert (side["command"], side["args"]) == (["node"], ["server.js"])
    assert side["ports"] == [{"name": "jobs", "containerPort": 9000, "protocol": "TCP"}]
    assert side["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "jobs"}
    assert side["startupProbe"]["httpGet"] == {"path": "/ready", "port": "jobs"}
    assert side["env"] == [{"name": "NODE_ENV", "value": "production"}]
    assert side["resources"] == {"limits": {"memory": "512Mi"}}


def test_sidecar_worker_env_and_settings() -> None:
    d = deploy(SIDECAR)
    env = env_of(container(d))
    assert env["JOBFLEET_REDIS_URL"] == {"secretKeyRef": {"name": "redis-url", "key": "url"}}
    assert "JOBFLEET_REDIS_PASSWORD" not in env
    s = worker_settings(Q, QueueSpec.model_validate(SIDECAR))
    assert s.mode == "sidecar"
    assert s.sidecar_url == "http://127.0.0.1:9000"
    assert s.handlers == []


# ---- settings ---------------------------------------------------------------------------------


def test_configmap() -> None:
    cm = render_configmap(Q, QueueSpec.model_validate(IN_PROCESS))
    assert (cm["apiVersion"], cm["kind"]) == ("v1", "ConfigMap")
    assert cm["metadata"]["name"] == "emails-jobfleet"
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "0f9c-uid"
    assert set(cm["data"]) == {"settings.json"}


def test_settings_field_by_field() -> None:
    s = WorkerSettings.model_validate_json(settings_json(Q, QueueSpec.model_validate(IN_PROCESS)))
    assert s.redis_url == "redis://redis.shop:6379/2"
    assert s.handlers == ["acme.jobs", "acme.mail"]
    assert s.mode == "inProcess"
    assert s.http_port == 8080
    assert s.grace_period == 90.0
    q = s.queue
    assert (q.name, q.concurrency, q.max_attempts) == ("emails", 20, 7)
    assert (q.backoff.kind, q.backoff.base, q.backoff.cap, q.backoff.jitter) == (
        "fixed",
        5,
        60,
        "none",
    )
    assert (q.job_timeout, q.lease, q.poison_after) == (120, 15, 4)
    assert q.isolation == "thread"  # the default, unless the Queue asks
    process = QueueSpec.model_validate({**IN_PROCESS, "isolation": "process"})
    rendered = WorkerSettings.model_validate_json(settings_json(Q, process))
    assert rendered.queue.isolation == "process"
    assert (q.retention.completed_count, q.retention.completed_age) == (100, 600)
    assert (q.retention.dead_count, q.retention.dead_age) == (50, None)


def test_settings_round_trip_through_the_worker_loader() -> None:
    """The JSON is exactly what `jobfleet worker` accepts from JOBFLEET_SETTINGS."""
    text = render_configmap(Q, QueueSpec.model_validate(IN_PROCESS))["data"]["settings.json"]
    loaded = load_settings(env={"JOBFLEET_SETTINGS": text})
    assert loaded == WorkerSettings.model_validate(json.loads(text))


def test_tls_settings() -> None:
    body = {
        **IN_PROCESS,
        "redis": {"url": "redis://r:6380/0", "tls": {"enabled": True, "insecureSkipVerify": True}},
    }
    s = worker_settings(Q, QueueSpec.model_validate(body))
    assert s.redis_url == "rediss://r:6380/0?ssl_cert_reqs=none"


SENTINEL: dict[str, Any] = {
    **IN_PROCESS,
    "redis": {
        "sentinel": {
            "masterName": "jobs",
            "nodes": ["sentinel-0.redis:26379", "sentinel-1.redis:26380", "[fd00::7]"],
            "db": 3,
            "passwordSecretRef": {"name": "sentinel", "key": "pw"},
        },
        "passwordSecretRef": {"name": "redis", "key": "password"},
    },
}


def test_sentinel_settings_url() -> None:
    s = worker_settings(Q, QueueSpec.model_validate(SENTINEL))
    assert s.redis_url == (
        "redis+sentinel://sentinel-0.redis:26379,sentinel-1.redis:26380,[fd00::7]/jobs/3"
    )


def test_sentinel_with_tls() -> None:
    redis = {**SENTINEL["redis"], "tls": {"enabled": True}}
    s = worker_settings(Q, QueueSpec.model_validate({**SENTINEL, "redis": redis}))
    assert s.redis_url.startswith("rediss+sentinel://sentinel-0.redis:26379,")
    assert s.redis_url.endswith("/jobs/3")
    redis["tls"] = {"enabled": True, "insecureSkipVerify": True}
    s = worker_settings(Q, QueueSpec.model_validate({**SENTINEL, "redis": redis}))
    assert s.redis_url.endswith("/jobs/3?ssl_cert_reqs=none")
    url = {"url": "redis+sentinel://s1,s2/jobs", "tls": {"enabled": True}}
    s = worker_settings(Q, QueueSpec.model_validate({**SENTINEL, "redis": url}))
    assert s.redis_url == "rediss+sentinel://s1,s2/jobs"


CLUSTER: dict[str, Any] = {
    **IN_PROCESS,
    "redis": {
        "cluster": {"nodes": ["redis-0.redis:6379", "redis-1.redis", "[fd00::7]:7000"]},
        "passwordSecretRef": {"name": "redis", "key": "password"},
    },
}


def test_cluster_settings_url_with_and_without_tls() -> None:
    s = worker_settings(Q, QueueSpec.model_validate(CLUSTER))
    assert s.redis_url == "redis+cluster://redis-0.redis:6379,redis-1.redis,[fd00::7]:7000/"
    redis = {**CLUSTER["redis"], "tls": {"enabled": True, "insecureSkipVerify": True}}
    s = worker_settings(Q, QueueSpec.model_validate({**CLUSTER, "redis": redis}))
    assert s.redis_url == (
        "rediss+cluster://redis-0.redis:6379,redis-1.redis,[fd00::7]:7000/?ssl_cert_reqs=none"
    )
    env = env_of(container(deploy(CLUSTER)))
    assert env["JOBFLEET_REDIS_PASSWORD"] == {"secretKeyRef": {"name": "redis", "key": "password"}}


def test_sentinel_worker_env_has_both_passwords_from_secrets() -> None:
    env = env_of(container(deploy(SENTINEL)))
    assert env["JOBFLEET_REDIS_PASSWORD"] == {"secretKeyRef": {"name": "redis", "key": "password"}}
    assert env["JOBFLEET_REDIS_SENTINEL_PASSWORD"] == {
        "secretKeyRef": {"name": "sentinel", "key": "pw"}
    }
    assert "JOBFLEET_REDIS_URL" not in env
    without = {**SENTINEL["redis"]["sentinel"]}
    del without["passwordSecretRef"]
    body = {**SENTINEL, "redis": {"sentinel": without}}
    env = env_of(container(deploy(body)))
    assert "JOBFLEET_REDIS_SENTINEL_PASSWORD" not in env
    assert "JOBFLEET_REDIS_PASSWORD" not in env


def test_sentinel_settings_round_trip_through_the_worker_loader() -> None:
    text = render_configmap(Q, QueueSpec.model_validate(SENTINEL))["data"]["settings.json"]
    assert load_settings(env={"JOBFLEET_SETTINGS": text}).redis_url.startswith("redis+sentinel://")


def test_queue_name_override() -> None:
    s = worker_settings(Q, QueueSpec.model_validate({**IN_PROCESS, "queueName": "mail.v2"}))
    assert s.queue.name == "mail.v2"


def test_no_secret_value_in_rendered_objects() -> None:
    rendered = json.dumps(
        [deploy(IN_PROCESS), render_configmap(Q, QueueSpec.model_validate(IN_PROCESS))]
    )
    assert "password" not in rendered.replace('"key": "password"', "")


def test_flow_control_settings() -> None:
    body = {
        **IN_PROCESS,
        "rateLimit": {"max": 100, "periodSeconds": 60, "key": "tenant"},
        "circuitBreaker": {
            "scope": "handler",
            "failureThreshold": 10,
            "failureRatio": 0.5,
            "windowSeconds": 30,
            "resetTimeoutSeconds": 15,
            "halfOpenProbes": 2,
        },
        "schedules": [
            {
                "name": "nightly-report",
                "cron": "0 3 * * *",
                "timezone": "Europe/Berlin",
                "job": "report",
                "payload": {"kind": "daily"},
                "priority": "low",
                "missed": "runOnce",
            }
        ],
    }
    q = worker_settings(Q, QueueSpec.model_validate(body)).queue
    assert q.rate_limit is not None
    assert (q.rate_limit.max, q.rate_limit.period, q.rate_limit.key_field) == (100, 60, "tenant")
    cb = q.circuit_breaker
    assert cb is not None
    assert (cb.scope, cb.failure_threshold, cb.failure_ratio) == ("handler", 10, 0.5)
    assert (cb.window, cb.reset_timeout, cb.half_open_probes) == (30, 15, 2)
    [s] = q.schedules
    assert (s.name, s.cron, s.timezone, s.job) == (
        "nightly-report",
        "0 3 * * *",
        "Europe/Berlin",
        "report",
    )
    assert (s.payload, s.priority, s.enabled, s.missed) == (
        {"kind": "daily"},
        "low",
        True,
        "run_once",
    )


def test_no_flow_control_by_default() -> None:
    q = worker_settings(Q, QueueSpec.model_validate(IN_PROCESS)).queue
    assert (q.rate_limit, q.circuit_breaker, q.schedules) == (None, None, [])


def test_group_limits_reach_the_worker() -> None:
    body = {
        **IN_PROCESS,
        "groups": {"concurrency": 3, "rateLimit": {"max": 10, "periodSeconds": 2}},
    }
    q = worker_settings(Q, QueueSpec.model_validate(body)).queue
    assert q.group_concurrency == 3
    assert q.group_rate_limit is not None
    assert (q.group_rate_limit.max, q.group_rate_limit.period) == (10, 2)
    plain = worker_settings(Q, QueueSpec.model_validate(IN_PROCESS)).queue
    assert (plain.group_concurrency, plain.group_rate_limit) == (None, None)


def test_group_limits_are_bounded() -> None:
    with pytest.raises(ValidationError, match=r"groups.concurrency(.|\n)*from 1 to 100000"):
        QueueSpec.model_validate({**IN_PROCESS, "groups": {"concurrency": 0}})


# ---- partitions -------------------------------------------------------------------------------


def test_partitions_reach_the_worker_settings() -> None:
    text = settings_json(Q, QueueSpec.model_validate({**IN_PROCESS, "partitions": 8}))
    assert json.loads(text)["queue"]["partitions"] == 8
    assert WorkerSettings.model_validate_json(text).queue.partitions == 8


def test_an_unpartitioned_queue_keeps_its_settings_and_hash() -> None:
    """K = 1 is left out of the settings JSON: the config hash of every existing Queue stays
    what it was before the field existed, so an operator upgrade rolls no fleet."""

    def rendered(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        d = deploy(body)
        cm = render_configmap(Q, QueueSpec.model_validate(body))["data"]["settings.json"]
        return json.loads(cm), d["spec"]["template"]["metadata"]["annotations"][
            CONFIG_HASH_ANNOTATION
        ]

    unset, unset_hash = rendered(IN_PROCESS)
    one, one_hash = rendered({**IN_PROCESS, "partitions": 1})
    four, four_hash = rendered({**IN_PROCESS, "partitions": 4})
    assert "partitions" not in unset["queue"] and "partitions" not in one["queue"]
    assert unset == one and unset_hash == one_hash
    assert four_hash != unset_hash  # a different K is a different fleet
    assert {k: v for k, v in four["queue"].items() if k != "partitions"} == unset["queue"]
    # the worker reads the missing field as its default
    assert WorkerSettings.model_validate(unset).queue.partitions == 1


def test_a_partitioned_rate_limit_reaches_the_worker_whole() -> None:
    """The Queue's limit is the logical queue's; each partition takes its share in the worker."""
    limit = {"max": 8, "periodSeconds": 1}
    body = {**IN_PROCESS, "partitions": 4, "rateLimit": limit}
    q = WorkerSettings.model_validate_json(settings_json(Q, QueueSpec.model_validate(body))).queue
    assert (q.partitions, q.rate_limit and q.rate_limit.max) == (4, 8)


# ---- the event loop ---------------------------------------------------------------------------


def with_loop(loop: str | None) -> dict[str, Any]:
    worker = dict(IN_PROCESS["worker"])
    if loop is not None:
        worker["eventLoop"] = loop
    return {**IN_PROCESS, "worker": worker}


def test_event_loop_uvloop_reaches_every_worker_process() -> None:
    body = with_loop("uvloop")
    text = settings_json(Q, QueueSpec.model_validate(body))
    assert json.loads(text)["event_loop"] == "uvloop"
    # the settings every process reads (a --processes child gets them from its supervisor)
    assert WorkerSettings.model_validate_json(text).event_loop == "uvloop"
    d = deploy(body)
    cm = render_configmap(Q, QueueSpec.model_validate(body))["data"]["settings.json"]
    assert json.loads(cm)["event_loop"] == "uvloop"
    assert container(d)["command"] == container(deploy(with_loop(None)))["command"]


def test_the_default_event_loop_keeps_the_settings_and_hash_a_queue_had() -> None:
    """asyncio (the default) is left out of the settings JSON: an operator upgrade rolls no
    fleet that does not set the field."""

    def rendered(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        cm = render_configmap(Q, QueueSpec.model_validate(body))["data"]["settings.json"]
        annotations = deploy(body)["spec"]["template"]["metadata"]["annotations"]
        return json.loads(cm), annotations[CONFIG_HASH_ANNOTATION]

    unset, unset_hash = rendered(with_loop(None))
    default, default_hash = rendered(with_loop("asyncio"))
    uv, uv_hash = rendered(with_loop("uvloop"))
    assert "event_loop" not in unset and unset == default and unset_hash == default_hash
    assert uv_hash != unset_hash  # asking for uvloop rolls the fleet onto it
    assert {k: v for k, v in uv.items() if k != "event_loop"} == unset
    assert WorkerSettings.model_validate(unset).event_loop == "asyncio"


def test_event_loop_is_one_of_two() -> None:
    with pytest.raises(ValidationError, match=r"worker.eventLoop(.|\n)*'asyncio' or 'uvloop'"):
        QueueSpec.model_validate(with_loop("trio"))
