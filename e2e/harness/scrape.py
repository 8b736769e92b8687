"""Prometheus file_sd targets for the containers the harness runs, rewritten as pods come and go."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

Obj = dict[str, Any]


def _label_name(key: str) -> str:
    # kubernetes_sd's rule: every character outside [a-zA-Z0-9_] becomes "_".
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


def container_target(pod: Obj, container: Obj, port: int) -> Obj:
    """One file_sd entry: the container's loopback port with kubernetes_sd's __meta_ labels.

    The harness gives every container its own port (JOBFLEET_HTTP_PORT), which the API server
    never learns, so Prometheus cannot discover it there; the labels are the ones a pod role
    of kubernetes_sd would set, so the scrape configs relabel them as the Prometheus
    Operator's PodMonitor/ServiceMonitor configs do.
    """
    meta = pod["metadata"]
    labels = {
        "__meta_kubernetes_namespace": meta["namespace"],
        "__meta_kubernetes_pod_name": meta["name"],
        "__meta_kubernetes_pod_uid": meta["uid"],
        "__meta_kubernetes_pod_container_name": container["name"],
        "__meta_kubernetes_pod_node_name": (pod.get("spec") or {}).get("nodeName", ""),
    }
    ports = container.get("ports") or []
    if ports and ports[0].get("name"):
        labels["__meta_kubernetes_pod_container_port_name"] = ports[0]["name"]
    for key, value in (meta.get("labels") or {}).items():
        labels[f"__meta_kubernetes_pod_label_{_label_name(key)}"] = value
        labels[f"__meta_kubernetes_pod_labelpresent_{_label_name(key)}"] = "true"
    return {"targets": [f"127.0.0.1:{port}"], "labels": labels}


class ScrapeTargets:
    """The targets of every pod that runs as processes, in one file_sd JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._pods: dict[str, list[Obj]] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write()

    def add(self, uid: str, targets: list[Obj]) -> None:
        """A pod's containers (each with its port) start being scraped."""
        with self._lock:
            self._pods[uid] = targets
            self._write()

    def remove(self, uid: str) -> None:
        """The pod's runner has stopped: its targets go."""
        with self._lock:
            if self._pods.pop(uid, None) is not None:
                self._write()

    def _write(self) -> None:
        # Atomic replace: Prometheus' file watcher never reads a half-written file.
        entries = [t for targets in self._pods.values() for t in targets]
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))
        tmp.replace(self.path)
