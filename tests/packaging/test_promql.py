"""Every alert and dashboard query is valid PromQL, checked by Prometheus' own parser, and
reads only series that jobfleet, its operator or a listed external exporter exports.

tests/packaging/promql is a tiny Go program around github.com/prometheus/prometheus/
promql/parser, built once into ~/.cache/jobfleet/ (like the e2e tools) when Go is there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import REPO, by_kind, needs_helm, render
from prometheus_client import REGISTRY, CollectorRegistry

SOURCE = Path(__file__).resolve().parent / "promql"
PROMETHEUS_VERSION = re.search(
    r"github.com/prometheus/prometheus (v\S+)", (SOURCE / "go.mod").read_text()
)[1]  # type: ignore[index]


def promql_check() -> Path | None:
    """The checker binary, built on first use; None without Go."""
    cache = Path(os.environ.get("JOBFLEET_CACHE", Path.home() / ".cache" / "jobfleet"))
    exe = cache / f"promql-check-{PROMETHEUS_VERSION}" / "bin" / "promql-check"
    if exe.is_file():
        return exe
    goenv = REPO / "e2e" / "tools" / "goenv.sh"
    tmp = exe.with_name(f".promql-check.{os.getpid()}")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    script = (
        f"source {goenv} && command -v go >/dev/null && cd {SOURCE} && "
        f"nice -n 10 go build -trimpath -ldflags '-s -w' -o {tmp} . && mv -f {tmp} {exe}"
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    return exe if done.returncode == 0 and exe.is_file() else None


@pytest.fixture(scope="module")
def checker() -> Path:
    exe = promql_check()
    if exe is None:
        pytest.skip(
            f"promql-check not built (needs Go and the module proxy once; "
            f"prometheus {PROMETHEUS_VERSION})"
        )
    return exe


def check(checker: Path, groups: list[dict[str, object]]) -> str:
    done = subprocess.run(
        [str(checker)], input=yaml.safe_dump({"groups": groups}), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_checker_rejects_bad_promql(checker: Path) -> None:
    bad = [{"name": "g", "rules": [{"alert": "A", "expr": "sum by (x (up)"}]}]
    done = subprocess.run(
        [str(checker)], input=yaml.safe_dump({"groups": bad}), capture_output=True, text=True
    )
    assert done.returncode == 1 and "parse error" in done.stdout


@needs_helm
def test_alert_expressions_parse(checker: Path) -> None:
    (rule,) = by_kind(render(sets={"metrics.prometheusRule.enabled": "true"}), "PrometheusRule")
    assert "11 expressions parsed" in check(checker, rule["spec"]["groups"])


@needs_helm
def test_per_queue_duration_thresholds_parse_and_exclude_their_queues(checker: Path) -> None:
    sets = {
        "metrics.prometheusRule.enabled": "true",
        "metrics.prometheusRule.jobDuration.perQueue.emails": "30",
        "metrics.prometheusRule.jobDuration.perQueue.img\\.big": "600",
    }
    (rule,) = by_kind(render(sets=sets), "PrometheusRule")
    check(checker, rule["spec"]["groups"])
    (expr,) = [r["expr"] for r in alert_rules(rule) if r["alert"] == "JobfleetJobDurationHigh"]
    assert '{queue="emails"}' in expr and ") > 30" in expr
    assert '{queue="img.big"}' in expr and ") > 600" in expr
    # The default threshold covers every other queue; the regex escapes the queue's dot.
    assert "{queue!~`emails|img\\.big`}" in expr and ") > 300" in expr


def alert_rules(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for g in rule["spec"]["groups"] for r in g["rules"]]


# Series the rules and dashboard read from exporters other than jobfleet's own, by exporter.
EXTERNAL = {
    "kube-state-metrics": {
        "kube_deployment_spec_replicas",
        "kube_deployment_status_replicas_ready",
        "kube_pod_container_resource_limits",
        "kube_pod_container_status_restarts_total",
    },
    "cAdvisor (the kubelet's /metrics/cadvisor)": {"container_memory_working_set_bytes"},
}
KEYWORDS = {"and", "or", "unless", "offset", "bool"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (what is left once strings, label matchers,
    ranges, grouping clauses and function calls are taken away)."""
    expr = re.sub(r'"[^"]*"|`[^`]*`', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    return set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()", expr)) - KEYWORDS


def exported(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry's metrics expose (a counter's _total, a histogram's
    _bucket/_sum/_count), whether or not a labelled child exists yet."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    return {m.name + s for m in registry.collect() for s in suffixes.get(m.type, [""])}


def known_metrics() -> set[str]:
    import jobfleet.metrics  # noqa: F401 - registers the worker's metrics
    from jobfleet_operator.metrics import Metrics

    ours = {n for n in exported(REGISTRY) if n.startswith("jobfleet_")}
    return ours | exported(Metrics().registry) | set().union(*EXTERNAL.values())


def test_metric_names_are_found_in_expressions() -> None:
    expr = 'max by (namespace, queue) (jobfleet_queue_jobs{state="dead"} offset 30m) > 0'
    assert metric_names(expr) == {"jobfleet_queue_jobs"}
    expr = "histogram_quantile(0.95, sum by (le) (rate(x_bucket{q!~`a|b`}[5m]))) / y or z"
    assert metric_names(expr) == {"x_bucket", "y", "z"}
    assert "jobfleet_job_failures_total" in known_metrics()
    assert "jobfleet_redis_claim_seconds_bucket" in known_metrics()
    assert "jobfleet_operator_queue_backlog" in known_metrics()


@needs_helm
def test_alerts_read_only_metrics_that_are_exported() -> None:
    (rule,) = by_kind(render(sets={"metrics.prometheusRule.enabled": "true"}), "PrometheusRule")
    used = set().union(*(metric_names(r["expr"]) for r in alert_rules(rule)))
    assert len(used) > 10
    assert used - known_metrics() == set()


def test_dashboard_reads_only_metrics_that_are_exported() -> None:
    dashboard = json.loads(
        (REPO / "helm" / "jobfleet" / "dashboards" / "jobfleet-queues.json").read_text()
    )
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in metric_names(target["expr"].replace("$__rate_interval", "1m"))
    }
    assert len(used) > 10
    assert used - known_metrics() == set()


@needs_helm
def test_every_alert_has_severity_for_and_annotations() -> None:
    (rule,) = by_kind(render(sets={"metrics.prometheusRule.enabled": "true"}), "PrometheusRule")
    runbook = (REPO / "docs" / "alerts.md").read_text()
    for r in alert_rules(rule):
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
        assert f"## {r['alert']}" in runbook, f"docs/alerts.md has no section {r['alert']}"
        # A rule without `for:` fires on one evaluation; only a counter's increase may.
        assert "for" in r or "increase(" in r["expr"], r["alert"]


def test_dashboard_queries_parse(checker: Path) -> None:
    dashboard = json.loads(
        (REPO / "helm" / "jobfleet" / "dashboards" / "jobfleet-queues.json").read_text()
    )
    # Grafana substitutes its variables before Prometheus sees a query.
    grafana_vars = {"$__rate_interval": "1m", "$namespace": ".*", "$queue": ".*"}
    rules = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for var, value in grafana_vars.items():
                expr = expr.replace(var, value)
            assert "$" not in expr, expr
            rules.append({"record": f"panel_{panel['id']}", "expr": expr})
    assert f"{len(rules)} expressions parsed" in check(
        checker, [{"name": "dashboard", "rules": rules}]
    )
