"""Render the Helm chart for tests: the pinned helm build, the pinned Kubernetes version."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "jobfleet"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
VERSIONS = REPO / "e2e" / "tools" / "versions.env"


def versions() -> dict[str, str]:
    """The pinned tool versions (e2e/tools/versions.env, the single source)."""
    pairs = (
        line.split("=", 1)
        for line in VERSIONS.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    return {k.strip(): v.strip() for k, v in pairs}


KUBE_VERSION = versions()["KUBE_VERSION"].removeprefix("v")  # e.g. 1.36.3
HELM_VERSION = versions()["HELM_VERSION"]


def helm_path() -> Path | None:
    """The helm that e2e/tools/build.sh builds (~/.cache/jobfleet/helm-<v>/bin/helm), else PATH."""
    cache = Path(os.environ.get("JOBFLEET_CACHE", Path.home() / ".cache" / "jobfleet"))
    built = cache / f"helm-{HELM_VERSION}" / "bin" / "helm"
    if built.is_file():
        return built
    found = shutil.which("helm")
    return Path(found) if found else None


HELM = helm_path()
# The exact skip condition (CI builds helm first via e2e/tools/build.sh, so it never skips there).
needs_helm = pytest.mark.skipif(
    HELM is None,
    reason=f"helm {HELM_VERSION} not built: run `bash e2e/tools/build.sh` "
    f"(looked for ~/.cache/jobfleet/helm-{HELM_VERSION}/bin/helm and `helm` on PATH)",
)


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    done = subprocess.run([str(HELM), *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stderr}")
    return done


def template_args(
    values: Path | None = None,
    sets: dict[str, str] | None = None,
    namespace: str = "jobfleet",
    chart: Path = CHART,
) -> list[str]:
    args = ["template", "jf", str(chart), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    if values is not None:
        args += ["--values", str(values)]
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    return args


def render(
    values: Path | None = None,
    sets: dict[str, str] | None = None,
    namespace: str = "jobfleet",
    include_crds: bool = False,
) -> list[dict[str, Any]]:
    """The chart's manifests as objects (CRDs only when asked: helm installs them apart)."""
    args = template_args(values, sets, namespace)
    if include_crds:
        args.append("--include-crds")
    out = helm(*args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def render_error(sets: dict[str, str], values: Path | None = None) -> str:
    """helm's error output for values that must be refused."""
    done = helm(*template_args(values, sets), check=False)
    assert done.returncode != 0, f"helm accepted {sets}"
    return done.stderr


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(object name, pod spec) of every workload."""
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet")
    ]
