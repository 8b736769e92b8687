"""Render a Queue into its worker ConfigMap and Deployment (pure functions, plain dicts)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from jobfleet import SENTINEL_PASSWORD_ENV, Backoff
from jobfleet.settings import (
    CircuitBreaker,
    GroupRateLimit,
    QueueSettings,
    RateLimit,
    Retention,
    WorkerSettings,
)

from .spec import (
    GROUP,
    KIND,
    VERSION,
    EnvVar,
    GroupsSpec,
    QueueSpec,
    Resources,
    SecretKeyRef,
    engine_values,
)

SETTINGS_KEY = "settings.json"
WORKER_CONTAINER = "worker"
SIDECAR_CONTAINER = "handler"
HTTP_PORT = 8080
FIELD_MANAGER = "jobfleet-operator"
MANAGED_BY = "jobfleet-operator"
QUEUE_LABEL = f"{GROUP}/queue"
CONFIG_HASH_ANNOTATION = f"{GROUP}/config-hash"
# The image's entrypoint may be anything (a user image FROM ours); the command is the contract.
WORKER_COMMAND = ["jobfleet", "worker"]


@dataclass(frozen=True)
class QueueRef:
    """The identity of a Queue object: enough to name and own its children."""

    name: str
    namespace: str
    uid: str


def child_name(queue: QueueRef) -> str:
    """Name of the ConfigMap and the Deployment of a Queue."""
    return f"{queue.name}-jobfleet"


def selector_labels(queue: QueueRef) -> dict[str, str]:
    """The Deployment's selector: immutable once created, so kept minimal and stable."""
    return {QUEUE_LABEL: queue.name, "app.kubernetes.io/component": "worker"}


def labels(queue: QueueRef) -> dict[str, str]:
    """Labels of every object the operator creates for a Queue."""
    return {
        "app.kubernetes.io/name": "jobfleet-worker",
        "app.kubernetes.io/instance": queue.name,
        "app.kubernetes.io/part-of": "jobfleet",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **selector_labels(queue),
    }


def owner_reference(queue: QueueRef) -> dict[str, Any]:
    """Makes the garbage collector delete children with their Queue; no finalizer needed."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": queue.name,
        "uid": queue.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


TLS_SCHEMES = {
    "redis": "rediss",
    "redis+sentinel": "rediss+sentinel",
    "redis+cluster": "rediss+cluster",
}


def settings_redis_url(spec: QueueSpec) -> str | None:
    """The Redis URL for the worker's settings: TLS applied, never a password.

    None when the URL comes from a Secret (the worker then reads `JOBFLEET_REDIS_URL`).
    """
    url = spec.redis.plain_url()
    if url is None:
        return None
    tls = spec.redis.tls
    parts = urlsplit(url)
    if tls.enabled and parts.scheme in TLS_SCHEMES:
        parts = parts._replace(scheme=TLS_SCHEMES[parts.scheme])
    if tls.insecure_skip_verify and parts.scheme in TLS_SCHEMES.values():
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "ssl_cert_reqs"]
        parts = parts._replace(query=urlencode([*query, ("ssl_cert_reqs", "none")]))
    return parts.geturl()


def _group_settings(groups: GroupsSpec | None) -> dict[str, Any]:
    """The queue settings of `spec.groups` (group_concurrency, group_rate_limit)."""
    if groups is None:
        return {}
    out = engine_values(groups, QueueSettings)
    if groups.rate_limit is not None:
        out["group_rate_limit"] = GroupRateLimit(**engine_values(groups.rate_limit, GroupRateLimit))
    return out


def worker_settings(queue: QueueRef, spec: QueueSpec) -> WorkerSettings:
    """What `jobfleet worker` reads from `JOBFLEET_SETTINGS`.

    The engine-facing fields of the spec are the engine's own (`spec.engine_field`), so they
    go over by the engine's names (`engine_values`); only what the spec spells its own way
    (the queue name, jitter, a schedule's `missed`) is converted here.
    """
    retry, retention = spec.retry, spec.retention
    limit, breaker = spec.rate_limit, spec.circuit_breaker
    queue_settings = QueueSettings(
        **engine_values(spec, QueueSettings),
        **engine_values(retry, QueueSettings),
        name=spec.queue(queue.name),
        backoff=Backoff(**engine_values(retry, Backoff), jitter="full" if retry.jitter else "none"),
        retention=Retention(
            **engine_values(retention.completed, Retention),
            **engine_values(retention.dead_letters, Retention),
        ),
        rate_limit=None if limit is None else RateLimit(**engine_values(limit, RateLimit)),
        circuit_breaker=(
            None if breaker is None else CircuitBreaker(**engine_values(breaker, CircuitBreaker))
        ),
        schedules=[s.settings() for s in spec.schedules],
        **_group_settings(spec.groups),
    )
    extra: dict[str, Any] = {}
    if (url := settings_redis_url(spec)) is not None:
        extra["redis_url"] = url
    if spec.worker.mode == "sidecar" and spec.worker.sidecar is not None:
        extra["sidecar_url"] = f"http://127.0.0.1:{spec.worker.sidecar.port}"
    # worker.processes may be unset (its default depends on the pod's CPU limit).
    worker = {**engine_values(spec.worker, WorkerSettings), "processes": processes(spec)}
    return WorkerSettings(
        queue=queue_settings,
        **worker,
        handlers=list(spec.worker.handlers),
        http_port=HTTP_PORT,
        grace_period=float(spec.worker.termination_grace_period_seconds),
        allow_volatile_eviction=spec.redis.allow_volatile_eviction,
        **extra,
    )


def processes(spec: QueueSpec) -> int:
    """Worker processes per pod (`worker.processes`, else from the CPU limit)."""
    return spec.worker.processes_per_pod


def worker_command(spec: QueueSpec) -> list[str]:
    """`jobfleet worker`, with `--processes N` when a pod runs more than one: a Queue that
    leaves it at 1 keeps the pod template it had (no rollout on an operator upgrade)."""
    n = processes(spec)
    return [*WORKER_COMMAND, "--processes", str(n)] if n > 1 else list(WORKER_COMMAND)


def settings_json(queue: QueueRef, spec: QueueSpec) -> str:
    settings = worker_settings(queue, spec)
    # Fields at their default that came after Queues existed (an unpartitioned queue, the
    # asyncio event loop) are left out: the settings, and so the config hash, stay what they
    # were before the field existed, and an operator upgrade does not roll every fleet. The
    # worker reads a missing field as that same default.
    unset: dict[str, Any] = {}
    if settings.queue.partitions == 1:
        unset["queue"] = {"partitions"}
    if settings.event_loop == WorkerSettings.model_fields["event_loop"].default:
        unset["event_loop"] = True
    return settings.model_dump_json(exclude=unset or None)


def config_hash(settings: str) -> str:
    """Put on the pod template so that a settings change rolls the fleet."""
    return hashlib.sha256(settings.encode()).hexdigest()[:16]


def render_configmap(queue: QueueRef, spec: QueueSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": child_name(queue),
            "namespace": queue.namespace,
            "labels": labels(queue),
            "ownerReferences": [owner_reference(queue)],
        },
        "data": {SETTINGS_KEY: settings_json(queue, spec)},
    }


def _env(env: list[EnvVar]) -> list[dict[str, Any]]:
    return [e.model_dump(by_alias=True, exclude_none=True) for e in env]


def _merge_env(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The user's variables win over ours of the same name (duplicates confuse kubectl)."""
    names = {e["name"] for e in theirs}
    return [e for e in ours if e["name"] not in names] + theirs


def _resources(resources: Resources | None) -> dict[str, Any]:
    if resources is None:
        return {}
    out = resources.model_dump(by_alias=True, exclude_none=True)
    return {"resources": out} if out else {}


def _secret_env(name: str, ref: SecretKeyRef) -> dict[str, Any]:
    return {
        "name": name,
        "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
    }


def worker_container(queue: QueueRef, spec: QueueSpec) -> dict[str, Any]:
    worker = spec.worker
    env: list[dict[str, Any]] = [
        {
            "name": "JOBFLEET_SETTINGS",
            "valueFrom": {"configMapKeyRef": {"name": child_name(queue), "key": SETTINGS_KEY}},
        },
    ]
    if spec.redis.url_secret_ref is not None:
        env.append(_secret_env("JOBFLEET_REDIS_URL", spec.redis.url_secret_ref))
    if spec.redis.password_secret_ref is not None:
        env.append(_secret_env("JOBFLEET_REDIS_PASSWORD", spec.redis.password_secret_ref))
    sentinel = spec.redis.sentinel
    if sentinel is not None and sentinel.password_secret_ref is not None:
        env.append(_secret_env(SENTINEL_PASSWORD_ENV, sentinel.password_secret_ref))
    container: dict[str, Any] = {
        "name": WORKER_CONTAINER,
        "image": worker.image,
        "command": worker_command(spec),
        "env": _merge_env(env, _env(worker.env)),
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        # Liveness starts once the worker has opened its port: a worker slow to import on a
        # busy node (seconds) is not restarted in a loop before it ever ran.
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 1,
            "timeoutSeconds": 2,
            "failureThreshold": 120,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # A read-only root still needs somewhere for temp files of handlers.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        **_resources(worker.resources),
    }
    if worker.image_pull_policy:
        container["imagePullPolicy"] = worker.image_pull_policy
    return container


def sidecar_container(spec: QueueSpec) -> dict[str, Any] | None:
    """The user's handler server as a native sidecar: starts before, stops after the worker."""
    sidecar = spec.worker.sidecar
    if spec.worker.mode != "sidecar" or sidecar is None:
        return None
    container: dict[str, Any] = {
        "name": SIDECAR_CONTAINER,
        "image": sidecar.image,
        "restartPolicy": "Always",
        "ports": [{"name": "jobs", "containerPort": sidecar.port, "protocol": "TCP"}],
        **_resources(sidecar.resources),
    }
    if sidecar.image_pull_policy:
        container["imagePullPolicy"] = sidecar.image_pull_policy
    if sidecar.command is not None:
        container["command"] = list(sidecar.command)
    if sidecar.args is not None:
        container["args"] = list(sidecar.args)
    if sidecar.env:
        container["env"] = _env(sidecar.env)
    if sidecar.readiness_path:
        # A native sidecar's startup gates the main containers, so the worker only starts
        # delivering once the handler answers.
        probe = {"httpGet": {"path": sidecar.readiness_path, "port": "jobs"}, "periodSeconds": 5}
        container["readinessProbe"] = probe
        container["startupProbe"] = {**probe, "periodSeconds": 1, "failureThreshold": 120}
    return container


def pod_template(queue: QueueRef, spec: QueueSpec, settings: str) -> dict[str, Any]:
    worker = spec.worker
    annotations = {
        **(worker.pod_annotations or {}),
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(HTTP_PORT),
        "prometheus.io/path": "/metrics",
        CONFIG_HASH_ANNOTATION: config_hash(settings),
    }
    pod: dict[str, Any] = {
        "terminationGracePeriodSeconds": worker.termination_grace_period_seconds,
        # Service links put one env var per Service into the pod; workers need none of them.
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [worker_container(queue, spec)],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if (sidecar := sidecar_container(spec)) is not None:
        pod["initContainers"] = [sidecar]
    if worker.service_account_name:
        pod["serviceAccountName"] = worker.service_account_name
    if worker.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": n} for n in worker.image_pull_secrets]
    if worker.node_selector:
        pod["nodeSelector"] = dict(worker.node_selector)
    if worker.tolerations:
        pod["tolerations"] = [dict(t) for t in worker.tolerations]
    if worker.priority_class_name:
        pod["priorityClassName"] = worker.priority_class_name
    return {
        "metadata": {
            "labels": {**(worker.pod_labels or {}), **labels(queue)},
            "annotations": annotations,
        },
        "spec": pod,
    }


def render_deployment(queue: QueueRef, spec: QueueSpec, replicas: int) -> dict[str, Any]:
    """The worker Deployment; `replicas` is the autoscaler's current decision."""
    settings = settings_json(queue, spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": child_name(queue),
            "namespace": queue.namespace,
            "labels": labels(queue),
            "ownerReferences": [owner_reference(queue)],
        },
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector_labels(queue)},
            # Surge instead of unavailability: a rollout never lowers the fleet's capacity.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": pod_template(queue, spec, settings),
        },
    }
