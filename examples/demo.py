"""The demo of `make demo` (examples/demo.sh runs it once the cluster and harness are up).

It installs the chart into a fresh namespace, applies the example Queues, enqueues a burst,
shows backlog, pods and completions per queue live while the operator scales each fleet up
and back down, prints a summary, and removes what it created (DEMO_KEEP=1 keeps it).
Exit code 0 when every job ended (completed or dead-lettered as intended) and every fleet is
back at its minimum; 1 otherwise, with what is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jobfleet
import yaml
from kubernetes import client, config

EXAMPLES = Path(__file__).resolve().parent
REPO = EXAMPLES.parent
CHART = REPO / "helm" / "jobfleet"
GROUP, VERSION, PLURAL = "jobfleet.dev", "v1alpha1", "queues"
RELEASE = "jobfleet"  # so the chart's Redis Secret is "jobfleet-redis", as the manifests say
# The e2e harness runs the pods of namespaces with this label as local processes.
HARNESS_LABEL = "jobfleet.dev/e2e"
TIERS = {"payments": "critical", "emails": "rate-limited", "reports": "batch"}

# Demo-sized settings, applied on top of the manifests and shown on screen: production
# windows (minutes) would keep the fleets up long after the burst.
DEMO_SCALE_DOWN_WINDOW = 10
DEMO_COOLDOWN = 15
DEMO_MAX_REPLICAS = int(os.environ.get("DEMO_MAX_REPLICAS", "4"))


@dataclasses.dataclass
class Burst:
    """The jobs of one queue, and the outcome the demo expects of them."""

    queue: str
    jobs: list[dict[str, Any]]
    expected_dead: int = 0


def bursts() -> list[Burst]:
    rng = random.Random(6)
    payments = [
        {
            "name": "charge-card",
            "payload": {"order": f"ord-{i}", "amount_cents": rng.randint(500, 90000)},
            # A fifth of the charges are checkouts a customer watches: the 0.5 s SLA level.
            "priority": "critical" if i % 5 == 0 else "high",
        }
        for i in range(6000)
    ]
    # Three malformed charges: dead-lettered at once with the reason, never retried.
    payments += [
        {"name": "charge-card", "payload": {"order": f"bad-{i}", "amount_cents": 0}}
        for i in range(3)
    ]
    emails = [
        {"name": "send-email", "payload": {"to": f"user{i}@example.com", "template": "receipt"}}
        for i in range(1500)
    ]
    reports = [
        {"name": "build-report", "payload": {"report": f"store-{i}", "rows": 20000}}
        for i in range(160)
    ]
    return [Burst("payments", payments, 3), Burst("emails", emails), Burst("reports", reports)]


# ---- setup ---------------------------------------------------------------------------------


def say(text: str) -> None:
    print(f"\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"==> {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server(keep: bool) -> Iterator[str]:
    """A private redis-server on a free loopback port (pods are local processes here);
    left running with `keep`, so a kept release still has its Redis."""
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="jobfleet-demo-redis-")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"redis-server did not start on port {port}") from None
                time.sleep(0.1)
        yield url
    finally:
        if keep:
            say(f"redis-server stays up: {url} (pid {proc.pid}; kill {proc.pid} to stop it)")
        else:
            proc.terminate()
            proc.wait(timeout=30)
            shutil.rmtree(workdir, ignore_errors=True)


class Kubectl:
    """kubectl and helm against the demo cluster."""

    def __init__(self, kubeconfig: str, kubectl: str, helm: str) -> None:
        self.kubeconfig, self.kubectl_bin, self.helm_bin = kubeconfig, kubectl, helm

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        return self._run(self.kubectl_bin, args, stdin, check)

    def helm(self, *args: str, check: bool = True) -> str:
        return self._run(self.helm_bin, args, None, check)

    def _run(self, exe: str, args: tuple[str, ...], stdin: str | None, check: bool) -> str:
        done = subprocess.run(
            [exe, "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and done.returncode != 0:
            raise SystemExit(f"{Path(exe).name} {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout


def demo_manifests() -> list[dict[str, Any]]:
    """The example Queues with the demo's shorter windows and lower caps."""
    out = []
    for name in TIERS:
        queue = yaml.safe_load((EXAMPLES / "queues" / f"{name}.yaml").read_text())
        q = copy.deepcopy(queue)
        scaling = q["spec"].setdefault("autoscaling", {})
        scaling.setdefault("scaleDown", {})["stabilizationWindowSeconds"] = DEMO_SCALE_DOWN_WINDOW
        scaling["cooldownSeconds"] = DEMO_COOLDOWN
        scaling["maxReplicas"] = min(scaling.get("maxReplicas", 10), DEMO_MAX_REPLICAS)
        scaling["minReplicas"] = min(scaling.get("minReplicas", 1), scaling["maxReplicas"])
        out.append(q)
    return out


def setup(k: Kubectl, core: client.CoreV1Api, namespace: str, redis_url: str) -> None:
    if _namespace_exists(core, namespace):
        say(f"removing namespace {namespace} left by an earlier run")
        k.helm("uninstall", RELEASE, "-n", namespace, check=False)
        k.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=180s")
    say(f"namespace {namespace} (labelled {HARNESS_LABEL}=true: its pods run as local processes)")
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=namespace, labels={HARNESS_LABEL: "true"})
        )
    )
    say(f"helm install {RELEASE} helm/jobfleet --set redis.url={redis_url}")
    k.helm(
        "install", RELEASE, str(CHART), "-n", namespace,
        "--set", f"redis.url={redis_url}",
        "--wait", "--timeout", "180s",
    )  # fmt: skip
    say(
        f"kubectl apply -f examples/queues/{{{','.join(TIERS)}}}.yaml  (demo settings: "
        f"scale-down window {DEMO_SCALE_DOWN_WINDOW}s, cooldown {DEMO_COOLDOWN}s, "
        f"maxReplicas <= {DEMO_MAX_REPLICAS})"
    )
    body = "\n---\n".join(json.dumps(q) for q in demo_manifests())
    k.kubectl("-n", namespace, "apply", "--server-side", "-f", "-", stdin=body)


def _namespace_exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


# ---- watching ------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    """One queue at one instant: Redis' view and the cluster's view."""

    queue: str
    waiting: int = 0
    held: int = 0
    in_flight: int = 0
    completed: int = 0
    dead: int = 0
    failed_attempts: int = 0
    oldest_wait: float = 0.0
    throughput: float = 0.0
    replicas: int = 0
    ready: int = 0
    desired: int | None = None
    min_replicas: int = 0
    sla: float | None = None
    reason: str = ""


@dataclasses.dataclass
class Tally:
    """What the summary reports per queue, accumulated over the samples."""

    enqueued: int = 0
    expected_dead: int = 0
    peak_replicas: int = 0
    worst_wait: float = 0.0
    drained_at: float | None = None
    settled_at: float | None = None


class Watcher:
    def __init__(self, kubeconfig: str, namespace: str, redis_url: str) -> None:
        api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.events = client.EventsV1Api(api)
        self.namespace = namespace
        self.redis = jobfleet.SyncClient(redis_url)

    def sample(self) -> dict[str, Row]:
        rows = {name: Row(name) for name in TIERS}
        for name, row in rows.items():
            s = self.redis.inspect(queue=name)
            row.waiting, row.held, row.in_flight = s.waiting, s.held, s.active
            row.completed, row.dead, row.failed_attempts = (
                s.completed_total,
                s.dead_total,
                s.failed_total,
            )
            row.oldest_wait, row.throughput = s.oldest_wait, s.throughput
        deployments: list[Any] = self.apps.list_namespaced_deployment(self.namespace).items
        for d in deployments:
            name = d.metadata.name.removesuffix("-jobfleet")
            if name in rows:
                rows[name].replicas = d.spec.replicas or 0
                rows[name].ready = d.status.ready_replicas or 0
        queues: Any = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL
        )
        for q in queues["items"]:
            found = rows.get(q["metadata"]["name"])
            if found is None:
                continue
            status, spec = q.get("status") or {}, q["spec"]
            found.desired = status.get("desiredReplicas")
            found.reason = status.get("lastScaleReason") or ""
            found.min_replicas = spec["autoscaling"]["minReplicas"]
            found.sla = (spec.get("sla") or {}).get("targetWaitSeconds")
        return rows

    def scale_events(self) -> dict[str, dict[str, int]]:
        """ScaledUp/ScaledDown events the operator recorded, per Queue."""
        # Raw JSON: events of other components may lack fields the generated models require.
        resp: Any = self.events.list_namespaced_event(self.namespace, _preload_content=False)
        counts: dict[str, dict[str, int]] = {name: {} for name in TIERS}
        for e in json.loads(resp.data)["items"]:
            regarding = e.get("regarding") or {}
            if regarding.get("kind") == "Queue" and regarding.get("name") in counts:
                reason = e.get("reason", "")
                if reason in ("ScaledUp", "ScaledDown"):
                    per = counts[regarding["name"]]
                    per[reason] = per.get(reason, 0) + 1
        return counts


def table(rows: dict[str, Row], elapsed: float) -> str:
    head = (
        f"{'QUEUE':<9} {'TIER':<13} {'WAITING':>7} {'HELD':>5} {'RUNNING':>7} {'DONE':>6} "
        f"{'DEAD':>4}  {'PODS':<11} {'OLDEST WAIT':<14} {'JOBS/S':>7}  LAST SCALE"
    )
    lines = [f"jobfleet demo — {elapsed:5.1f}s since the burst (Ctrl-C stops early)", "", head]
    for r in rows.values():
        pods = f"{r.ready}/{r.replicas}" + (f" →{r.desired}" if r.desired is not None else "")
        wait = f"{r.oldest_wait:5.2f}s" + (f" / {r.sla:g}s" if r.sla else "")
        breach = " !" if r.sla and r.oldest_wait > r.sla else ""
        lines.append(
            f"{r.queue:<9} {TIERS[r.queue]:<13} {r.waiting:>7} {r.held:>5} {r.in_flight:>7} "
            f"{r.completed:>6} {r.dead:>4}  {pods:<11} {wait + breach:<14} {r.throughput:>7.1f}  "
            f"{r.reason[:60]}"
        )
    lines += ["", "PODS: ready/current →desired.  HELD: waiting on the rate limit (emails: 50/s)."]
    return "\n".join(lines)


def settled(row: Row, tally: Tally) -> bool:
    """Every job ended and the fleet is back at its minimum."""
    ended = row.completed + row.dead >= tally.enqueued
    return ended and row.waiting + row.in_flight == 0 and row.replicas == row.min_replicas


def watch(w: Watcher, plan: list[Burst], timeout: float) -> tuple[dict[str, Tally], bool]:
    tallies = {b.queue: Tally(len(b.jobs), b.expected_dead) for b in plan}
    tty = sys.stdout.isatty()
    start = time.monotonic()
    last_print = 0.0
    rows = w.sample()
    while time.monotonic() - start < timeout:
        rows = w.sample()
        now = time.monotonic() - start
        for name, r in rows.items():
            t = tallies[name]
            t.peak_replicas = max(t.peak_replicas, r.replicas)
            t.worst_wait = max(t.worst_wait, r.oldest_wait)
            if t.drained_at is None and r.completed + r.dead >= t.enqueued:
                t.drained_at = now
            if t.settled_at is None and settled(r, t):
                t.settled_at = now
        if tty:
            sys.stdout.write("\033[H\033[J" + table(rows, now) + "\n")
            sys.stdout.flush()
        elif now - last_print >= 5:
            print(table(rows, now), flush=True)
            last_print = now
        if all(settled(rows[n], tallies[n]) for n in tallies):
            return tallies, True
        time.sleep(1.0)
    return tallies, False


def summary(w: Watcher, tallies: dict[str, Tally], ok: bool) -> str:
    rows = w.sample()
    events = w.scale_events()
    out = ["", "Summary", ""]
    head = (
        f"{'QUEUE':<9} {'JOBS':>5} {'DONE':>5} {'DEAD':>4} {'RETRIES':>7} {'PEAK PODS':>9} "
        f"{'WORST WAIT':>10} {'SLA':>5} {'DRAINED':>8} {'AT MIN':>7}  SCALE EVENTS"
    )
    out.append(head)
    for name, t in tallies.items():
        r = rows[name]
        sla = f"{r.sla:g}s" if r.sla else "-"
        ev = events.get(name, {})
        out.append(
            f"{name:<9} {t.enqueued:>5} {r.completed:>5} {r.dead:>4} {r.failed_attempts:>7} "
            f"{t.peak_replicas:>9} {t.worst_wait:>9.2f}s {sla:>5} "
            f"{_secs(t.drained_at):>8} {_secs(t.settled_at):>7}  "
            f"{ev.get('ScaledUp', 0)} up, {ev.get('ScaledDown', 0)} down"
        )
    out += [
        "",
        "DRAINED: seconds from the burst until every job ended; AT MIN: until the fleet was "
        "back at minReplicas.",
        "DEAD: the malformed charges (PermanentError), dead-lettered with their reason; "
        "RETRIES: transient failures that were retried.",
        "WORST WAIT: a burst bigger than the warm fleet can start within the SLA waits until "
        "the pods the operator adds on the SLA are Ready (LAST SCALE said why).",
    ]
    for name, t in tallies.items():
        if rows[name].dead != t.expected_dead:
            out.append(
                f"unexpected: {name} has {rows[name].dead} dead letters, expected {t.expected_dead}"
            )
            ok = False
    out.append("" if ok else "The demo did not settle in time; see `kubectl get jfq` and the logs.")
    return "\n".join(out)


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}s"


# ---- main ----------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--kubectl", required=True)
    p.add_argument("--helm", required=True)
    p.add_argument("--namespace", default="jobfleet-demo")
    p.add_argument("--timeout", type=float, default=600, help="give up after this many seconds")
    args = p.parse_args()
    keep = os.environ.get("DEMO_KEEP") == "1"

    k = Kubectl(args.kubeconfig, args.kubectl, args.helm)
    core = client.CoreV1Api(
        config.new_client_from_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    )
    with redis_server(keep) as redis_url:
        try:
            setup(k, core, args.namespace, redis_url)
            w = Watcher(args.kubeconfig, args.namespace, redis_url)
            plan = bursts()
            total = sum(len(b.jobs) for b in plan)
            say(f"enqueueing a burst of {total} jobs")
            for b in plan:
                w.redis.enqueue_many(b.jobs, queue=b.queue)
            tallies, ok = watch(w, plan, args.timeout)
            print(summary(w, tallies, ok))
            return 0 if ok else 1
        except KeyboardInterrupt:
            print("\ninterrupted")
            return 130
        finally:
            if keep:
                say(f"DEMO_KEEP=1: release {RELEASE} stays in namespace {args.namespace}")
            else:
                say("cleaning up: helm uninstall, namespace, redis-server")
                k.helm("uninstall", RELEASE, "-n", args.namespace, "--wait", check=False)
                k.kubectl("delete", "namespace", args.namespace, "--wait=true",
                          "--timeout=180s", check=False)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
