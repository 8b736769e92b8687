"""The Helm chart: lint, schema-valid manifests for every values example, CRD in sync,
pod security defaults, values that must be refused, NOTES."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from chart_render import (
    CHART,
    CI_VALUES,
    REPO,
    by_kind,
    helm,
    needs_helm,
    pod_specs,
    render,
    render_error,
    template_args,
)
from chart_schemas import (
    PROMETHEUS_OPERATOR_VERSION,
    prometheus_operator_crds,
    validate_builtin,
    validate_custom,
)

VALUES_IDS = [p.name.removesuffix("-values.yaml") for p in CI_VALUES]
MONITORING_GROUP = "monitoring.coreos.com"


def test_chart_ships_the_generated_crd() -> None:
    """helm/jobfleet/crds/ is a copy of crds/ (generated from the spec model): refresh it with
    `cp crds/*.yaml helm/jobfleet/crds/` after regenerating."""
    generated = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    shipped = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert shipped == generated
    for name in generated:
        assert (CHART / "crds" / name).read_bytes() == (REPO / "crds" / name).read_bytes(), (
            f"helm/jobfleet/crds/{name} differs from crds/{name}: "
            "run `cp crds/*.yaml helm/jobfleet/crds/`"
        )


def test_there_are_values_examples() -> None:
    assert len(CI_VALUES) >= 4, CI_VALUES


@needs_helm
@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=["no-values", *VALUES_IDS])
def test_helm_lint_is_clean(values: Path | None) -> None:
    from chart_render import KUBE_VERSION

    args = ["lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION]
    if values is not None:
        args += ["--values", str(values)]
    out = helm(*args).stdout
    # --strict fails on warnings; INFO lines are advice only (icon is recommended).
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


@needs_helm
@pytest.mark.parametrize("values", CI_VALUES, ids=VALUES_IDS)
def test_rendered_manifests_fit_the_kubernetes_schemas(values: Path) -> None:
    docs = render(values, include_crds=True)
    assert docs
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']} ({values.name})"
        if doc["apiVersion"].startswith(MONITORING_GROUP + "/"):
            crds = prometheus_operator_crds()
            if crds is None:
                pytest.skip(
                    f"prometheus-operator {PROMETHEUS_OPERATOR_VERSION} CRDs unavailable "
                    "(needs Go and the module proxy once)"
                )
            validate_custom(doc, crds[doc["kind"]])
        else:
            try:
                validate_builtin(doc)
            except Exception as exc:
                raise AssertionError(f"{where}: {getattr(exc, 'message', exc)}") from exc


@needs_helm
@pytest.mark.parametrize("values", CI_VALUES, ids=VALUES_IDS)
def test_every_workload_runs_locked_down(values: Path) -> None:
    """Non-root, read-only root filesystem, no capabilities, seccomp RuntimeDefault, resources."""
    for name, pod in pod_specs(render(values)):
        psc = pod.get("securityContext", {})
        assert psc.get("runAsNonRoot") is True, name
        assert psc.get("seccompProfile") == {"type": "RuntimeDefault"}, name
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["capabilities"] == {"drop": ["ALL"]}, (name, c["name"])
            assert c["resources"].get("requests"), (name, c["name"])
            assert c["resources"].get("limits", {}).get("memory"), (name, c["name"])


@needs_helm
def test_operator_deployment_is_wired_to_the_process_flags() -> None:
    (dep,) = by_kind(render(), "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
    assert env["JOBFLEET_NAMESPACES"] == "jobfleet"
    assert env["JOBFLEET_LEADER_ELECTION"] == "true"
    assert env["JOBFLEET_HTTP_PORT"] == "8081"
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "command" not in c  # the image's entrypoint, jobfleet-operator
    assert c["image"] == "ghcr.io/jobfleet/jobfleet-operator:0.1.0"
    assert c["ports"] == [{"name": "http", "containerPort": 8081, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert pod["serviceAccountName"] == "jf-jobfleet-operator"


@needs_helm
@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ({"operator.watchAllNamespaces": "true"}, "*"),
        ({"operator.watchNamespaces": "{team-a,team-b}"}, "team-a,team-b"),
    ],
)
def test_watched_namespaces_reach_the_operator(sets: dict[str, str], expected: str) -> None:
    (dep,) = by_kind(render(sets=sets), "Deployment")
    env = {
        e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["JOBFLEET_NAMESPACES"] == expected


@needs_helm
def test_standalone_operator_never_runs_twice() -> None:
    (dep,) = by_kind(render(sets={"operator.leaderElection": "false"}), "Deployment")
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    env = {
        e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["JOBFLEET_LEADER_ELECTION"] == "false"


@needs_helm
def test_replicas_get_a_disruption_budget_and_spread() -> None:
    docs = render(sets={"operator.replicas": "2"})
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    (dep,) = by_kind(docs, "Deployment")
    assert dep["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert not by_kind(render(), "PodDisruptionBudget")  # one replica: a PDB would block drains


@needs_helm
def test_image_digest_pins_the_image() -> None:
    digest = "sha256:" + "ab" * 32
    (dep,) = by_kind(render(sets={"image.digest": digest}), "Deployment")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"ghcr.io/jobfleet/jobfleet-operator@{digest}"
    )


@needs_helm
def test_dev_redis_never_evicts_and_keeps_an_append_only_file() -> None:
    docs = render(sets={"redis.dev.enabled": "true"})
    (sts,) = by_kind(docs, "StatefulSet")
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    opts = dict(zip(args[::2], args[1::2], strict=True))
    assert opts["--appendonly"] == "yes"
    assert opts["--maxmemory-policy"] == "noeviction"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    (secret,) = by_kind(docs, "Secret")
    assert secret["stringData"]["url"] == "redis://jf-jobfleet-redis.jobfleet.svc:6379/0"
    assert not by_kind(render(), "StatefulSet")  # off by default


@needs_helm
def test_a_sentinel_url_fits_the_values_schema() -> None:
    url = "redis+sentinel://:pw@sentinel-0:26379,sentinel-1:26379/mymaster/0"
    # --set splits on commas: the README shows them escaped.
    secrets = by_kind(render(sets={"redis.url": url.replace(",", "\\,")}), "Secret")
    assert [s["stringData"]["url"] for s in secrets] == [url]


def test_redis_url_is_kept_in_a_secret_only() -> None:
    url = "redis://:s3cret@redis.infra:6379/0"
    docs = render(sets={"redis.url": url})
    (secret,) = by_kind(docs, "Secret")
    assert secret["stringData"] == {"url": url}
    others = yaml.safe_dump_all([d for d in docs if d["kind"] != "Secret"])
    assert "s3cret" not in others
    assert not by_kind(render(sets={"redis.existingSecret.name": "mine"}), "Secret")


@needs_helm
def test_monitoring_objects_are_off_by_default_and_complete_when_on() -> None:
    kinds = {d["kind"] for d in render()}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap"}
    docs = render(
        sets={
            "metrics.serviceMonitor.enabled": "true",
            "metrics.podMonitor.enabled": "true",
            "metrics.prometheusRule.enabled": "true",
            "dashboards.grafana.enabled": "true",
        }
    )
    (rule,) = by_kind(docs, "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {
        "JobfleetBacklogHigh",
        "JobfleetFailureRateHigh",
        "JobfleetSLABreached",
        "JobfleetRedisDown",
        "JobfleetCircuitOpen",
        "JobfleetWorkersCrashLooping",
        "JobfleetWorkersDown",
        "JobfleetWorkerMemoryHigh",
        "JobfleetJobDurationHigh",
        "JobfleetDeadLettersGrowing",
    } <= alerts
    (cm,) = by_kind(docs, "ConfigMap")
    import json

    dashboard = json.loads(cm["data"]["jobfleet-queues.json"])
    assert dashboard["uid"] == "jobfleet-queues" and dashboard["panels"]


@needs_helm
@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            {"operator.replicas": "2", "operator.leaderElection": "false"},
            "operator.replicas > 1 needs operator.leaderElection: true",
        ),
        (
            {"operator.watchAllNamespaces": "true", "operator.watchNamespaces": "{a}"},
            "set operator.watchNamespaces or operator.watchAllNamespaces, not both",
        ),
        (
            {"redis.url": "redis://r:6379/0", "redis.dev.enabled": "true"},
            "set at most one of redis.url, redis.existingSecret.name and redis.dev.enabled",
        ),
        ({"operator.replica": "2"}, "additional properties 'replica' not allowed"),
        ({"redis.url": "http://redis:6379"}, "/redis/url"),
        ({"operator.watchNamespaces": "{Team_A}"}, "/operator/watchNamespaces/0"),
        ({"serviceAccount.create": "false"}, "serviceAccount.name is required"),
    ],
)
def test_inconsistent_values_are_refused_with_a_clear_message(
    sets: dict[str, str], message: str
) -> None:
    assert message in render_error(sets)


@needs_helm
@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ({}, "kubectl get jfq"),
        ({"redis.dev.enabled": "true"}, "urlSecretRef: {name: jf-jobfleet-redis, key: url}"),
        ({"redis.existingSecret.name": "creds"}, "urlSecretRef: {name: creds, key: url}"),
        ({"redis.dev.enabled": "true"}, "WARNING: the development Redis"),
    ],
)
def test_notes_tell_the_next_step(tmp_path: Path, sets: dict[str, str], expected: str) -> None:
    # `helm install --dry-run` would render NOTES.txt but wants a cluster; in a copy of the
    # chart, a ConfigMap template renders the same file with the same values through `tpl`.
    chart = tmp_path / "jobfleet"
    shutil.copytree(CHART, chart)
    shutil.move(chart / "templates" / "NOTES.txt", chart / "notes.txt")
    (chart / "templates" / "notes-probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: |\n"
        '{{ tpl (.Files.Get "notes.txt") . | indent 4 }}\n'
    )
    args = [*template_args(sets=sets, chart=chart), "--show-only", "templates/notes-probe.yaml"]
    notes = yaml.safe_load(helm(*args).stdout)["data"]["notes"]
    assert expected in notes
    assert "apiVersion: jobfleet.dev/v1alpha1" in notes


@needs_helm
def test_packaged_chart_carries_the_crd_and_the_docs_but_not_the_ci_values(tmp_path: Path) -> None:
    import tarfile

    helm("package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("jobfleet-*.tgz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert "jobfleet/crds/jobfleet.dev_queues.yaml" in names
    assert {"jobfleet/README.md", "jobfleet/values.schema.json"} <= names
    assert "jobfleet/dashboards/jobfleet-queues.json" in names
    assert not [n for n in names if n.startswith("jobfleet/ci/")]
