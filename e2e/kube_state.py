"""The kube-state-metrics series the chart's worker rules read, served from the API server.

kube-state-metrics is not available from the Go module proxy this project builds its tools
from, so this stand-in exports the few series the shipped rules use, under kube-state-metrics'
names and labels, computed on each scrape from the real objects (Deployment status written by
the real controller manager from the pods' readiness, container restart counts).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kubernetes import client
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class KubeState(Collector):
    """kube_deployment_spec_replicas, kube_deployment_status_replicas_ready and
    kube_pod_container_status_restarts_total of one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    def collect(self) -> Iterator[Metric]:
        ns = self.namespace
        spec = GaugeMetricFamily(
            "kube_deployment_spec_replicas",
            "Number of desired pods for a deployment.",
            labels=["namespace", "deployment"],
        )
        ready = GaugeMetricFamily(
            "kube_deployment_status_replicas_ready",
            "The number of ready replicas per deployment.",
            labels=["namespace", "deployment"],
        )
        for d in self.apps.list_namespaced_deployment(ns).items:
            spec.add_metric([ns, d.metadata.name], float(d.spec.replicas or 0))
            ready.add_metric([ns, d.metadata.name], float(d.status.ready_replicas or 0))
        restarts = CounterMetricFamily(
            "kube_pod_container_status_restarts",
            "The number of container restarts per container.",
            labels=["namespace", "pod", "uid", "container"],
        )
        for pod in self.core.list_namespaced_pod(ns).items:
            for cs in pod.status.container_statuses or []:
                labels = [ns, pod.metadata.name, pod.metadata.uid, cs.name]
                restarts.add_metric(labels, float(cs.restart_count or 0))
        yield from (spec, ready, restarts)


def serve(api: client.ApiClient, namespace: str, port: int) -> Any:
    """Serve the series on 127.0.0.1:port; returns the server (call .shutdown())."""
    registry = CollectorRegistry()
    registry.register(KubeState(api, namespace))
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    return server
