"""Service-account identity for pod processes: a bound token in a kubeconfig."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from .podenv import ContainerConfigError

Obj = dict[str, Any]


def cluster_endpoint(admin_kubeconfig: Path) -> tuple[str, str]:
    """(server URL, base64 CA bundle) of the current context of the admin kubeconfig."""
    cfg = yaml.safe_load(admin_kubeconfig.read_text())
    ctx_name = cfg.get("current-context")
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    ca = cluster.get("certificate-authority-data", "")
    if not ca and cluster.get("certificate-authority"):
        ca_path = Path(cluster["certificate-authority"])
        if not ca_path.is_absolute():
            ca_path = admin_kubeconfig.parent / ca_path
        ca = base64.b64encode(ca_path.read_bytes()).decode()
    return cluster["server"], ca


class PodIdentity:
    """A TokenRequest for the pod's service account, bound to the pod, kept fresh."""

    def __init__(
        self, core: client.CoreV1Api, server: str, ca_data: str, path: Path, seconds: int
    ) -> None:
        self._core = core
        self._server = server
        self._ca = ca_data
        self.path = path
        self._seconds = seconds
        self._refresh_at = 0.0

    def ensure(self, pod: Obj) -> Path:
        """Write (or refresh at 80 % of its lifetime) the pod's kubeconfig; returns its path."""
        if time.time() < self._refresh_at and self.path.exists():
            return self.path
        meta = pod["metadata"]
        sa = pod["spec"].get("serviceAccountName") or "default"
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[],  # empty: the API server's own audience, like the projected token
                expiration_seconds=self._seconds,
                bound_object_ref=client.V1BoundObjectReference(
                    api_version="v1", kind="Pod", name=meta["name"], uid=meta["uid"]
                ),
            )
        )
        issued = self._core.create_namespaced_service_account_token(
            name=sa, namespace=meta["namespace"], body=request
        ).status
        if issued is None or not issued.token:
            raise ContainerConfigError(f"no token issued for service account {sa!r} yet")
        token = issued.token
        user = f"system:serviceaccount:{meta['namespace']}:{sa}"
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "e2e",
                    "cluster": {"server": self._server, "certificate-authority-data": self._ca},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {
                    "name": "pod",
                    "context": {"cluster": "e2e", "user": user, "namespace": meta["namespace"]},
                }
            ],
            "current-context": "pod",
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(kubeconfig))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)
        self._refresh_at = time.time() + 0.8 * self._seconds
        return self.path
