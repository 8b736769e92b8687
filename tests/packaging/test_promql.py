"""Every alert and dashboard query is valid PromQL, checked by Prometheus' own parser.

tests/packaging/promql is a tiny Go program around github.com/prometheus/prometheus/
promql/parser, built once into ~/.cache/jobfleet/ (like the e2e tools) when Go is there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from chart_render import REPO, by_kind, needs_helm, render

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
    assert "7 expressions parsed" in check(checker, rule["spec"]["groups"])


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
