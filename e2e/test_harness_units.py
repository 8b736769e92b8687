"""Unit tests of the harness's kubelet rules (no cluster needed)."""

from __future__ import annotations

import http.server
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness.kubelet import _selector_matches
from .harness.logs import PodLog
from .harness.podenv import ContainerConfigError, command_line, container_env, expand
from .harness.probes import Prober
from .harness.proc import ProcessGroup
from .harness.scrape import ScrapeTargets, container_target
from .support import wait_for

POD: dict[str, Any] = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
    "spec": {"nodeName": "node-1", "serviceAccountName": "sa"},
}
CONFIGMAPS = {("ns", "cm"): {"colour": "blue", "SHAPE": "round"}}
SECRETS = {("ns", "sec"): {"password": "s3cret"}}


def _env(container: dict[str, Any], base: dict[str, str] | None = None) -> dict[str, str]:
    return container_env(
        POD,
        container,
        base or {},
        lambda ns, name: CONFIGMAPS.get((ns, name)),
        lambda ns, name: SECRETS.get((ns, name)),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)-$(B)", "1-$(B)"),  # undefined references stay as written
        ("$$(A)", "$(A)"),  # $$ escapes
        ("$(A)$(A)", "11"),
        ("no refs", "no refs"),
    ],
)
def test_expand_follows_kubelet_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "1"}) == expected


def test_env_sources_and_precedence() -> None:
    env = _env(
        {
            "name": "c",
            "envFrom": [
                {"configMapRef": {"name": "cm"}, "prefix": "CM_"},
                {"secretRef": {"name": "missing", "optional": True}},
            ],
            "env": [
                {"name": "CM_colour", "value": "red"},  # env wins over envFrom
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
                {"name": "GREETING", "value": "hi $(POD) at $(IP)"},
            ],
        },
        base={"PATH": "/bin"},
    )
    assert env["CM_colour"] == "red"
    assert env["CM_SHAPE"] == "round"
    assert env["POD"] == "p"
    assert env["IP"] == "127.0.0.1"
    assert env["APP"] == "web"
    assert env["PW"] == "s3cret"
    assert env["GREETING"] == "hi p at 127.0.0.1"
    assert env["PATH"] == "/bin"


def test_missing_required_reference_blocks_the_container() -> None:
    ref = {"configMapKeyRef": {"name": "cm", "key": "nope"}}
    with pytest.raises(ContainerConfigError, match="nope"):
        _env({"name": "c", "env": [{"name": "X", "valueFrom": ref}]})
    optional = {"configMapKeyRef": {"name": "cm", "key": "nope", "optional": True}}
    assert "X" not in _env({"name": "c", "env": [{"name": "X", "valueFrom": optional}]})


def test_command_line_uses_image_entrypoint_when_command_is_empty() -> None:
    entrypoints = {"jobfleet-worker": ["jobfleet"]}
    container = {"name": "w", "image": "ghcr.io/x/jobfleet-worker:1.0", "args": ["worker", "$(Q)"]}
    assert command_line(container, {"Q": "emails"}, entrypoints) == ["jobfleet", "worker", "emails"]
    with pytest.raises(ContainerConfigError, match="entrypoint"):
        command_line({"name": "x", "image": "busybox"}, {}, entrypoints)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("jobfleet.dev/e2e=true", {"jobfleet.dev/e2e": "true"}, True),
        ("jobfleet.dev/e2e=true", {"jobfleet.dev/e2e": "false"}, False),
        ("a=1,b", {"a": "1", "b": "x"}, True),
        ("a=1,b", {"a": "1"}, False),
        ("a!=1", {"a": "2"}, True),
    ],
)
def test_namespace_selector(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert _selector_matches(selector, labels) is expected


class _Flaky(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.HTTPServer]:
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Flaky)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()


def test_prober_applies_thresholds(server: http.server.HTTPServer) -> None:
    port = server.server_address[1]
    probe = {"httpGet": {"path": "/", "port": 8080}, "failureThreshold": 2, "periodSeconds": 5}
    prober = Prober(probe, max_period=1.0, started_at=0.0, initial=False)
    assert prober.period == 1.0  # capped
    assert prober.tick(1.0, port, {}, "/") is True
    _Flaky.status = 503
    try:
        assert prober.tick(2.0, port, {}, "/") is True  # one failure is below the threshold
        assert prober.tick(2.5, port, {}, "/") is True  # not due yet
        assert prober.tick(3.0, port, {}, "/") is False
        assert prober.failed
    finally:
        _Flaky.status = 200


def _group(tmp_path: Path, code: str) -> tuple[ProcessGroup, PodLog]:
    log = PodLog(tmp_path / "logs", "ns_pod")
    env = {"PATH": os.environ["PATH"]}
    proc = ProcessGroup([sys.executable, "-c", code], env, tmp_path, log, "c", tmp_path / "procs")
    return proc, log


def test_stop_escalates_to_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('ig' + 'noring', flush=True)\ntime.sleep(60)\n"
    proc, log = _group(tmp_path, code)
    assert (tmp_path / "procs" / str(proc.pgid)).exists()
    # Wait until SIGTERM is ignored (the log also holds the command line, hence the split word).
    wait_for("the process to ignore SIGTERM", lambda: "ignoring" in log.path.read_text(), 30, 0.05)
    assert proc.stop(grace=0.5) == -signal.SIGKILL
    text = log.path.read_text()
    assert "SIGTERM (grace 0.5s)" in text
    assert "grace period over: SIGKILL" in text
    assert not (tmp_path / "procs" / str(proc.pgid)).exists()
    log.close()


def test_output_goes_to_the_pod_log_and_a_cri_log(tmp_path: Path) -> None:
    proc, log = _group(tmp_path, "import sys\nprint('out')\nprint('err', file=sys.stderr)\n")
    wait_for("the process to exit", lambda: proc.poll() is not None, 30, 0.05)
    assert proc.stop(grace=1) == 0
    readable = log.path.read_text()
    assert "out\n" in readable and "err\n" in readable
    cri = log.cri_path("c").read_text().splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"
    assert any(re.fullmatch(rf"{stamp} stdout F out", line) for line in cri), cri
    assert any(re.fullmatch(rf"{stamp} stderr F err", line) for line in cri), cri
    log.close()


def test_scrape_targets_carry_kubernetes_sd_labels_and_follow_the_pods(tmp_path: Path) -> None:
    import json

    pod = {
        **POD,
        "metadata": {**POD["metadata"], "labels": {"app.kubernetes.io/name": "jobfleet-worker"}},
    }
    target = container_target(pod, {"name": "worker", "ports": [{"name": "http"}]}, 4321)
    assert target["targets"] == ["127.0.0.1:4321"]
    labels = target["labels"]
    assert labels["__meta_kubernetes_namespace"] == "ns"
    assert labels["__meta_kubernetes_pod_name"] == "p"
    assert labels["__meta_kubernetes_pod_container_name"] == "worker"
    assert labels["__meta_kubernetes_pod_container_port_name"] == "http"
    assert labels["__meta_kubernetes_pod_label_app_kubernetes_io_name"] == "jobfleet-worker"

    path = tmp_path / "scrape" / "pods.json"
    targets = ScrapeTargets(path)
    assert json.loads(path.read_text()) == []
    targets.add("u1", [target])
    targets.add("u2", [container_target(pod, {"name": "sidecar"}, 4322)])
    assert [t["targets"] for t in json.loads(path.read_text())] == [
        ["127.0.0.1:4321"],
        ["127.0.0.1:4322"],
    ]
    targets.remove("u1")
    targets.remove("u1")  # a runner ends once; a second call changes nothing
    (left,) = json.loads(path.read_text())
    assert left["targets"] == ["127.0.0.1:4322"]
    assert "__meta_kubernetes_pod_container_port_name" not in left["labels"]
