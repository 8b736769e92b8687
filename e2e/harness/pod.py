"""One pod's lifecycle: run its containers as processes, probe, report status, stop."""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import urllib3
from kubernetes.client import ApiException

from .cluster import Cluster
from .config import HarnessConfig
from .identity import PodIdentity
from .logs import PodLog
from .podenv import LOOPBACK, ContainerConfigError, command_line, container_env
from .ports import Ports
from .probes import Prober
from .proc import ProcessGroup
from .status import Conditions, merge_conditions, rfc3339

Obj = dict[str, Any]
log = logging.getLogger("e2e.harness")

TICK = 0.25
# kubelet gives sidecars at least this long to stop once the main containers are gone.
SIDECAR_MIN_GRACE = 2.0


class Container:
    """What the harness knows about one container: its process, probes and reported state."""

    def __init__(self, spec: Obj, kind: str, port: int) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.kind = kind  # "init" (run to completion), "sidecar" (restartable init) or "main"
        self.port = port
        self.env: dict[str, str] = {}
        self.proc: ProcessGroup | None = None
        self.restart_count = 0
        self.next_start_at = 0.0
        self.backoff = 0.0
        self.waiting: tuple[str, str] = ("ContainerCreating", "")
        self.last_terminated: Obj | None = None
        self.terminated: Obj | None = None  # final state: this container will not run again
        self.startup: Prober | None = None
        self.liveness: Prober | None = None
        self.readiness: Prober | None = None

    @property
    def running(self) -> bool:
        """Whether the process is alive (as last polled)."""
        return self.proc is not None

    @property
    def started(self) -> bool:
        """kubelet's `started`: running and past its startup probe."""
        return self.running and (self.startup is None or self.startup.result)

    @property
    def ready(self) -> bool:
        """Running, started and passing readiness (no readiness probe: ready once started)."""
        if not self.started:
            return False
        return self.readiness is None or self.readiness.result

    def status(self) -> Obj:
        """The containerStatuses entry."""
        state: Obj
        if self.proc is not None:
            state = {"running": {"startedAt": rfc3339(self.proc.started_at)}}
        elif self.terminated is not None:
            state = {"terminated": self.terminated}
        else:
            reason, message = self.waiting
            state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        out: Obj = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.proc is not None:
            out["containerID"] = f"harness://{self.proc.pid}"
        return out


class PodRunner(threading.Thread):
    """A kubelet for one pod; pods that are not `process` pods only get a simulated status."""

    def __init__(
        self,
        cluster: Cluster,
        cfg: HarnessConfig,
        ports: Ports,
        pod: Obj,
        process: bool,
        on_exit: Callable[[str], None],
    ) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.cluster = cluster
        self.config = cfg
        self.ports = ports
        self._identity: PodIdentity | None = None  # the service account's token, when asked
        self.process = process
        self.key = f"{meta['namespace']}_{meta['name']}"
        self.uid: str = meta["uid"]
        self._pod = pod
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._gone = False  # the object was removed from the API (no final delete needed)
        self._shutdown = False  # the harness stops: kill processes, leave the pod alone
        self._on_exit = on_exit
        self._conditions = Conditions()
        self._last_status: Obj | None = None
        self._started_at = time.time()
        self.dir = cfg.pods_dir / self.key
        self.log: PodLog | None = None  # opened when the first process starts
        spec = pod["spec"]
        self.init = [
            Container(c, "sidecar" if c.get("restartPolicy") == "Always" else "init", self._port())
            for c in spec.get("initContainers") or []
        ]
        self.main = [Container(c, "main", self._port()) for c in spec.get("containers") or []]
        self._init_done = 0  # how many init containers have completed (sidecars: started)
        self._volumes: dict[str, Path] = {}

    # -- inputs from the watch ------------------------------------------------------------

    def update(self, pod: Obj) -> None:
        """A newer version of the pod object."""
        with self._lock:
            self._pod = pod
        self._wake.set()

    def gone(self) -> None:
        """The pod object is deleted from the API."""
        self._gone = True
        self._wake.set()

    def shutdown(self) -> None:
        """Stop every process now (harness exit); the pod object stays."""
        self._shutdown = True
        self._wake.set()

    @property
    def pod(self) -> Obj:
        """The newest pod object seen."""
        with self._lock:
            return self._pod

    # -- main loop ------------------------------------------------------------------------

    def run(self) -> None:
        """Drive the pod until it is deleted or the harness stops."""
        try:
            while True:
                pod = self.pod
                if self._shutdown:
                    self._stop_all(grace_cap=5.0)
                    return
                if self._gone or pod["metadata"].get("deletionTimestamp"):
                    self._terminate(pod)
                    return
                try:
                    if self.process:
                        self._step(pod)
                    self._report(pod)
                except (ApiException, urllib3.exceptions.HTTPError) as e:
                    # The API server is briefly unreachable or busy: keep the processes, retry.
                    log.warning("pod %s: API error %r; retrying", self.key, e)
                    self._wake.wait(1.0)
                self._wake.wait(TICK)
                self._wake.clear()
        except Exception:
            log.exception("pod %s: runner failed; stopping its processes", self.key)
            self._stop_all(grace_cap=5.0)
        finally:
            if self.log is not None:
                self.log.close()
            self._on_exit(self.uid)

    def _port(self) -> int:
        return self.ports.allocate()

    # -- starting and supervising ---------------------------------------------------------

    def _step(self, pod: Obj) -> None:
        now = time.time()
        for c in self.init[: self._init_done + 1]:
            self._supervise(pod, c, now)
        while self._init_done < len(self.init):
            c = self.init[self._init_done]
            done = c.started if c.kind == "sidecar" else (c.terminated or {}).get("exitCode") == 0
            if not done:
                return
            self._init_done += 1
            if self._init_done < len(self.init):
                self._supervise(pod, self.init[self._init_done], now)
        for c in self.main:
            self._supervise(pod, c, now)

    def _supervise(self, pod: Obj, c: Container, now: float) -> None:
        """Start, poll, probe and restart one container."""
        if c.proc is None:
            if c.terminated is None and now >= c.next_start_at:
                self._start(pod, c)
            return
        code = c.proc.poll()
        if code is not None:
            self._exited(pod, c, code, "Completed" if code == 0 else "Error")
            return
        cwd = str(self.dir)
        if c.startup is not None and not c.startup.result:
            c.startup.tick(now, c.port, c.env, cwd)
            if c.startup.failed:
                self._kill(pod, c, "startup probe failed")
            return
        if c.liveness is not None:
            c.liveness.tick(now, c.port, c.env, cwd)
            if c.liveness.failed:
                self._kill(pod, c, "liveness probe failed")
                return
        if c.readiness is not None:
            c.readiness.tick(now, c.port, c.env, cwd)

    def _start(self, pod: Obj, c: Container) -> None:
        try:
            c.env = self._env(pod, c)
            argv = [
                self._map_path(c, a) for a in command_line(c.spec, c.env, self.config.entrypoints)
            ]
            if self.log is None:
                self.log = PodLog(self.config.logs_dir, self.key)
                self.cluster.publish_logs(pod, self.log, [x.name for x in self.init + self.main])
            c.proc = ProcessGroup(argv, c.env, self.dir, self.log, c.name, self.config.procs_dir)
        except (ContainerConfigError, ApiException, urllib3.exceptions.HTTPError) as e:
            # Missing ConfigMap keys, a service account without a token yet...: the container
            # waits (no restart counted) and the harness retries, as kubelet does.
            if isinstance(e, ContainerConfigError):
                message = str(e)
            elif isinstance(e, ApiException):
                message = f"API: {e.status} {e.reason}"
            else:  # no answer at all (the API server restarting, say)
                message = f"API unreachable: {e}"
            if c.waiting != ("CreateContainerConfigError", message):
                self.cluster.event(pod, c.name, "Failed", f"Error: {message}", warning=True)
            c.waiting = ("CreateContainerConfigError", message)
            c.next_start_at = time.time() + 1.0
            return
        except OSError as e:
            # A missing executable is a start error: reported, then retried with back-off.
            log.warning("pod %s/%s: cannot start: %s", self.key, c.name, e)
            self.cluster.event(pod, c.name, "Failed", f"Error: {e}", warning=True)
            c.last_terminated = {
                "exitCode": 128,
                "reason": "StartError",
                "message": str(e)[:500],
                "startedAt": rfc3339(time.time()),
                "finishedAt": rfc3339(time.time()),
            }
            self._schedule_restart(c, ran_for=0.0)
            return
        cfg, started = self.config, c.proc.started_at
        if "startupProbe" in c.spec:
            c.startup = Prober(c.spec["startupProbe"], cfg.max_probe_period, started, initial=False)
        if "livenessProbe" in c.spec:
            c.liveness = Prober(
                c.spec["livenessProbe"], cfg.max_probe_period, started, initial=True
            )
        if "readinessProbe" in c.spec:
            c.readiness = Prober(
                c.spec["readinessProbe"], cfg.max_probe_period, started, initial=False
            )
        log.info("pod %s/%s: started pid %d (port %d)", self.key, c.name, c.proc.pid, c.port)
        self.cluster.event(pod, c.name, "Started", f"Started container {c.name}")

    def _exited(self, pod: Obj, c: Container, code: int, reason: str) -> None:
        """Record an exit and decide, by restart policy, whether the container runs again."""
        assert c.proc is not None
        ran_for = time.time() - c.proc.started_at
        state = {
            "exitCode": code,
            "reason": reason,
            "startedAt": rfc3339(c.proc.started_at),
            "finishedAt": rfc3339(time.time()),
        }
        log.info("pod %s/%s: exited with %d after %.1fs", self.key, c.name, code, ran_for)
        c.proc = None
        c.startup = c.liveness = c.readiness = None
        policy = pod["spec"].get("restartPolicy", "Always")
        if c.kind == "sidecar":
            restart = True
        elif c.kind == "init":
            restart = code != 0 and policy != "Never"
        else:
            restart = policy == "Always" or (policy == "OnFailure" and code != 0)
        if restart:
            c.last_terminated = state
            self._schedule_restart(c, ran_for)
            if code != 0:
                msg = f"Back-off restarting failed container {c.name} (exit code {code})"
                self.cluster.event(pod, c.name, "BackOff", msg, warning=True)
        else:
            c.terminated = state

    def _schedule_restart(self, c: Container, ran_for: float) -> None:
        cfg = self.config
        # Like kubelet, a container that ran for a while starts its back-off afresh.
        if ran_for > 10 * cfg.restart_backoff_max or c.backoff == 0:
            c.backoff = cfg.restart_backoff_initial
        else:
            c.backoff = min(c.backoff * 2, cfg.restart_backoff_max)
        c.restart_count += 1
        c.next_start_at = time.time() + c.backoff
        c.waiting = ("CrashLoopBackOff", f"back-off {c.backoff:g}s restarting failed container")

    def _kill(self, pod: Obj, c: Container, why: str) -> None:
        assert c.proc is not None
        log.info("pod %s/%s: %s, restarting", self.key, c.name, why)
        self.cluster.event(pod, c.name, "Killing", f"Container {c.name} {why}, will be restarted")
        code = c.proc.stop(self._grace(pod))
        self._exited(pod, c, code, "Error")

    # -- environment ----------------------------------------------------------------------

    def _env(self, pod: Obj, c: Container) -> dict[str, str]:
        cfg = self.config
        home = self.dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        self._materialize_volumes(pod)
        base = {
            "PATH": cfg.search_path(),
            "HOME": str(home),
            "HOSTNAME": pod["metadata"]["name"],
            "LANG": "C.UTF-8",
            # Test handler modules live in the checkout (images would have them installed).
            "PYTHONPATH": str(cfg.source_root),
            # Line-buffered logs, so a test reading a pod's log sees what happened.
            "PYTHONUNBUFFERED": "1",
        }
        env = container_env(
            pod, c.spec, base, self.cluster.configmap_data, self.cluster.secret_data
        )
        # Only what the pod spec set is a path inside the container. The harness's own values
        # (PATH, PYTHONPATH, HOME) are host paths: in a checkout under a mounted directory
        # (/tmp, say) mapping them would point them into the volume.
        env = {k: v if base.get(k) == v else self._map_path(c, v) for k, v in env.items()}
        # The harness contract: every container gets its own loopback port for health and
        # metrics (its probes are aimed there) and, unless the pod opts out, a kubeconfig
        # holding a token of the pod's service account.
        env["JOBFLEET_HTTP_PORT"] = str(c.port)
        if pod["spec"].get("automountServiceAccountToken", True) is not False:
            if self._identity is None:
                self._identity = self.cluster.identity(self.dir / "kubeconfig")
            env["KUBECONFIG"] = str(self._identity.ensure(pod))
        return env

    def _materialize_volumes(self, pod: Obj) -> None:
        """configMap/secret/emptyDir volumes as directories (refreshed on every container start)."""
        ns = pod["metadata"]["namespace"]
        for vol in pod["spec"].get("volumes") or []:
            path = self.dir / "volumes" / vol["name"]
            sources: list[tuple[Callable[[str, str], Any], Obj]] = []
            if "configMap" in vol:
                sources.append((self.cluster.configmap_data, vol["configMap"]))
            elif "secret" in vol:
                ref = dict(vol["secret"], name=vol["secret"].get("secretName"))
                sources.append((self.cluster.secret_data, ref))
            elif "projected" in vol:
                for src in vol["projected"].get("sources") or []:
                    if "configMap" in src:
                        sources.append((self.cluster.configmap_data, src["configMap"]))
                    elif "secret" in src:
                        sources.append((self.cluster.secret_data, src["secret"]))
            elif "emptyDir" not in vol:
                continue
            path.mkdir(parents=True, exist_ok=True)
            for lookup, ref in sources:
                data = lookup(ns, ref["name"]) or {}
                items = ref.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    if item["key"] in data:
                        target = path / item["path"]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_text(data[item["key"]])
            self._volumes[vol["name"]] = path

    def _map_path(self, c: Container, value: str) -> str:
        """Rewrite a path under one of the container's mountPaths to the materialised volume."""
        for m in c.spec.get("volumeMounts") or []:
            host = self._volumes.get(m["name"])
            mount = m["mountPath"].rstrip("/")
            if host is None or not (value == mount or value.startswith(mount + "/")):
                continue
            base = host / m["subPath"] if m.get("subPath") else host
            return str(base) + value[len(mount) :]
        return value

    # -- stopping -------------------------------------------------------------------------

    def _grace(self, pod: Obj) -> float:
        meta, spec = pod["metadata"], pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return float(grace)

    def _terminate(self, pod: Obj) -> None:
        """Kubelet-style deletion: preStop, SIGTERM, grace, SIGKILL; then the final delete."""
        if self.process:
            grace = self._grace(pod)
            log.info("pod %s: deleting, grace %.0fs", self.key, grace)
            for c in self.main + self.init:
                if c.proc is not None:
                    self.cluster.event(pod, c.name, "Killing", f"Stopping container {c.name}")
            self._stop_all(grace_cap=grace, pre_stop=True)
        if self._gone:
            return
        # The grace-0 delete is what lets the API server drop the object: until now the
        # pod stayed visible as Terminating while its processes shut down.
        for _ in range(60):
            try:
                self.cluster.delete_pod(pod, self.uid)
                break
            except ApiException as e:
                if e.status in (404, 409):  # already gone, or a new pod of the same name
                    break
                time.sleep(1)
            except urllib3.exceptions.HTTPError:
                time.sleep(1)  # API server unreachable for a moment
        log.info("pod %s: deleted", self.key)
        if self.process:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _stop_all(self, grace_cap: float, pre_stop: bool = False) -> None:
        """Main containers together, then sidecars in reverse order, within one grace budget."""
        deadline = time.time() + grace_cap
        mains = [c for c in self.main if c.proc is not None]
        if pre_stop:
            for c in mains:
                self._pre_stop(c, deadline)
        threads = [
            threading.Thread(target=self._stop_one, args=(c, deadline), daemon=True) for c in mains
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for c in reversed(self.init):
            if c.proc is not None:
                self._stop_one(c, max(deadline, time.time() + SIDECAR_MIN_GRACE))
        for c in self.init + self.main:
            if c.proc is not None:
                self._stop_one(c, time.time())

    def _stop_one(self, c: Container, deadline: float) -> None:
        proc = c.proc
        if proc is None:
            return
        code = proc.stop(max(deadline - time.time(), 0.0))
        c.terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}
        c.proc = None

    def _pre_stop(self, c: Container, deadline: float) -> None:
        hook = (c.spec.get("lifecycle") or {}).get("preStop") or {}
        if "exec" in hook:
            import subprocess

            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(
                    hook["exec"]["command"],
                    env=c.env,
                    cwd=self.dir,
                    timeout=max(deadline - time.time(), 0.1),
                    check=False,
                    capture_output=True,
                )
        elif "sleep" in hook:
            time.sleep(min(float(hook["sleep"]["seconds"]), max(deadline - time.time(), 0)))

    # -- status ---------------------------------------------------------------------------

    def _report(self, pod: Obj) -> None:
        """PUT the pod's status when it changed (PUT: the harness owns the status outright)."""
        status = self._render(pod)
        if status == self._last_status:
            return
        for _ in range(5):
            current = self.pod
            body = dict(current)
            body["status"] = dict(
                status,
                conditions=merge_conditions(
                    status["conditions"], (current.get("status") or {}).get("conditions")
                ),
            )
            try:
                self.cluster.replace_pod_status(body)
                self._last_status = status
                return
            except ApiException as e:
                if e.status == 404:
                    return
                if e.status != 409:
                    log.warning("pod %s: status update failed: %s", self.key, e.reason)
                    return
                meta = current["metadata"]
                self.update(self.cluster.read_pod(meta["namespace"], meta["name"]))

    def _render(self, pod: Obj) -> Obj:
        now = time.time()
        if not self.process:
            # Simulated: every container running and ready, no process behind it.
            for c in self.init:
                if c.kind == "init":
                    c.terminated = {"exitCode": 0, "reason": "Completed"}
            self._init_done = len(self.init)
            ready = True
            main_ready = True
        else:
            main_ready = all(c.ready for c in self.main)
            sidecars_ready = all(c.ready for c in self.init if c.kind == "sidecar")
            ready = main_ready and sidecars_ready and self._gates_ready(pod)
        initialized = self._init_done >= len(self.init)
        mains = [c.status() for c in self.main]
        inits = [c.status() for c in self.init]
        if not self.process:
            for s in mains + [s for s in inits if "terminated" not in s["state"]]:
                s.update(
                    ready=True,
                    started=True,
                    state={"running": {"startedAt": rfc3339(self._started_at)}},
                )
        phase = self._phase(initialized)
        conditions = self._conditions.render(
            {
                "PodReadyToStartContainers": True,
                "Initialized": initialized,
                "ContainersReady": main_ready,
                "Ready": ready and phase == "Running",
            },
            now,
            {
                "Initialized": "ContainersNotInitialized",
                "ContainersReady": "ContainersNotReady",
                "Ready": "ContainersNotReady",
            },
        )
        pod_ip = self._pod_ip(pod)
        out: Obj = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": LOOPBACK,
            "hostIPs": [{"ip": LOOPBACK}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": rfc3339(self._started_at),
            "containerStatuses": mains,
            "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
        }
        if inits:
            out["initContainerStatuses"] = inits
        return out

    def _phase(self, initialized: bool) -> str:
        if not self.process:
            return "Running"
        if any(
            c.terminated and c.terminated.get("exitCode") != 0
            for c in self.init
            if c.kind == "init"
        ):
            return "Failed"
        # Like kubelet, a pod whose containers have started stays Running through restarts.
        if not initialized or not any(c.proc or c.terminated or c.restart_count for c in self.main):
            return "Pending"
        if all(c.terminated is not None for c in self.main):
            ok = all(c.terminated.get("exitCode") == 0 for c in self.main if c.terminated)
            return "Succeeded" if ok else "Failed"
        return "Running"

    def _gates_ready(self, pod: Obj) -> bool:
        gates = [g["conditionType"] for g in pod["spec"].get("readinessGates") or []]
        conds = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
        return all(conds.get(g) == "True" for g in gates)

    def _pod_ip(self, pod: Obj) -> str:
        # The API shows a plausible pod-network address (EndpointSlices reject loopback);
        # processes themselves are told 127.0.0.1 through the downward API.
        n = zlib.crc32(self.uid.encode()) % (250 * 250)
        return f"10.244.{n // 250 + 1}.{n % 250 + 2}"
