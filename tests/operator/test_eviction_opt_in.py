"""The Queue's redis.allowVolatileEviction reaches the workers' settings (off by default)."""

from __future__ import annotations

import json
from typing import Any

import yaml
from jobfleet_operator import crd
from jobfleet_operator.deployment import QueueRef, settings_json
from jobfleet_operator.spec import QueueSpec

Q = QueueRef(name="emails", namespace="shop", uid="u-1")


def spec(**redis: Any) -> QueueSpec:
    return QueueSpec.model_validate(
        {
            "redis": {"url": "redis://redis.shop:6379/0", **redis},
            "worker": {"image": "jobs:1", "handlers": ["acme.jobs"]},
        }
    )


def test_off_unless_the_queue_says_so() -> None:
    assert json.loads(settings_json(Q, spec()))["allow_volatile_eviction"] is False
    on = json.loads(settings_json(Q, spec(allowVolatileEviction=True)))
    assert on["allow_volatile_eviction"] is True


def test_the_crd_has_the_field() -> None:
    # The checked-in copy, which `make crds` regenerates (test_crd checks it is up to date).
    body = yaml.safe_load(crd.DEFAULT_PATH.read_text())
    version = body["spec"]["versions"][0]
    redis = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["redis"]
    field = redis["properties"]["allowVolatileEviction"]
    assert field["type"] == "boolean" and "dedup keys" in field["description"]
