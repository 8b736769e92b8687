"""The kopf handlers: Queue create/update/resume, deletion, drift on owned Deployments."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from . import conditions as cond
from .deployment import MANAGED_BY, QUEUE_LABEL, child_name
from .kube import Credentials, Kube, KubeError, now_rfc3339
from .metrics import Metrics
from .scaler import ReaderFactory, Scaler
from .spec import GROUP, PLURAL, VERSION, QueueSpec, describe_errors

log = logging.getLogger(__name__)

Key = tuple[str, str]


class Fleet:
    """Every Queue this operator manages, by (namespace, name)."""

    def __init__(
        self,
        kube: Kube,
        metrics: Metrics,
        identity: str,
        reader_factory: ReaderFactory | None = None,
    ) -> None:
        self.kube = kube
        self.metrics = metrics
        self.identity = identity
        self.reader_factory = reader_factory
        self.scalers: dict[Key, Scaler] = {}

    async def reconcile(self, body: dict[str, Any], *, sync_paused: bool) -> None:
        """Render and apply a Queue's children and (re)start its scaler. Idempotent."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        gen = meta.get("generation")
        try:
            spec = QueueSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            # Change nothing: a running fleet keeps its last good spec, and says why not.
            message = describe_errors(exc)
            if (running := self.scalers.get(key)) is not None:
                running.problem = ("InvalidSpec", message, gen)
            await self.reject(body, message)
            return
        scaler = self.scalers.get(key)
        if scaler is not None and scaler.ref.uid != meta["uid"]:
            await self.forget(*key)  # deleted and re-created under the same name
            scaler = None
        if scaler is None:
            scaler = Scaler(self.kube, self.metrics, body, spec, identity=self.identity)
            if self.reader_factory is not None:
                scaler.reader_factory = self.reader_factory
            self.scalers[key] = scaler
        else:
            scaler.set(body, spec)
        if sync_paused:
            scaler.pending_pause = spec.paused
        async with scaler.lock:
            try:
                live = await self.kube.get(
                    f"/apis/apps/v1/namespaces/{key[0]}/deployments/{child_name(scaler.ref)}"
                )
                await scaler.apply_children(live)
                scaler.problem = None
            except KubeError as exc:
                if exc.status in (400, 403, 422):
                    # The rendered objects were refused: retrying cannot help until the spec
                    # (or the operator's RBAC) changes. Say so where the user looks.
                    message = f"cannot apply the worker Deployment: {exc.message}"
                    scaler.problem = ("ApplyFailed", message, gen)
                    await self.reject(body, message, reason="ApplyFailed")
                    scaler.start()  # the fleet that exists is still scaled
                    return
                raise kopf.TemporaryError(f"applying children failed: {exc}", delay=5) from exc
        scaler.start()

    async def reject(self, body: dict[str, Any], message: str, reason: str = "InvalidSpec") -> None:
        """Report an invalid Queue on its status and as a Warning event; change nothing else."""
        meta = body["metadata"]
        status = dict(body.get("status") or {})
        gen = meta.get("generation")
        ready = cond.condition(cond.READY, "False", reason, message, gen, now_rfc3339())
        status["conditions"] = cond.merge(list(status.get("conditions") or []), [ready])
        status["observedGeneration"] = gen
        log.warning("Queue %s/%s: %s", meta["namespace"], meta["name"], message)
        try:
            await self.kube.patch_queue_status(meta["namespace"], meta["name"], status)
        except KubeError as exc:
            log.warning("could not write status of %s: %s", meta["name"], exc)
        await self.kube.event(
            body,
            type="Warning",
            reason=reason,
            note=message,
            action="Reconcile",
            instance=self.identity,
        )

    async def forget(self, namespace: str, name: str) -> None:
        scaler = self.scalers.pop((namespace, name), None)
        if scaler is not None:
            await scaler.stop()
        self.metrics.forget(namespace, name)

    def deployment_changed(self, namespace: str, queue: str) -> None:
        scaler = self.scalers.get((namespace, queue))
        if scaler is not None:
            scaler.mark_drift()

    def configmap_changed(self, namespace: str, queue: str) -> None:
        # ConfigMaps have no generation to tell our writes from others': re-apply (a no-op
        # apply changes nothing and so triggers no further event).
        scaler = self.scalers.get((namespace, queue))
        if scaler is not None:
            scaler.mark_drift(reapply=True)

    async def stop_all(self) -> None:
        for key in list(self.scalers):
            scaler = self.scalers.pop(key)
            await scaler.stop()


def login_info(creds: Credentials) -> kopf.ConnectionInfo:
    """Hand kopf the same credentials as our own client (see kube.load_credentials)."""
    token = creds.token()
    return kopf.ConnectionInfo(
        server=creds.server,
        ca_path=creds.ca_path,
        insecure=creds.insecure,
        username=creds.username,
        password=creds.password,
        scheme="Bearer" if token else None,
        token=token,
        certificate_path=creds.cert_path,
        private_key_path=creds.key_path,
        proxy_url=creds.proxy,
    )


def build_registry(fleet: Fleet, creds: Credentials) -> kopf.OperatorRegistry:
    """All handlers, in a registry of their own (nothing registered at import time)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Keep kopf's bookkeeping in our own annotations; status stays strictly schema'd.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        # We post our own Events (scale decisions, invalid specs); kopf only adds warnings.
        settings.posting.level = logging.WARNING
        settings.posting.reporting_component = "jobfleet-operator"
        settings.posting.reporting_instance = fleet.identity
        # Watches can hang silently behind load balancers: have the server end them.
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.watching.connect_timeout = 10
        settings.networking.request_timeout = 30
        # Resources are resolved once at start; no cluster-wide CRD watch (least RBAC).
        settings.scanning.disabled = True

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return login_info(creds)

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
    async def resumed(body: kopf.Body, **_: Any) -> None:
        await fleet.reconcile(dict(body), sync_paused=False)

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    async def created(body: kopf.Body, spec: kopf.Spec, **_: Any) -> None:
        await fleet.reconcile(dict(body), sync_paused=bool(spec.get("paused")))

    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec", registry=registry)
    async def updated(body: kopf.Body, diff: kopf.Diff, **_: Any) -> None:
        paused_changed = any(tuple(d[1]) in (("paused",), ("spec", "paused")) for d in diff)
        await fleet.reconcile(dict(body), sync_paused=paused_changed)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def queue_event(event: kopf.RawEvent, **_: Any) -> None:
        if event["type"] == "DELETED":
            meta = event["object"]["metadata"]
            await fleet.forget(meta["namespace"], meta["name"])

    @kopf.on.event(
        "apps",
        "v1",
        "deployments",
        labels={"app.kubernetes.io/managed-by": MANAGED_BY},
        registry=registry,
    )
    def deployment_event(meta: kopf.Meta, namespace: str | None, **_: Any) -> None:
        queue = (meta.get("labels") or {}).get(QUEUE_LABEL)
        if queue and namespace:
            fleet.deployment_changed(namespace, queue)

    @kopf.on.event(
        "",
        "v1",
        "configmaps",
        labels={"app.kubernetes.io/managed-by": MANAGED_BY},
        registry=registry,
    )
    def configmap_event(meta: kopf.Meta, namespace: str | None, **_: Any) -> None:
        queue = (meta.get("labels") or {}).get(QUEUE_LABEL)
        if queue and namespace:
            fleet.configmap_changed(namespace, queue)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await fleet.stop_all()

    return registry
