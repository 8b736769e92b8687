"""Prometheus, Alertmanager and notification receivers beside the e2e cluster.

The Prometheus Operator is not part of the e2e tier (no binary of it is built), so the
scrape configuration is generated here: the harness writes every process pod's containers,
with the loopback port it gave each, into a file_sd file (e2e/harness/scrape.py) labelled as
kubernetes_sd's pod role would, and the jobs below relabel those labels the way the
operator's configs for the chart's PodMonitor and ServiceMonitor do. kubernetes_sd against
the API server cannot work here: the harness's per-container ports exist only on this host,
never in a pod's spec or status.

The rules are the chart's shipped PrometheusRule, rendered by helm; the Alertmanager routes
and receivers are the chart's AlertmanagerConfig example, translated as the Prometheus
Operator would (namespace matcher, secrets as files).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from kubernetes import client

from .support import REPO, RUN, Tools, versions, wait_for

CHART = REPO / "helm" / "jobfleet"
SCRAPE_TARGETS = RUN / "scrape" / "pods.json"  # HarnessConfig.scrape_targets


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render_chart(
    tools: Tools, namespace: str, template: str, values: dict[str, Any]
) -> list[dict[str, Any]]:
    """The documents one chart template renders with `values`, as `helm template` does."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(values, f)
        f.flush()
        done = subprocess.run(
            [str(tools.helm), "template", "jf", str(CHART), "-n", namespace, "-f", f.name,
             "--kube-version", versions()["KUBE_VERSION"], "--show-only", f"templates/{template}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"helm template failed: {done.stderr}")
    out = done.stdout
    return [d for d in yaml.safe_load_all(out) if d]


# ---- Prometheus ---------------------------------------------------------------------------------


def _keep(label: str, value: str) -> dict[str, Any]:
    name = re.sub(r"[^a-zA-Z0-9_]", "_", label)
    return {
        "source_labels": [f"__meta_kubernetes_pod_label_{name}"],
        "regex": re.escape(value),
        "action": "keep",
    }


# What the Prometheus Operator adds to every PodMonitor/ServiceMonitor job.
_TARGET_LABELS: list[dict[str, Any]] = [
    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
]


def prometheus_config(alertmanager: str, kube_state_metrics: str, release: str) -> dict[str, Any]:
    """Scrape jobs equivalent to the chart's PodMonitor and ServiceMonitor, plus kube-state
    metrics; short intervals so the test is quick (the rules' `for:` come from the chart)."""
    file_sd = [{"files": [str(SCRAPE_TARGETS)], "refresh_interval": "2s"}]
    http_port = {
        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
        "regex": "http",
        "action": "keep",
    }
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {
                # PodMonitor <release>-jobfleet-workers: the worker pods the operator creates.
                "job_name": "jobfleet-workers",
                "file_sd_configs": file_sd,
                "relabel_configs": [
                    _keep("app.kubernetes.io/name", "jobfleet-worker"),
                    _keep("app.kubernetes.io/part-of", "jobfleet"),
                    http_port,
                    *_TARGET_LABELS,
                ],
            },
            {
                # ServiceMonitor <release>-jobfleet-operator: honorLabels keeps the Queue's
                # own `namespace` label on the operator's series.
                "job_name": "jobfleet-operator",
                "honor_labels": True,
                "file_sd_configs": file_sd,
                "relabel_configs": [
                    _keep("app.kubernetes.io/name", "jobfleet"),
                    _keep("app.kubernetes.io/instance", release),
                    _keep("app.kubernetes.io/component", "operator"),
                    http_port,
                    *_TARGET_LABELS,
                ],
            },
            {
                "job_name": "kube-state-metrics",
                "honor_labels": True,
                "static_configs": [{"targets": [kube_state_metrics]}],
            },
        ],
    }


@dataclasses.dataclass
class Daemon:
    """A Prometheus or Alertmanager process with its scratch directory and HTTP API."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    workdir: Path

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as resp:
            return json.load(resp)

    def log(self) -> str:
        path = self.workdir / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _start(
    name: str, exe: Path, args: list[str], config: dict[str, Any], files: dict[str, Any]
) -> Daemon:
    """Start `exe` in a scratch directory holding config.yaml and `files` (YAML documents
    named by file; `{workdir}` in the config and args is that directory)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"e2e-{name}-", dir=RUN if RUN.exists() else None))
    for fname, doc in files.items():
        (workdir / fname).write_text(yaml.safe_dump(doc, sort_keys=False))
    text = yaml.safe_dump(config, sort_keys=False).replace("{workdir}", str(workdir))
    (workdir / "config.yaml").write_text(text)
    port = free_port()
    with open(workdir / "log", "wb") as log:
        proc = subprocess.Popen(
            [str(exe), f"--config.file={workdir / 'config.yaml'}",
             *(a.replace("{workdir}", str(workdir)) for a in args),
             f"--web.listen-address=127.0.0.1:{port}"],
            cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    daemon = Daemon(name, proc, f"http://127.0.0.1:{port}", workdir)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{daemon.log()[-3000:]}")
        with urllib.request.urlopen(f"{daemon.url}/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)

    try:
        wait_for(f"{name} to be ready", ready, 60, 0.2)
    except BaseException:
        daemon.stop()
        raise
    return daemon


def start_prometheus(exe: Path, config: dict[str, Any], rules: dict[str, Any]) -> Daemon:
    """Prometheus with `config` and the rule groups `rules` (rule_files is set here)."""
    return _start(
        "prometheus",
        exe,
        # Resend firing alerts every second (default 1 m), so Alertmanager's view is current.
        ["--storage.tsdb.path={workdir}/data", "--rules.alert.resend-delay=1s"],
        {**config, "rule_files": ["{workdir}/jobfleet.rules.yaml"]},
        {"jobfleet.rules.yaml": rules},
    )


def start_alertmanager(exe: Path, config: dict[str, Any]) -> Daemon:
    """A single Alertmanager (an empty cluster address turns gossip with peers off)."""
    return _start(
        "alertmanager", exe, ["--storage.path={workdir}/data", "--cluster.listen-address="],
        config, {},
    )  # fmt: skip


def alerts(prometheus: Daemon) -> list[dict[str, Any]]:
    """Prometheus' active alerts (pending and firing)."""
    return list(prometheus.get("/api/v1/alerts")["data"]["alerts"])


def query(prometheus: Daemon, expr: str) -> list[dict[str, Any]]:
    """An instant query's result vector."""
    return list(prometheus.get("/api/v1/query", query=expr)["data"]["result"])


# ---- Alertmanager configuration from the chart's AlertmanagerConfig ----------------------------

_ROUTE_KEYS = {
    "receiver": "receiver",
    "groupBy": "group_by",
    "groupWait": "group_wait",
    "groupInterval": "group_interval",
    "repeatInterval": "repeat_interval",
    "continue": "continue",
}
_RECEIVER_KEYS: dict[str, dict[str, str]] = {
    "webhookConfigs": {"url": "url", "sendResolved": "send_resolved", "maxAlerts": "max_alerts"},
    "slackConfigs": {
        "channel": "channel",
        "sendResolved": "send_resolved",
        "username": "username",
        "title": "title",
        "text": "text",
    },
    "emailConfigs": {
        "to": "to",
        "from": "from",
        "smarthost": "smarthost",
        "authUsername": "auth_username",
        "requireTLS": "require_tls",
        "sendResolved": "send_resolved",
    },
}
# Secret references and the native field that reads the secret from a file.
_SECRET_KEYS = {
    "apiURL": "api_url_file",
    "authPassword": "auth_password_file",
    "urlSecret": "url_file",
}


def _matcher(m: dict[str, Any]) -> str:
    return f"{m['name']}{m.get('matchType', '=')}{json.dumps(m['value'])}"


def translate_alertmanager_config(
    cr: dict[str, Any], secret: Callable[[str, str], str], secrets_dir: Path
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(route, receivers) of the native config for one AlertmanagerConfig, as the Prometheus
    Operator generates them: receivers named <namespace>/<name>/<receiver>, the route matched
    to the CR's namespace, secret keys written to files. An unknown field fails the test, so
    the chart's example never uses what this translation (and so the test) does not cover."""
    ns, name = cr["metadata"]["namespace"], cr["metadata"]["name"]
    spec = cr["spec"]

    def qualified(receiver: str) -> str:
        return f"{ns}/{name}/{receiver}"

    def route(r: dict[str, Any], top: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        matchers = [_matcher(m) for m in r.get("matchers", [])]
        for key, value in r.items():
            if key == "matchers":
                continue
            if key == "routes":
                out["routes"] = [route(child, False) for child in value]
            elif key in _ROUTE_KEYS:
                out[_ROUTE_KEYS[key]] = qualified(value) if key == "receiver" else value
            else:
                raise AssertionError(f"AlertmanagerConfig route field {key!r} is not translated")
        if top:
            matchers.insert(0, f'namespace="{ns}"')
            out["continue"] = True  # the operator's rule for every AlertmanagerConfig route
        out["matchers"] = matchers
        return out

    receivers = []
    for rec in spec["receivers"]:
        native: dict[str, Any] = {"name": qualified(rec["name"])}
        for kind, items in rec.items():
            if kind == "name":
                continue
            keys = _RECEIVER_KEYS.get(kind)
            if keys is None:
                raise AssertionError(f"AlertmanagerConfig receiver {kind!r} is not translated")
            configs = []
            for item in items:
                conf: dict[str, Any] = {}
                for key, value in item.items():
                    if key in _SECRET_KEYS:
                        path = secrets_dir / f"{value['name']}-{value['key']}"
                        path.write_text(secret(value["name"], value["key"]))
                        conf[_SECRET_KEYS[key]] = str(path)
                    elif key in keys:
                        conf[keys[key]] = value
                    else:
                        raise AssertionError(f"{kind} field {key!r} is not translated")
                configs.append(conf)
            native[re.sub(r"Configs$", "_configs", kind)] = configs
        receivers.append(native)
    return route(spec["route"], True), receivers


def secret_reader(core: client.CoreV1Api, namespace: str) -> Callable[[str, str], str]:
    """Reads a key of a Secret in `namespace` (what the Prometheus Operator does for a CR)."""

    def read(name: str, key: str) -> str:
        data = core.read_namespaced_secret(name, namespace).data or {}
        return base64.b64decode(data[key]).decode()

    return read


# ---- receivers ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Notification:
    """One notification as a receiver got it, in arrival order across all receivers."""

    seq: int
    receiver: str  # webhook, slack, email, tick
    body: Any  # the JSON payload (webhook, slack) or {"subject", "to", "text"} (email)


class Inbox:
    """Every notification any receiver got, in one ordered list (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[Notification] = []
        self.smtp_logins: list[tuple[str, str]] = []

    def add(self, receiver: str, body: Any) -> None:
        with self._lock:
            self.items.append(Notification(len(self.items), receiver, body))

    def of(self, receiver: str) -> list[Notification]:
        with self._lock:
            return [n for n in self.items if n.receiver == receiver]

    def all(self) -> list[Notification]:
        with self._lock:
            return list(self.items)


@dataclasses.dataclass
class Receivers:
    """A local HTTP server (webhook, Slack API, tick) and SMTP server feeding one Inbox."""

    inbox: Inbox
    http_port: int
    smtp_port: int

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/webhook"

    @property
    def tick_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/tick"

    @property
    def slack_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/slack/services/T000/B000/XXXX"

    @property
    def smarthost(self) -> str:
        return f"127.0.0.1:{self.smtp_port}"


@contextlib.contextmanager
def receivers(smtp_user: str, smtp_password: str) -> Iterator[Receivers]:
    """aiohttp (webhook, Slack, tick) and aiosmtpd (email) on loopback ports, until exit."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    inbox = Inbox()
    http_port, smtp_port = free_port(), free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner: dict[str, web.AppRunner] = {}

    def handler(kind: str) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            inbox.add(kind, await request.json())
            return web.Response(text="ok")  # Slack's incoming-webhook reply

        return handle

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/webhook", handler("webhook"))
        app.router.add_post("/tick", handler("tick"))
        app.router.add_post("/slack/{tail:.*}", handler("slack"))
        runner["r"] = web.AppRunner(app)
        await runner["r"].setup()
        await web.TCPSite(runner["r"], "127.0.0.1", http_port).start()
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(serve())
        loop.run_forever()

    thread = threading.Thread(target=run, name="receivers", daemon=True)
    thread.start()
    started.wait(30)

    class Mail:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            msg = message_from_bytes(envelope.original_content)
            parts = [p for p in msg.walk() if p.get_content_type() == "text/plain"]
            text = parts[0].get_payload(decode=True).decode() if parts else ""
            inbox.add("email", {"subject": msg["Subject"], "to": msg["To"], "text": text})
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        if not isinstance(auth, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth.login.decode(), auth.password.decode()
        inbox.smtp_logins.append((user, password))
        return AuthResult(success=(user, password) == (smtp_user, smtp_password))

    smtp = Controller(
        Mail(),
        hostname="127.0.0.1",
        port=smtp_port,
        authenticator=authenticator,
        auth_require_tls=False,  # loopback only; Alertmanager's PLAIN auth allows 127.0.0.1
        # aiosmtpd's LOGIN prompts "User Name", which Alertmanager's LOGIN client refuses
        # ("unexpected server challenge"); PLAIN is what real SMTP servers offer too.
        auth_exclude_mechanism=["LOGIN"],
    )
    smtp.start()
    try:
        yield Receivers(inbox, http_port, smtp_port)
    finally:
        smtp.stop()
        if "r" in runner:
            asyncio.run_coroutine_threadsafe(runner["r"].cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
