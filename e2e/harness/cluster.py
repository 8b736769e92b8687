"""The cluster as the harness sees it: the API calls a kubelet makes for itself and its pods."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client import ApiException

from .config import HarnessConfig
from .identity import PodIdentity, cluster_endpoint
from .logs import PodLog
from .podenv import decode_secret
from .status import rfc3339

Obj = dict[str, Any]
log = logging.getLogger("e2e.harness")

# Where pods are bound: a kubelet watches only those.
BOUND = "spec.nodeName!="


class Cluster:
    """One API client shared by the harness and every pod runner (thread-safe: one pool)."""

    def __init__(self, cfg: HarnessConfig) -> None:
        conf = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]  # the loader has no hints
            config_file=str(cfg.kubeconfig), client_configuration=conf
        )
        # One runner thread per pod shares this client; the default pool of 4 would serialize them.
        conf.connection_pool_maxsize = 64
        self.api = client.ApiClient(conf)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self._server, self._ca = cluster_endpoint(cfg.kubeconfig)
        self._token_seconds = cfg.token_seconds
        self._watch: watch.Watch | None = None

    def as_dict(self, obj: object) -> Obj:
        """An API object as a plain dict in API field names (what the runners work with)."""
        data: Obj = self.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return data

    # -- what pod runners read ------------------------------------------------------------

    def configmap_data(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """A ConfigMap's data, or None if it does not exist."""
        try:
            return self.core.read_namespaced_config_map(name, namespace).data or {}
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def secret_data(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """A Secret's data, decoded, or None if it does not exist."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        data = decode_secret(secret.data)
        data.update(secret.string_data or {})
        return data

    def read_pod(self, namespace: str, name: str) -> Obj:
        """The pod as a plain dict in API field names."""
        return self.as_dict(self.core.read_namespaced_pod(name, namespace))

    def identity(self, kubeconfig: Path) -> PodIdentity:
        """A keeper of one pod's service-account token, written as a kubeconfig there."""
        return PodIdentity(self.core, self._server, self._ca, kubeconfig, self._token_seconds)

    # -- what pod runners write -----------------------------------------------------------

    def replace_pod_status(self, pod: Obj) -> None:
        """PUT the pod's status (the harness owns it outright)."""
        meta = pod["metadata"]
        # The client serializes a plain dict as it is; its hints name only the model class.
        body: Any = pod
        self.core.replace_namespaced_pod_status(meta["name"], meta["namespace"], body)

    def delete_pod(self, pod: Obj, uid: str) -> None:
        """The final grace-0 delete, only of this very pod (not a new one of the same name)."""
        meta = pod["metadata"]
        body = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid)
        )
        self.core.delete_namespaced_pod(meta["name"], meta["namespace"], body=body)

    def event(
        self, pod: Obj, container: str | None, reason: str, message: str, warning: bool = False
    ) -> None:
        """Record a kubelet-style Event on the pod (best effort: events never block a pod)."""
        meta = pod["metadata"]
        now = rfc3339(time.time())
        ref: Obj = {"apiVersion": "v1", "kind": "Pod", "namespace": meta["namespace"]}
        ref |= {"name": meta["name"], "uid": meta["uid"]}
        if container:
            ref["fieldPath"] = f"spec.containers{{{container}}}"
        node = pod["spec"].get("nodeName", "")
        body: Any = {  # a plain dict, serialized as it is (see replace_pod_status)
            # Like kubelet: <pod>.<unique suffix>; generateName with a trailing dot is invalid.
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}"},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": "Warning" if warning else "Normal",
            "source": {"component": "kubelet", "host": node},
            "reportingComponent": "kubelet",
            "reportingInstance": node,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(meta["namespace"], body)
        except (ApiException, urllib3.exceptions.HTTPError) as e:
            log.debug("event %s on %s not recorded: %r", reason, meta["name"], e)

    def publish_logs(self, pod: Obj, podlog: PodLog, containers: list[str]) -> None:
        """Point kwok's log server at the pod's CRI logs, so `kubectl logs` works (best effort)."""
        meta = pod["metadata"]
        body = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Logs",
            "metadata": {
                "name": meta["name"],
                # Garbage-collected with the pod.
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}
                ],
            },
            "spec": {
                "logs": [
                    {"containers": [c], "logsFile": str(podlog.cri_path(c)), "follow": True}
                    for c in containers
                ]
            },
        }
        try:
            self.custom.create_namespaced_custom_object(
                "kwok.x-k8s.io", "v1alpha1", meta["namespace"], "logs", body
            )
        except (ApiException, urllib3.exceptions.HTTPError) as e:
            # 404: a cluster without kwok's Logs CRD; the logs stay in files all the same.
            if getattr(e, "status", None) != 409:
                log.debug("Logs for %s not published: %r", meta["name"], e)

    # -- what the harness itself reads ----------------------------------------------------

    def node_annotations(self, name: str) -> Mapping[str, str] | None:
        """The node's annotations, or None when it cannot be read (not there, or not yet)."""
        try:
            node = self.core.read_node(name)
        except ApiException:
            return None
        return (node.metadata.annotations if node.metadata else None) or {}

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """The namespace's labels, or None if it does not exist."""
        try:
            ns = self.core.read_namespace(namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return (ns.metadata.labels if ns.metadata else None) or {}

    def bound_pods(self) -> tuple[list[Obj], str | None]:
        """Every pod bound to a node, as dicts, and the list's resourceVersion."""
        listing = self.core.list_pod_for_all_namespaces(field_selector=BOUND)
        version = listing.metadata.resource_version if listing.metadata else None
        return [self.as_dict(item) for item in listing.items], version

    def watch_bound_pods(self, resource_version: str | None) -> Iterator[tuple[str, Obj]]:
        """(event type, pod as a dict) from `resource_version` on, until stop_watch()."""
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]  # no hints in watch
        stream = self._watch.stream(  # type: ignore[no-untyped-call]
            self.core.list_pod_for_all_namespaces,
            field_selector=BOUND,
            resource_version=resource_version,
            timeout_seconds=300,
        )
        for event in stream:
            yield str(event["type"]), event["raw_object"]

    def stop_watch(self) -> None:
        """End the current watch (its stream returns)."""
        if self._watch is not None:
            self._watch.stop()  # type: ignore[no-untyped-call]
