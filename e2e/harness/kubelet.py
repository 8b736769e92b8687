"""The harness proper: watches pods bound to kwok nodes and runs a PodRunner for each."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from kubernetes.client import ApiException

from .cluster import Cluster, Obj
from .config import KWOK_NODE_ANNOTATION, SIMULATE_ANNOTATION, HarnessConfig
from .pod import PodRunner
from .ports import Ports
from .scrape import ScrapeTargets, container_target

log = logging.getLogger("e2e.harness")

NAMESPACE_CACHE_SECONDS = 10.0


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
        self.cluster = Cluster(cfg)
        self.ports = Ports()
        self.targets = ScrapeTargets(cfg.scrape_targets)
        self._runners: dict[str, PodRunner] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._kwok_nodes: dict[str, bool] = {}
        self._namespaces: dict[str, tuple[bool, float]] = {}
        for d in (cfg.logs_dir, cfg.pods_dir, cfg.procs_dir):
            d.mkdir(parents=True, exist_ok=True)

    # -- selection --------------------------------------------------------------------------

    def _is_kwok_node(self, name: str) -> bool:
        if name not in self._kwok_nodes:
            annotations = self.cluster.node_annotations(name)
            if annotations is None:
                return False  # asked again next time
            self._kwok_nodes[name] = KWOK_NODE_ANNOTATION in annotations
        return self._kwok_nodes[name]

    def _runs_processes(self, namespace: str) -> bool:
        # Cached briefly: a namespace deleted and re-created under the same name may differ.
        cached = self._namespaces.get(namespace)
        if cached is not None and time.monotonic() - cached[1] < NAMESPACE_CACHE_SECONDS:
            return cached[0]
        labels = self.cluster.namespace_labels(namespace)  # an API error: the loop relists
        if labels is None:
            return False
        selected = _selector_matches(self.config.namespace_selector, labels)
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
        runner = PodRunner(
            self.cluster,
            self.config,
            self.ports,
            pod,
            process=process,
            on_exit=self._runner_exited,
        )
        with self._lock:
            self._runners[uid] = runner
        if process:
            self.targets.add(
                uid, [container_target(pod, c.spec, c.port) for c in runner.init + runner.main]
            )
        log.info("pod %s: %s", runner.key, "running as processes" if process else "simulated")
        runner.start()

    def _runner_exited(self, uid: str) -> None:
        with self._lock:
            self._runners.pop(uid, None)
        self.targets.remove(uid)

    def run(self) -> None:
        """List+watch bound pods until stop(); survives watch expiry and API hiccups."""
        while not self._stop.is_set():
            try:
                pods, version = self.cluster.bound_pods()
                seen = set()
                for pod in pods:
                    seen.add(pod["metadata"]["uid"])
                    self._dispatch("MODIFIED", pod)
                with self._lock:
                    vanished = [r for uid, r in self._runners.items() if uid not in seen]
                for r in vanished:
                    r.gone()
                for kind, pod in self.cluster.watch_bound_pods(version):
                    if self._stop.is_set():
                        break
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self._dispatch(kind, pod)
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
        self.cluster.stop_watch()
        with self._lock:
            runners = list(self._runners.values())
        for r in runners:
            r.shutdown()
        deadline = time.time() + 15
        for r in runners:
            r.join(max(deadline - time.time(), 0.1))
