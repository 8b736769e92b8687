"""Pods as processes: a small kubelet for kwok nodes, used by the e2e tier.

kwok simulates nodes but runs nothing. This harness watches pods that the scheduler bound to
kwok nodes and, for pods in namespaces labelled ``jobfleet.dev/e2e=true`` (configurable),
runs each container as a local process group, the way a kubelet would:

* **command line** — ``command`` + ``args`` with ``$(VAR)`` expansion. An empty ``command``
  uses the image's entrypoint from ``HarnessConfig.entrypoints`` (``jobfleet-operator`` and
  ``jobfleet-worker`` images map to the console scripts). Executables resolve on a PATH that
  starts with the checkout's ``.venv/bin``, so ``jobfleet``, ``jobfleet-operator`` and
  ``python`` run this working tree; absolute image paths fall back to their basename.
* **environment** — kubelet rules: ``envFrom`` (configMapRef/secretRef, prefix, optional), then
  ``env`` (literal with ``$(VAR)``, configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef).
  ``status.podIP``/``status.hostIP`` resolve to 127.0.0.1: every process shares the host
  loopback. Base variables: PATH, HOME (per pod), HOSTNAME (pod name), PYTHONPATH (the
  checkout), PYTHONUNBUFFERED=1.
* **ports** — each container gets its own free loopback port in ``JOBFLEET_HTTP_PORT``
  (overriding any value in the pod spec); the jobfleet worker and operator serve health and
  metrics there. The container's httpGet/tcpSocket/grpc probes are aimed at that port,
  whatever port the spec names. Other ports are plain host ports: pick them per test.
* **scrape targets** — every process pod's containers and their ports are listed in a
  Prometheus file_sd file (``e2e/.run/scrape/pods.json``), labelled as kubernetes_sd would.
* **identity** — a TokenRequest for the pod's ``serviceAccountName``, bound to the pod, written
  into a kubeconfig passed as ``KUBECONFIG`` (not when ``automountServiceAccountToken: false``),
  so the process acts with the pod's RBAC. Clients must honour KUBECONFIG (kopf and
  ``kubernetes.config.load_config()`` do); there is no in-cluster token file.
* **volumes** — configMap, secret, projected (configMap/secret) and emptyDir volumes are
  written under ``e2e/.run/pods/<ns>_<pod>/volumes/``; any command/arg/env value under a
  container's ``mountPath`` is rewritten to that directory.
* **lifecycle** — initContainers in order: regular ones run to completion, native sidecars
  (``restartPolicy: Always``) start and keep running (the next one waits for a sidecar's
  startupProbe); then the main containers. Probes honour initialDelay and thresholds and
  run every min(periodSeconds, 1 s). A process that exits is restarted per restartPolicy
  with back-off 1 s → 30 s (status shows ``CrashLoopBackOff``, ``restartCount`` and
  ``lastState.terminated``).
* **status** — the harness owns the pod status: phase, conditions (Ready only when every
  container's readiness probe passes), container states. kwok's pod stages are disabled
  (``e2e/kwok/stages-pod.yaml``), so nothing else marks a pod Ready.
* **deletion** — preStop (exec/sleep), SIGTERM to each process group, wait the pod's grace
  period, SIGKILL, sidecars last; only then the final grace-0 delete that removes the object.
  Until then the pod stays visible as Terminating.
* **logs** — ``e2e/.run/logs/<ns>_<pod>.log`` (all containers, with harness markers), and a
  CRI-format file per container that kwok serves to ``kubectl logs`` (the harness registers
  it with a kwok ``Logs`` object owned by the pod). Restarts append to the same file.
* **events** — kubelet-style Events: Started, Killing, BackOff, Failed.

Pods on kwok nodes in other namespaces are marked Running/Ready without a process; pods
annotated ``e2e.jobfleet.dev/simulate: kwok`` are left to kwok's simulated stages.
Run standalone with ``python -m e2e.harness --kubeconfig e2e/.run/kubeconfig``.
"""

from .config import NAMESPACE_LABEL, HarnessConfig
from .kubelet import Harness

__all__ = ["NAMESPACE_LABEL", "Harness", "HarnessConfig"]
