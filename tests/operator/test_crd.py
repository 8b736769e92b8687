"""The generated CRD: up to date with the model, structural, with readable validation rules."""

from __future__ import annotations

from typing import Any

import yaml
from jobfleet_operator import crd


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for name, sub in node.get("properties", {}).items():
            out += walk(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            out += walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            out += walk(node["additionalProperties"], f"{path}{{}}")
    return out


def schema() -> dict[str, Any]:
    body = crd.build()
    result: dict[str, Any] = body["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return result


def test_checked_in_crd_is_up_to_date() -> None:
    assert crd.DEFAULT_PATH.read_text() == crd.render(), (
        "crds/ is stale: run `python -m jobfleet_operator.crd`"
    )
    assert crd.main(["--check"]) == 0


def test_crd_identity() -> None:
    body = yaml.safe_load(crd.render())
    assert body["metadata"]["name"] == "queues.jobfleet.dev"
    names = body["spec"]["names"]
    assert (names["kind"], names["shortNames"], names["categories"]) == (
        "Queue",
        ["jfq"],
        ["jobfleet"],
    )
    version = body["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["storage"] and version["served"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Ready", "Replicas", "Desired", "Backlog", "Draining", "Oldest Wait", "Age"]


def test_schema_is_structural() -> None:
    forbidden = {"$ref", "anyOf", "oneOf", "allOf", "not", "title", "$defs", "const"}
    for path, node in walk(schema()):
        assert not forbidden & node.keys(), f"{path}: {forbidden & node.keys()}"
        typed = (
            "type" in node
            or node.get("x-kubernetes-int-or-string")
            or node.get("x-kubernetes-preserve-unknown-fields")
        )
        assert typed, f"{path} has no type"
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            if key in node:
                assert isinstance(node[key], bool), path
        if "default" in node:
            assert node["default"] is not None, path
        if node.get("x-kubernetes-list-type") == "map":
            keys = node["x-kubernetes-list-map-keys"]
            assert set(keys) <= set(node["items"].get("required", [])), path


def test_every_rule_has_a_message() -> None:
    rules = [r for _, node in walk(schema()) for r in node.get("x-kubernetes-validations", [])]
    assert len(rules) >= 8
    for rule in rules:
        assert rule["message"] and not rule["message"].endswith(".")


def test_bounds_and_enums() -> None:
    spec = schema()["properties"]["spec"]["properties"]
    auto = spec["autoscaling"]["properties"]
    assert auto["minReplicas"]["minimum"] == 0
    assert auto["maxReplicas"]["minimum"] == 1
    assert auto["pollIntervalSeconds"]["default"] == 2.0
    assert spec["concurrency"]["minimum"] == 1
    assert spec["worker"]["properties"]["mode"]["enum"] == ["inProcess", "sidecar"]
    assert spec["isolation"]["enum"] == ["thread", "process"]
    sla = spec["sla"]["properties"]["targetWaitSeconds"]
    assert (sla["minimum"], sla["exclusiveMinimum"]) == (0, True)
    assert (
        "minReplicas <= self.maxReplicas"
        in spec["autoscaling"]["x-kubernetes-validations"][0]["rule"]
    )
    # sub-objects with defaults are materialised by the API server
    assert spec["autoscaling"]["default"]["minReplicas"] == 1
    assert "default" not in spec["sla"]


def test_cron_rule_escapes_backslashes_for_cel() -> None:
    cron = schema()["properties"]["spec"]["properties"]["schedules"]["items"]["properties"]["cron"]
    rule = cron["x-kubernetes-validations"][0]["rule"]
    assert "\\\\s" in rule and "\\s" not in rule.replace("\\\\s", "")


def test_every_spec_field_is_documented_for_kubectl_explain() -> None:
    spec = schema()["properties"]["spec"]
    missing = [
        path for path, node in walk(spec, "spec") if path != "spec" and "description" not in node
    ]
    # list items and map values are described by their list / map
    missing = [p for p in missing if not p.endswith(("[]", "{}"))]
    assert not missing, missing


def test_partitions_are_bounded_and_fixed_at_creation() -> None:
    spec = schema()["properties"]["spec"]["properties"]
    field = spec["partitions"]
    assert (field["type"], field["minimum"], field["maximum"], field["default"]) == (
        "integer",
        1,
        256,
        1,
    )
    # A transition rule: the API server checks it on updates only (oldSelf), so a new Queue
    # takes any K and an existing one keeps its own; the message points at the migration.
    [rule] = field["x-kubernetes-validations"]
    assert rule["rule"] == "self == oldSelf"
    assert "spec.partitions cannot change" in rule["message"]
    assert "docs/partitions.md" in rule["message"]
    assert "docs/partitions.md" in field["description"]
    column = next(c for c in crd.PRINTER_COLUMNS if c["name"] == "Partitions")
    assert column["jsonPath"] == ".spec.partitions" and column["priority"] == 1


def test_a_queue_wide_rate_limit_covers_every_partition() -> None:
    rules = schema()["properties"]["spec"]["x-kubernetes-validations"]
    [rule] = [r for r in rules if "partitions" in r["rule"]]
    assert rule["rule"] == "!has(self.rateLimit) || self.rateLimit.max >= self.partitions"


def test_event_loop_is_an_enum_defaulting_to_asyncio() -> None:
    field = schema()["properties"]["spec"]["properties"]["worker"]["properties"]["eventLoop"]
    assert field["type"] == "string"
    assert field["enum"] == ["asyncio", "uvloop"]
    assert field["default"] == "asyncio"
    assert "uvloop" in field["description"]
