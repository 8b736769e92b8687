"""The harness proper: watches pods bound to kwok nodes and runs a PodRunner for each."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from .config import KWOK_NODE_ANNOTATION, SIMULATE_ANNOTATION, HarnessConfig
from .identity import PodIdentity, cluster_endpoint
from .logs import PodLog
from .pod import PodRunner
from .podenv import decode_secret
from .status import rfc3339

Obj = dict[str, Any]
log = logging.getLogger("e2e.harness")

NAMESPACE_CACHE_SECONDS = 10.0


class Ports:
    """Hands out free loopback ports, never the same one twice in a harness's life."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._given: set[int] = set()

    def allocate(self) -> int:
        """A port nothing listens on now (the OS picks it; we only avoid our own repeats)."""
        with self._lock:
            while True:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    port = int(s.getsockname()[1])
                if port not in self._given:
                    self._given.add(port)
                    return port


def _selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Equality-based label selector ("a=b,c" / "a!=b"), enough for namespace selection."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.strip()) != v.strip().lstrip("="):
                return False
        elif term.strip() not in labels:
            return False
    return True


class Harness:
    """Plays kubelet for every kwok node: pods in selected namespaces become processes."""

    def __init__(self, cfg: HarnessConfig) -> None:
        self.config = cfg
        conf = client.Configuration()
        config.load_kube_config(config_file=str(cfg.kubeconfig), client_configuration=conf)
        # One runner thread per pod shares this client; the default pool of 4 would serialize them.
        conf.connection_pool_maxsize = 64
        self.api = client.ApiClient(conf)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.ports = Ports()
        self._server, self._ca = cluster_endpoint(cfg.kubeconfig)
        self._runners: dict[str, PodRunner] = {}
        self._identities: dict[str, PodIdentity] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._kwok_nodes: dict[str, bool] = {}
        self._namespaces: dict[str, tuple[bool, float]] = {}
        self._watch: watch.Watch | None = None
        for d in (cfg.logs_dir, cfg.pods_dir, cfg.procs_dir):
            d.mkdir(parents=True, exist_ok=True)

    # -- lookups used by runners ------------------------------------------------------------

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
        pod = self.core.read_namespaced_pod(name, namespace)
        return self.api.sanitize_for_serialization(pod)  # type: ignore[no-any-return]

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
        body = {
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

    def identity(self, runner: PodRunner) -> PodIdentity:
        """The token/kubeconfig keeper for a pod."""
        with self._lock:
            ident = self._identities.get(runner.uid)
            if ident is None:
                ident = PodIdentity(
                    self.core,
                    self._server,
                    self._ca,
                    runner.dir / "kubeconfig",
                    self.config.token_seconds,
                )
                self._identities[runner.uid] = ident
            return ident

    # -- selection --------------------------------------------------------------------------

    def _is_kwok_node(self, name: str) -> bool:
        if name not in self._kwok_nodes:
            try:
                node = self.core.read_node(name)
            except ApiException:
                return False
            self._kwok_nodes[name] = KWOK_NODE_ANNOTATION in (node.metadata.annotations or {})
        return self._kwok_nodes[name]

    def _runs_processes(self, namespace: str) -> bool:
        # Cached briefly: a namespace deleted and re-created under the same name may differ.
        cached = self._namespaces.get(namespace)
        if cached is not None and time.monotonic() - cached[1] < NAMESPACE_CACHE_SECONDS:
            return cached[0]
        try:
            ns = self.core.read_namespace(namespace)
        except ApiException as e:
            if e.status == 404:
                return False
            raise  # the watch loop relists and retries
        selected = _selector_matches(self.config.namespace_selector, ns.metadata.labels or {})
        self._namespaces[namespace] = (selected, time.monotonic())
        return selected

    # -- the watch loop -------------------------------------------------------------------

    def _dispatch(self, kind: str, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid = meta["uid"]
        with self._lock:
            runner = self._runners.get(uid)
        if kind == "DELETED":
            if runner is not None:
                runner.gone()
            return
        if runner is not None:
            runner.update(pod)
            return
        node = spec.get("nodeName")
        if not node or not self._is_kwok_node(node):
            return
        if (meta.get("annotations") or {}).get(SIMULATE_ANNOTATION) == "kwok":
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return  # finished before we saw it (e.g. harness restart): nothing to run
        process = self._runs_processes(meta["namespace"])
        runner = PodRunner(self, pod, process=process, on_exit=self._runner_exited)
        with self._lock:
            self._runners[uid] = runner
        log.info("pod %s: %s", runner.key, "running as processes" if process else "simulated")
        runner.start()

    def _runner_exited(self, uid: str) -> None:
        with self._lock:
            self._runners.pop(uid, None)
            self._identities.pop(uid, None)

    def run(self) -> None:
        """List+watch bound pods until stop(); survives watch expiry and API hiccups."""
        while not self._stop.is_set():
            try:
                listing = self.core.list_pod_for_all_namespaces(field_selector="spec.nodeName!=")
                seen = set()
                for item in listing.items:
                    pod = self.api.sanitize_for_serialization(item)
                    seen.add(pod["metadata"]["uid"])
                    self._dispatch("MODIFIED", pod)
                with self._lock:
                    vanished = [r for uid, r in self._runners.items() if uid not in seen]
                for r in vanished:
                    r.gone()
                self._watch = watch.Watch()
                for event in self._watch.stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector="spec.nodeName!=",
                    resource_version=listing.metadata.resource_version,
                    timeout_seconds=300,
                ):
                    if self._stop.is_set():
                        break
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self._dispatch(event["type"], event["raw_object"])
            except ApiException as e:
                if e.status != 410:  # 410: resource version too old, just relist
                    log.warning("watch failed: %s; relisting", e.reason)
                    self._stop.wait(1)
            except Exception as e:  # connection refused while the API server restarts, etc.
                if self._stop.is_set():
                    break
                log.warning("watch error: %r; relisting", e)
                self._stop.wait(1)

    def stop(self) -> None:
        """Stop watching and stop every process (pods are left as they are)."""
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        with self._lock:
            runners = list(self._runners.values())
        for r in runners:
            r.shutdown()
        deadline = time.time() + 15
        for r in runners:
            r.join(max(deadline - time.time(), 0.1))
