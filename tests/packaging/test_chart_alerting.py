"""The chart's AlertmanagerConfig example (webhook, Slack, email) and the rule values the e2e
alert tier (e2e/test_alerts.py) renders the shipped rules with."""

from __future__ import annotations

import re

import pytest
import yaml
from chart_render import CHART, REPO, by_kind, needs_helm, render, render_error

ALERTING_VALUES = CHART / "ci" / "alerting-values.yaml"
KIND = "AlertmanagerConfig"


@needs_helm
def test_alertmanager_config_is_off_by_default() -> None:
    assert not by_kind(render(), KIND)


@needs_helm
def test_alertmanager_config_routes_the_jobfleet_alerts_to_webhook_slack_and_email() -> None:
    (amc,) = by_kind(render(ALERTING_VALUES, namespace="team"), KIND)
    assert amc["apiVersion"] == "monitoring.coreos.com/v1alpha1"
    assert amc["metadata"]["namespace"] == "team"
    assert amc["metadata"]["labels"]["release"] == "kube-prometheus-stack"  # the selector
    route = amc["spec"]["route"]
    assert route["receiver"] == "jobfleet"
    assert route["matchers"] == [{"name": "alertname", "matchType": "=~", "value": "Jobfleet.+"}]
    assert route["groupBy"] == ["alertname", "namespace", "queue"]
    assert (route["groupWait"], route["groupInterval"], route["repeatInterval"]) == (
        "30s",
        "5m",
        "4h",
    )
    (receiver,) = amc["spec"]["receivers"]
    assert receiver["webhookConfigs"] == [
        {"url": "https://hooks.example.com/jobfleet", "sendResolved": True}
    ]
    (slack,) = receiver["slackConfigs"]
    assert slack["apiURL"] == {"name": "jobfleet-slack", "key": "url"}  # from a Secret
    assert slack["channel"] == "#jobs" and slack["sendResolved"] is True
    (email,) = receiver["emailConfigs"]
    assert email["authPassword"] == {"name": "jobfleet-smtp", "key": "password"}
    assert email["to"] == "oncall@example.com" and email["smarthost"] == "smtp.example.com:587"
    assert email["requireTLS"] is True


@needs_helm
def test_alertmanager_config_renders_only_the_receivers_that_are_set() -> None:
    sets = {
        "metrics.alertmanagerConfig.enabled": "true",
        "metrics.alertmanagerConfig.webhook.url": "http://hook.team.svc:8080/alerts",
    }
    (amc,) = by_kind(render(sets=sets), KIND)
    (receiver,) = amc["spec"]["receivers"]
    assert set(receiver) == {"name", "webhookConfigs"}


@needs_helm
def test_secrets_are_never_inline_values() -> None:
    # The values have no field for a Slack URL or an SMTP password: only Secret references.
    values = yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]["alertmanagerConfig"]
    assert set(values["slack"]) == {"apiURLSecret", "channel"}
    assert "authPassword" not in values["email"] and "authPasswordSecret" in values["email"]
    error = render_error(
        {"metrics.alertmanagerConfig.enabled": "true", "metrics.alertmanagerConfig.slack.url": "x"}
    )
    assert "additional properties 'url' not allowed" in error


@needs_helm
@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({}, "metrics.alertmanagerConfig.enabled needs a receiver"),
        (
            {"metrics.alertmanagerConfig.email.to": "a@example.com"},
            "metrics.alertmanagerConfig.email needs from and smarthost",
        ),
        (
            {
                "metrics.alertmanagerConfig.email.to": "a@example.com",
                "metrics.alertmanagerConfig.email.from": "b@example.com",
                "metrics.alertmanagerConfig.email.smarthost": "smtp:25",
                "metrics.alertmanagerConfig.email.authUsername": "b",
            },
            "authPasswordSecret.name is required with authUsername",
        ),
        ({"metrics.alertmanagerConfig.repeatInterval": "4 hours"}, "/repeatInterval"),
    ],
)
def test_incomplete_alertmanager_config_is_refused(sets: dict[str, str], message: str) -> None:
    assert message in render_error({"metrics.alertmanagerConfig.enabled": "true", **sets})


@needs_helm
def test_every_for_duration_of_the_rules_is_a_chart_value() -> None:
    """The e2e tier shortens `for:` through values, never by editing rules: no rule may
    hard-code one."""
    source = (CHART / "templates" / "prometheusrule.yaml").read_text()
    fors = re.findall(r"^\s*for: (.*)$", source, flags=re.MULTILINE)
    assert fors and all(f.startswith("{{ $p.") for f in fors), fors
    sets = {"metrics.prometheusRule.enabled": "true", "metrics.prometheusRule.noLeader.for": "7s"}
    (rule,) = by_kind(render(sets=sets), "PrometheusRule")
    (no_leader,) = [
        r
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if r["alert"] == "JobfleetOperatorNoLeader"
    ]
    assert no_leader["for"] == "7s"


def test_prometheus_versions_agree() -> None:
    """The Prometheus the e2e tier runs is the one whose parser checks the rules."""
    env = (REPO / "e2e" / "tools" / "versions.env").read_text()
    pinned = re.search(r"^PROMETHEUS_VERSION=(\S+)$", env, flags=re.MULTILINE)
    gomod = (REPO / "tests" / "packaging" / "promql" / "go.mod").read_text()
    required = re.search(r"github.com/prometheus/prometheus (v\S+)", gomod)
    assert pinned and required and pinned[1] == required[1]
