"""A small asyncio Kubernetes API client: login, server-side apply, patches, scale, events."""

from __future__ import annotations

import datetime as dt
import logging
import os
import ssl
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from .deployment import FIELD_MANAGER
from .spec import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
REPORTING_CONTROLLER = f"{GROUP}/operator"


class KubeError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class KubeConfigError(ValueError):
    """The kubeconfig asks for something this client cannot do; says what, never a secret."""


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to authenticate; built once at start."""

    server: str
    ca_path: str | None = None
    insecure: bool = False
    cert_path: str | None = None
    key_path: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # The kubeconfig's proxy-url (http:// or https://); it may carry a user and password.
    proxy: str | None = field(default=None, repr=False)
    # kubernetes.client.Configuration: refreshes rotated tokens; holds secrets, so no repr.
    config: Any = field(default=None, repr=False)

    def token(self) -> str | None:
        """The current bearer token (re-read so that rotated service-account tokens work)."""
        if self.config is None:
            return None
        header: str | None = self.config.get_api_key_with_prefix(
            "BearerToken"
        ) or self.config.get_api_key_with_prefix("authorization")
        if not header:
            return None
        return header.split(" ", 1)[1] if " " in header else header


def load_credentials() -> Credentials:
    """kubeconfig when `$KUBECONFIG` is set, else in-cluster, else ~/.kube/config.

    Deliberately not kopf's order (in-cluster first): in e2e, pods run as local processes with
    a kubeconfig holding their ServiceAccount token and must use exactly that.
    """
    from kubernetes import client, config  # the operator extra; imported lazily

    cfg = client.Configuration()
    if os.environ.get("KUBECONFIG"):
        config.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    elif os.environ.get("KUBERNETES_SERVICE_HOST") and SERVICE_ACCOUNT_TOKEN.exists():
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return credentials_from(cfg)


PROXY_SCHEMES = ("http", "https")


def credentials_from(cfg: Any) -> Credentials:
    """Our Credentials from a kubernetes.client.Configuration the kubernetes loader filled.

    A kubeconfig's `proxy-url` (the loader's `proxy`) goes to every request, ours and kopf's.
    Its `tls-server-name` (the loader's `tls_server_name`) is refused rather than dropped: kopf,
    which makes the watch connections, has no way to send it, so the operator would reach the
    API server with half its connections failing certificate verification.
    """
    if getattr(cfg, "tls_server_name", None):
        raise KubeConfigError(
            "the kubeconfig's tls-server-name is not supported (kopf's connections cannot send "
            "it): use a server address that the API server's certificate names"
        )
    proxy = getattr(cfg, "proxy", None) or None
    if proxy is not None and urlsplit(proxy).scheme.lower() not in PROXY_SCHEMES:
        # Nothing of the URL itself: it may hold the proxy's password.
        raise KubeConfigError(
            "the kubeconfig's proxy-url must start with http:// or https:// "
            "(aiohttp, which both the operator and kopf use, has no SOCKS proxies)"
        )
    return Credentials(
        server=str(cfg.host).rstrip("/"),
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        cert_path=cfg.cert_file,
        key_path=cfg.key_file,
        username=cfg.username or None,
        password=cfg.password or None,
        proxy=proxy,
        config=cfg,
    )


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """MicroTime, as Events and Leases want it."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def queue_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    return f"{base}/{name}" if name else base


def deployment_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    return f"{base}/{name}" if name else base


def configmap_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    return f"{base}/{name}" if name else base


def path_of(body: dict[str, Any]) -> str:
    """The object URL of a namespaced ConfigMap or Deployment body."""
    meta = body["metadata"]
    kind = body["kind"]
    if kind == "Deployment":
        return deployment_path(meta["namespace"], meta["name"])
    if kind == "ConfigMap":
        return configmap_path(meta["namespace"], meta["name"])
    raise ValueError(f"no path for kind {kind}")


class Kube:
    """Just the calls the operator makes, over one aiohttp session."""

    def __init__(self, creds: Credentials, *, timeout: float = 10.0) -> None:
        self.creds = creds
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.creds.server.startswith("https"):
            return False
        ctx = ssl.create_default_context(cafile=self.creds.ca_path)
        if self.creds.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.creds.cert_path:
            ctx.load_cert_chain(self.creds.cert_path, self.creds.key_path)
        return ctx

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl()), timeout=self.timeout
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        if token := self.creds.token():
            headers["Authorization"] = f"Bearer {token}"
        auth = None
        if self.creds.username and self.creds.password:
            auth = aiohttp.BasicAuth(self.creds.username, self.creds.password)
        async with self.session().request(
            method,
            self.creds.server + path,
            json=body,
            params=params,
            headers=headers,
            auth=auth,
            proxy=self.creds.proxy,
        ) as resp:
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                data = {"message": (await resp.text())[:500]}
            if resp.status >= 400:
                data = data if isinstance(data, dict) else {}
                raise KubeError(
                    resp.status, str(data.get("reason", resp.reason)), str(data.get("message", ""))
                )
            return data if isinstance(data, dict) else {}

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply as the operator's field manager, taking over conflicting fields.

        Level-based: applying an unchanged object changes nothing (no new generation).
        """
        return await self.request(
            "PATCH",
            path_of(body),
            body=body,
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            content_type=APPLY,
        )

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", path, body=patch, content_type=MERGE)

    async def scale(self, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        """Set replicas through the Deployment's scale subresource."""
        return await self.request(
            "PATCH",
            deployment_path(namespace, name) + "/scale",
            body={"spec": {"replicas": replicas}},
            params={"fieldManager": FIELD_MANAGER},
            content_type=MERGE,
        )

    async def list_pods(self, namespace: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Pods matching `labels` (a Deployment's selector)."""
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        data = await self.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector}
        )
        return list(data.get("items") or [])

    async def annotate_pod(self, namespace: str, name: str, key: str, value: str) -> None:
        await self.merge_patch(
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            {"metadata": {"annotations": {key: value}}},
        )

    async def patch_queue_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.merge_patch(queue_path(namespace, name) + "/status", {"status": status})

    async def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """One decoded key of a Secret; None when the Secret or key is missing."""
        import base64

        secret = await self.get(f"/api/v1/namespaces/{namespace}/secrets/{quote(name)}")
        if secret is None:
            return None
        raw = (secret.get("data") or {}).get(key)
        if raw is None:
            return None
        return base64.b64decode(raw).decode()

    async def event(
        self,
        regarding: dict[str, Any],
        *,
        type: str,
        reason: str,
        note: str,
        action: str,
        instance: str,
    ) -> None:
        """Record an events.k8s.io/v1 Event about a Queue; failures are logged, not raised."""
        meta = regarding["metadata"]
        event = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            # kubectl's naming: <object>.<unique suffix> (generateName cannot end in '.').
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "eventTime": now_micro(),
            "type": type,
            "reason": reason,
            "action": action,
            "note": note[:1024],
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": instance[:128],
            "regarding": {
                "apiVersion": regarding["apiVersion"],
                "kind": regarding["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
        }
        try:
            await self.request(
                "POST", f"/apis/events.k8s.io/v1/namespaces/{meta['namespace']}/events", body=event
            )
        except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not record event %s on %s: %s", reason, meta["name"], exc)
