"""Validate rendered objects: Kubernetes' own OpenAPI schemas (kubernetes-validate ships them
per version) and, for custom resources, the openAPIV3Schema of their CRD."""

from __future__ import annotations

import json
import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import KUBE_VERSION, REPO


def _validators() -> tuple[Any, Any]:
    """jsonschema and kubernetes_validate, both from the `kubernetes-validate` package (dev
    extra). Without it only the tests that validate schemas skip; lint, rendering and RBAC
    tests still run."""
    reason = "kubernetes-validate not installed (pip install kubernetes-validate; dev extra)"
    return (
        pytest.importorskip("jsonschema", reason=reason),
        pytest.importorskip("kubernetes_validate", reason=reason),
    )


# prometheus-operator's CRDs (ServiceMonitor, PodMonitor, PrometheusRule), read from its Go
# module at this version: the module proxy is reachable where GitHub is not.
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"


def validate_builtin(obj: dict[str, Any]) -> None:
    """Raise kubernetes_validate.ValidationError unless `obj` fits the pinned Kubernetes' schema.

    strict: unknown fields are errors (the API server would silently drop them).
    """
    _, kubernetes_validate = _validators()
    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def _strict(node: Any) -> Any:
    """A CRD's structural schema as JSON Schema that also rejects unknown fields."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        out.pop("type", None)
    if node.get("nullable"):
        out["type"] = [node["type"], "null"] if "type" in node else None
        if out["type"] is None:
            del out["type"]
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_validator(crd: dict[str, Any], version: str) -> Any:
    """A Draft 4 validator (OpenAPI v3's schema dialect) for one version of a CRD."""
    jsonschema, _ = _validators()
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema = _strict(v["schema"]["openAPIV3Schema"])
            # metadata is ObjectMeta, checked by the API server, not by the CRD's schema.
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            return jsonschema.Draft4Validator(schema)
    raise KeyError(f"{crd['metadata']['name']} has no version {version}")


def validate_custom(obj: dict[str, Any], crd: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless `obj` fits its CRD's schema (CEL rules aside)."""
    jsonschema, _ = _validators()
    version = obj["apiVersion"].split("/")[-1]
    error = jsonschema.exceptions.best_match(crd_validator(crd, version).iter_errors(obj))
    if error is not None:
        raise error


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML resolves a bare `=` to an unsupported 'value' tag (prometheus-operator's CRDs
    list `=` as an enum member of relabel actions): read it as the string it is."""


_Loader.add_constructor("tag:yaml.org,2002:value", yaml.SafeLoader.construct_scalar)


@cache
def prometheus_operator_crds() -> dict[str, dict[str, Any]] | None:
    """kind → CRD, from the Go module cache (downloaded once when Go is there); else None."""
    cache_root = Path(os.environ.get("JOBFLEET_CACHE", Path.home() / ".cache" / "jobfleet"))
    moddir = (
        cache_root / "go" / "pkg" / "mod" / f"{PROMETHEUS_OPERATOR}@{PROMETHEUS_OPERATOR_VERSION}"
    )
    if not moddir.is_dir():
        goenv = REPO / "e2e" / "tools" / "goenv.sh"
        script = (
            f"source {goenv} && command -v go >/dev/null && "
            f"go mod download -json {PROMETHEUS_OPERATOR}@{PROMETHEUS_OPERATOR_VERSION}"
        )
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return None
        moddir = Path(json.loads(done.stdout)["Dir"])
    crds = {}
    for path in (moddir / "example" / "prometheus-operator-crd").glob("*.yaml"):
        crd = yaml.load(path.read_text(), Loader=_Loader)
        crds[crd["spec"]["names"]["kind"]] = crd
    return crds
