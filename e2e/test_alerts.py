"""The alert chain on real parts (issue 16, part 1): workers and the operator scraped by a real
Prometheus evaluating the chart's shipped rules, a real Alertmanager delivering to a webhook,
Slack and email, and every dashboard query answered.

One chart release runs three queues side by side, each with one cause:

* ``payments`` — a handler that fails (steady traffic, every attempt dead-lettered);
* ``reports`` — a backlog past its SLA (one slot for many one-second jobs);
* ``broken`` — a fleet that cannot start (its handler module does not exist).

The tests run in file order on one module-wide stack: the rules fire, the dashboard has data,
Alertmanager groups and repeats, then the causes are removed and everything resolves. The
rules' thresholds and `for:` durations are chart values (shortened here as a user would);
Prometheus scrapes and evaluates every second and Alertmanager's group/repeat intervals are
seconds, so the whole file takes a few minutes. Nothing asserts on elapsed time: the repeat
interval shows as an order (several flushes of the group in between, on the `tick` receiver
whose repeat interval is one flush).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from . import kube_state, monitoring
from .monitoring import Daemon, Receivers
from .support import (
    RUN,
    Kube,
    Tools,
    create_namespace,
    namespace_gone,
    redis_ping,
    tool_paths,
    wait_for,
)
from .test_chart_install import helm_install
from .test_operator import WORKER_IMAGE, apply

pytestmark = pytest.mark.timeout(900)

SMTP_USER = "alertmanager@e2e.example"
SMTP_PASSWORD = f"smtp-{uuid.uuid4().hex}"
SLACK_CHANNEL = "#jobs-e2e"
EMAIL_TO = "oncall@e2e.example"

# Chart values a user would set for quick alerts; the rules themselves are the shipped ones.
RULE_VALUES: dict[str, Any] = {
    "enabled": True,
    "alertLabels": {"team": "e2e"},
    "backlog": {"threshold": 20, "for": "5s"},
    "failureRate": {"threshold": 0.1, "for": "5s"},
    # A breach is a pulse (the counter grows once per crossing): the window is how long it
    # stays firing; long enough to be seen beside the other alerts.
    "slaBreach": {"window": "90s"},
    "redisDown": {"for": "5s"},
    "circuitOpen": {"for": "5s"},
    # The harness's restart back-off tops out at 30 s: 3 restarts per 90 s while broken.
    "crashLooping": {"restarts": 1, "window": "90s"},
    "workersDown": {"for": "5s"},
    "deadLetters": {"threshold": 0, "window": "20s", "for": "3s"},
    "noLeader": {"for": "10s"},
}
REPEAT_INTERVAL = "15s"

# Per cause: (alert, the label naming what it is about; its value starts with the cause).
EXPECTED = {
    "payments": [("JobfleetFailureRateHigh", "queue"), ("JobfleetDeadLettersGrowing", "queue")],
    "reports": [("JobfleetBacklogHigh", "queue"), ("JobfleetSLABreached", "queue")],
    "broken": [("JobfleetWorkersDown", "deployment"), ("JobfleetWorkersCrashLooping", "pod")],
}
NEVER = {"JobfleetRedisDown", "JobfleetOperatorNoLeader", "JobfleetCircuitOpen"}


def _matches(alert: dict[str, Any], name: str, label: str, cause: str) -> bool:
    value = alert["labels"].get(label, "")
    return bool(alert["labels"]["alertname"] == name and value.startswith(cause))


class Stack:
    """Everything the tests share: cluster objects, Prometheus, Alertmanager, receivers."""

    def __init__(
        self, kube: Kube, tools: Tools, namespace: str, redis_url: str, rx: Receivers
    ) -> None:
        self.kube, self.tools, self.namespace, self.redis_url, self.rx = (
            kube, tools, namespace, redis_url, rx,
        )  # fmt: skip
        self.prometheus: Daemon | None = None
        self.alertmanager: Daemon | None = None
        self.provider_fixed = threading.Event()  # ends the failing payments traffic
        self.traffic: threading.Thread | None = None
        self.fired = False  # the first test saw every expected alert firing

    @property
    def prom(self) -> Daemon:
        assert self.prometheus is not None
        return self.prometheus

    def active(self, state: str = "firing") -> list[dict[str, Any]]:
        return [
            a
            for a in monitoring.alerts(self.prom)
            if a["state"] == state and a["labels"].get("namespace") == self.namespace
        ]

    def enqueue(self, queue: str, name: str, payloads: list[dict[str, Any]], **opts: Any) -> None:
        import jobfleet

        async def go() -> None:
            async with jobfleet.Client(self.redis_url, queue=queue) as c:
                await c.enqueue_many([{"name": name, "payload": p, **opts} for p in payloads])

        asyncio.run(go())

    def payments_traffic(self) -> None:
        """Two charges a second while the provider is broken: each fails and is dead-lettered."""
        while not self.provider_fixed.is_set():
            self.enqueue("payments", "charge", [{"broken": True}] * 2, max_attempts=1)
            self.provider_fixed.wait(1.0)

    def patch_queue(self, name: str, spec: dict[str, Any]) -> None:
        """A merge patch of a Queue's spec, as `kubectl patch --type merge` does."""
        self.tools.kubectl_run(
            "-n", self.namespace, "patch", "queue", name, "--type", "merge",
            "-p", json.dumps({"spec": spec}),
        )  # fmt: skip


def _redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    wait_for("redis-server to accept connections", lambda: redis_ping(port), 30, 0.1)
    return proc


@pytest.fixture(scope="module")
def stack(kube: Kube, tools: Tools) -> Iterator[Stack]:
    if not kube.harness:
        pytest.skip("scrape targets come from the harness (kwok mode); on kind use a Prometheus")
    paths = tool_paths()
    prom_exe, am_exe = Path(paths["TOOL_PROMETHEUS"]), Path(paths["TOOL_ALERTMANAGER"])
    if not (prom_exe.is_file() and am_exe.is_file()):
        pytest.fail("prometheus/alertmanager not built: run `bash e2e/tools/build.sh`")
    ns = f"e2e-alerts-{uuid.uuid4().hex[:5]}"
    create_namespace(kube, ns)
    workdir = Path(tempfile.mkdtemp(prefix="e2e-alerts-", dir=RUN))
    redis_port = monitoring.free_port()
    redis = _redis(redis_port, workdir)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    cleanups: list[Any] = []
    try:
        with monitoring.receivers(SMTP_USER, SMTP_PASSWORD) as rx:
            s = Stack(kube, tools, ns, redis_url, rx)
            _start(s, cleanups)
            yield s
    finally:
        for fn in reversed(cleanups):
            try:
                fn()
            except Exception as e:  # teardown goes on; the test result stands
                print(f"cleanup failed: {e!r}")
        redis.terminate()
        redis.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
        kube.core.delete_namespace(ns)
        wait_for(f"namespace {ns} to be deleted", lambda: namespace_gone(kube.core, ns), 180, 1.0)


def _start(s: Stack, cleanups: list[Any]) -> None:
    kube, tools, ns, rx = s.kube, s.tools, s.namespace, s.rx
    # The secrets a user keeps for the receivers, as Kubernetes Secrets.
    for name, key, value in (
        ("alerts-slack", "url", rx.slack_url),
        ("alerts-smtp", "password", SMTP_PASSWORD),
    ):
        kube.core.create_namespaced_secret(
            ns, client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data={key: value})
        )
    values = {
        "metrics": {
            "prometheusRule": RULE_VALUES,
            "alertmanagerConfig": {
                "enabled": True,
                "groupBy": ["namespace", "queue"],
                "groupWait": "1s",
                "groupInterval": "1s",
                "repeatInterval": REPEAT_INTERVAL,
                "webhook": {"url": rx.webhook_url},
                "slack": {"apiURLSecret": {"name": "alerts-slack"}, "channel": SLACK_CHANNEL},
                "email": {
                    "to": EMAIL_TO,
                    "from": SMTP_USER,
                    "smarthost": rx.smarthost,
                    "authUsername": SMTP_USER,
                    "authPasswordSecret": {"name": "alerts-smtp"},
                    "requireTLS": False,  # loopback test server without TLS
                },
            },
        }
    }
    (rule,) = monitoring.render_chart(tools, ns, "prometheusrule.yaml", values)
    (amc,) = monitoring.render_chart(tools, ns, "alertmanagerconfig.yaml", values)

    secrets = Path(tempfile.mkdtemp(prefix="e2e-am-secrets-", dir=RUN))
    cleanups.append(lambda: shutil.rmtree(secrets, ignore_errors=True))
    route, receivers = monitoring.translate_alertmanager_config(
        amc, monitoring.secret_reader(kube.core, ns), secrets
    )
    tick_route = {
        # Every flush of a group reaches `tick` (repeat = one group interval): the clock the
        # repeat-interval assertion counts in.
        "receiver": "tick",
        "matchers": [f'namespace="{ns}"'],
        "group_by": ["namespace", "queue"],
        "group_wait": "1s",
        "group_interval": "1s",
        "repeat_interval": "1s",
    }
    am_config = {
        "route": {"receiver": "blackhole", "routes": [route, tick_route]},
        "receivers": [
            {"name": "blackhole"},
            *receivers,
            {"name": "tick", "webhook_configs": [{"url": rx.tick_url, "send_resolved": True}]},
        ],
    }
    paths = tool_paths()
    s.alertmanager = monitoring.start_alertmanager(Path(paths["TOOL_ALERTMANAGER"]), am_config)
    cleanups.append(_dump_and_stop(s.alertmanager))

    ksm_port = monitoring.free_port()
    ksm = kube_state.serve(kube.api_client, ns, ksm_port)
    cleanups.append(ksm.shutdown)
    prom_config = monitoring.prometheus_config(
        s.alertmanager.url.removeprefix("http://"), f"127.0.0.1:{ksm_port}", "jf"
    )
    s.prometheus = monitoring.start_prometheus(
        Path(paths["TOOL_PROMETHEUS"]), prom_config, {"groups": rule["spec"]["groups"]}
    )
    cleanups.append(_dump_and_stop(s.prometheus))

    helm_install(tools, ns, f"redis.url={s.redis_url}", "operator.verbose=false")
    cleanups.append(lambda: tools.helm_run("uninstall", "jf", "-n", ns, "--wait", check=False))
    secret = {"urlSecretRef": {"name": "jf-jobfleet-redis", "key": "url"}}
    worker = {"handlers": ["e2e.alert_handlers"], "terminationGracePeriodSeconds": 5}
    fast = {"pollIntervalSeconds": 1}
    # A breaker that never trips here: its (closed) state feeds the dashboard's breaker panel.
    breaker = {"scope": "queue", "failureThreshold": 100000, "windowSeconds": 60}
    apply(tools, ns, _queue("payments", secret, worker, concurrency=10, circuitBreaker=breaker,
                            autoscaling={**fast, "minReplicas": 1, "maxReplicas": 1}))  # fmt: skip
    # One slot for 1 s jobs: the backlog drains far slower than it came (a paused queue would
    # not do: the operator does not judge the SLA of jobs held on purpose).
    apply(tools, ns, _queue("reports", secret, worker, concurrency=1,
                            sla={"targetWaitSeconds": 3},
                            autoscaling={**fast, "minReplicas": 1, "maxReplicas": 1}))  # fmt: skip
    apply(tools, ns, _queue("broken", secret, {**worker, "handlers": ["e2e.no_such_module"]},
                            autoscaling={**fast, "minReplicas": 1, "maxReplicas": 1}))  # fmt: skip

    # Causes: failing charges as steady traffic, a backlog on the paused queue.
    wait_for(
        "the payments worker to be scraped",
        lambda: monitoring.query(s.prom, f'jobfleet_queue_jobs{{namespace="{ns}"}}'),
        180,
    )
    s.enqueue("payments", "charge", [{}] * 20)  # some successes first: a failure *rate*
    s.traffic = threading.Thread(target=s.payments_traffic, name="payments", daemon=True)
    s.traffic.start()
    cleanups.append(_stop_traffic(s))
    s.enqueue("reports", "render", [{"s": 1}] * 300)


def _queue(name: str, secret: dict[str, Any], worker: dict[str, Any], **spec: Any) -> Any:
    """A Queue reading its Redis URL from the chart's Secret."""
    return {
        "apiVersion": "jobfleet.dev/v1alpha1",
        "kind": "Queue",
        "metadata": {"name": name},
        "spec": {"redis": secret, "worker": {"image": WORKER_IMAGE, **worker}, **spec},
    }


def _stop_traffic(s: Stack) -> Any:
    def stop() -> None:
        s.provider_fixed.set()
        if s.traffic is not None:
            s.traffic.join(30)

    return stop


def _dump_and_stop(d: Daemon) -> Any:
    def stop() -> None:
        print(f"---- {d.name} log (tail)\n{d.log()[-4000:]}")
        d.stop()

    return stop


# ---- the tests, in order -------------------------------------------------------------------------


def firing_for(s: Stack, cause: str) -> list[dict[str, Any]]:
    firing = s.active()
    out = []
    for name, label in EXPECTED[cause]:
        found = [a for a in firing if _matches(a, name, label, cause)]
        if not found:
            return []
        out += found
    return out


def test_shipped_rules_fire_for_a_failing_handler_a_backlog_and_a_fleet_that_cannot_start(
    stack: Stack,
) -> None:
    s = stack
    for cause in EXPECTED:
        alerts = wait_for(f"the {cause} alerts to fire", lambda c=cause: firing_for(s, c), 300, 1)
        for a in alerts:
            assert a["labels"]["team"] == "e2e"  # alertLabels from the chart values
            assert a["labels"]["severity"] == "warning"
            assert a["annotations"]["summary"]
    by_name = {a["labels"]["alertname"]: a for a in s.active()}
    assert by_name["JobfleetFailureRateHigh"]["labels"]["queue"] == "payments"
    assert float(by_name["JobfleetFailureRateHigh"]["value"]) > 0.1
    assert float(by_name["JobfleetBacklogHigh"]["value"]) > 20
    assert by_name["JobfleetWorkersDown"]["labels"]["deployment"] == "broken-jobfleet"
    # The healthy parts stay quiet: Redis is up, the operator leads, no breaker is open.
    assert not NEVER & {a["labels"]["alertname"] for a in monitoring.alerts(s.prom)}
    s.fired = True


def _panel_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads((monitoring.CHART / "dashboards" / "jobfleet-queues.json").read_text())
    out: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            walk(p.get("panels", []))
            out.extend((p["title"], t["expr"]) for t in p.get("targets", []) if t.get("expr"))

    walk(dashboard["panels"])
    return out


def test_every_dashboard_panel_returns_data(stack: Stack) -> None:
    s = stack
    exprs = _panel_exprs()
    assert len(exprs) >= 10

    def substituted(expr: str) -> str:
        # Grafana's variables: this namespace, every queue, a rate interval of a few scrapes.
        return (
            expr.replace("$namespace", s.namespace)
            .replace("$queue", ".*")
            .replace("$__rate_interval", "30s")
        )

    def empty() -> list[str]:
        return [title for title, e in exprs if not monitoring.query(s.prom, substituted(e))]

    try:
        wait_for("every panel to have data", lambda: not empty(), 180, 2)
    except AssertionError:
        raise AssertionError(f"panels without data: {empty()}") from None


def _groups(s: Stack, receiver: str) -> dict[str, list[monitoring.Notification]]:
    out: dict[str, list[monitoring.Notification]] = {}
    for n in s.rx.inbox.of(receiver):
        out.setdefault(n.body["groupLabels"].get("queue", ""), []).append(n)
    return out


def _fingerprint(n: monitoring.Notification) -> tuple[str, frozenset[str]]:
    return n.body["status"], frozenset(a["fingerprint"] for a in n.body["alerts"])


def test_alertmanager_groups_repeats_and_delivers_to_webhook_slack_and_email(
    stack: Stack,
) -> None:
    s = stack
    wait_for("the broken fleet to be firing", lambda: firing_for(s, "broken"), 300, 1)

    # Grouping (group_by namespace, queue): one webhook notification carries both alerts of
    # the payments queue.
    def grouped() -> list[monitoring.Notification]:
        return [
            n
            for n in _groups(s, "webhook").get("payments", [])
            if {a["labels"]["alertname"] for a in n.body["alerts"] if a["status"] == "firing"}
            >= {"JobfleetFailureRateHigh", "JobfleetDeadLettersGrowing"}
        ]

    (first, *_) = wait_for("a notification grouping the payments alerts", grouped, 120, 1)
    assert first.body["groupLabels"] == {"namespace": s.namespace, "queue": "payments"}
    assert first.body["receiver"].endswith("/jf-jobfleet/jobfleet")

    # Repeat interval: the broken fleet's group (its alerts have no queue label) stays the
    # same; a second identical notification comes only after Alertmanager flushed the group
    # several times without sending (each flush reaches `tick`).
    def repeated() -> tuple[monitoring.Notification, monitoring.Notification] | None:
        sent = [n for n in _groups(s, "webhook").get("", []) if n.body["status"] == "firing"]
        for a, b in itertools.pairwise(sent):
            if _fingerprint(a) == _fingerprint(b):
                return a, b
        return None

    a, b = wait_for("a repeated notification of the broken fleet", repeated, 180, 1)
    webhook_between = [n for n in _groups(s, "webhook").get("", []) if a.seq < n.seq < b.seq]
    ticks_between = [n for n in _groups(s, "tick").get("", []) if a.seq < n.seq < b.seq]
    assert webhook_between == []  # consecutive: nothing was sent for the group in between
    assert len(ticks_between) >= 3, "the group was not flushed repeatedly before the repeat"
    assert all(_fingerprint(t) == _fingerprint(a) for t in ticks_between)  # unchanged group
    assert {x["labels"]["alertname"] for x in b.body["alerts"]} >= {"JobfleetWorkersDown"}

    # Slack: the incoming-webhook JSON, with the channel and a FIRING title, at the URL read
    # from the Secret.
    def slack_firing() -> list[dict[str, Any]]:
        return [
            n.body
            for n in s.rx.inbox.of("slack")
            if n.body.get("attachments") and "[FIRING:" in n.body["attachments"][0]["title"]
        ]

    (msg, *_) = wait_for("a Slack message", slack_firing, 60, 1)
    assert msg["channel"] == SLACK_CHANNEL
    assert msg["attachments"][0]["title"].startswith("[FIRING:")
    # Email: the SMTP login used the password from the Secret; FIRING in the subject.
    mails = wait_for(
        "an email",
        lambda: [n.body for n in s.rx.inbox.of("email") if "[FIRING:" in n.body["subject"]],
        60,
        1,
    )
    assert mails[0]["to"] == EMAIL_TO
    assert (SMTP_USER, SMTP_PASSWORD) in s.rx.inbox.smtp_logins


def test_alerts_resolve_once_the_causes_are_gone_and_resolved_notifications_are_sent(
    stack: Stack,
) -> None:
    s = stack
    if not s.fired:  # run alone: the causes must have had their effect first
        test_shipped_rules_fire_for_a_failing_handler_a_backlog_and_a_fleet_that_cannot_start(s)
    # Remove every cause: the provider recovers (and traffic dilutes the failure rate), the
    # reports fleet gets the capacity it lacked, the broken fleet its real handler module.
    _stop_traffic(s)()
    s.enqueue("payments", "charge", [{}] * 1500)
    s.patch_queue("reports", {"concurrency": 100})
    s.patch_queue("broken", {"worker": {"handlers": ["e2e.alert_handlers"]}})
    expected = [(name, label, cause) for cause, pairs in EXPECTED.items() for name, label in pairs]

    def still_active() -> list[str]:
        active = s.active("firing") + s.active("pending")
        return [n for n, label, c in expected if any(_matches(a, n, label, c) for a in active)]

    try:
        wait_for("every alert to resolve", lambda: not still_active(), 420, 2)
    except AssertionError:
        raise AssertionError(f"still active: {still_active()}") from None

    # send_resolved: each group's last webhook notification says resolved; so do Slack and
    # email.
    def resolved_groups() -> set[str]:
        return {q for q, ns in _groups(s, "webhook").items() if ns[-1].body["status"] == "resolved"}

    wait_for(
        "resolved notifications for every group",
        lambda: resolved_groups() >= {"payments", "reports", ""},
        120,
        1,
    )
    wait_for(
        "a resolved Slack message",
        lambda: any(
            "[RESOLVED]" in n.body["attachments"][0]["title"] for n in s.rx.inbox.of("slack")
        ),
        60,
        1,
    )
    wait_for(
        "a resolved email",
        lambda: any("[RESOLVED]" in n.body["subject"] for n in s.rx.inbox.of("email")),
        60,
        1,
    )
