"""The example Queues are valid for the operator's model and the CRD the API server enforces,
and every job name the demo enqueues has a handler."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import REPO

spec = pytest.importorskip("jobfleet_operator.spec", reason="the operator extra is not installed")
from chart_schemas import validate_custom  # noqa: E402

QUEUES = sorted((REPO / "examples" / "queues").glob("*.yaml"))
CRD = yaml.safe_load((REPO / "crds" / "jobfleet.dev_queues.yaml").read_text())


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def test_the_three_tiers_are_there() -> None:
    names = {_load(p)["metadata"]["name"] for p in QUEUES}
    assert {"payments", "emails", "reports"} <= names


@pytest.mark.parametrize("path", QUEUES, ids=[p.stem for p in QUEUES])
def test_example_queue_is_valid(path: Path) -> None:
    doc = _load(path)
    assert doc["apiVersion"] == f"{spec.GROUP}/{spec.VERSION}" and doc["kind"] == spec.KIND
    assert len(doc["metadata"]["name"]) <= spec.MAX_NAME
    spec.QueueSpec.model_validate(doc["spec"])  # the operator's own checks (cron, URLs, ...)
    validate_custom(doc, CRD)  # the API server's schema (types, bounds, enums)


def test_tiers_say_what_their_comments_promise() -> None:
    queues = {
        _load(p)["metadata"]["name"]: spec.QueueSpec.model_validate(_load(p)["spec"])
        for p in QUEUES
    }
    assert queues["payments"].sla is not None and queues["payments"].sla.target_wait_seconds == 1
    assert queues["payments"].autoscaling.min_replicas >= 1
    assert queues["emails"].rate_limit is not None
    assert queues["reports"].autoscaling.min_replicas == 0 and queues["reports"].sla is None


def test_every_handler_the_examples_use_is_registered() -> None:
    # In a fresh interpreter, as the worker loads it (PYTHONPATH=<checkout>): importing it here
    # would register its handlers in this test session's default registry.
    probe = (
        "import json, jobfleet, examples.handlers; "
        "print(json.dumps(jobfleet.registry.default_registry.names()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    names = set(json.loads(done.stdout))
    assert {"charge-card", "send-email", "build-report"} <= names
    for path in QUEUES:
        for schedule in _load(path)["spec"].get("schedules", []):
            assert schedule["job"] in names


def test_the_demo_applies_valid_queues(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's shortened windows and caps keep every Queue valid."""
    monkeypatch.syspath_prepend(str(REPO))
    demo = importlib.import_module("examples.demo")
    queues = demo.demo_manifests()
    assert [q["metadata"]["name"] for q in queues] == ["payments", "emails", "reports"]
    for q in queues:
        parsed = spec.QueueSpec.model_validate(q["spec"])
        validate_custom(q, CRD)
        assert parsed.autoscaling.max_replicas <= demo.DEMO_MAX_REPLICAS


def shell_scripts() -> list[Path]:
    """Every shell script git tracks: the `*.sh` files and the CI entry point."""
    listed = subprocess.run(
        ["git", "ls-files", "*.sh", ".ci/run"], cwd=REPO, capture_output=True, text=True, check=True
    )
    return [REPO / line for line in listed.stdout.split()]


def test_the_set_up_and_demo_scripts_are_among_the_checked_ones() -> None:
    names = {p.relative_to(REPO).as_posix() for p in shell_scripts()}
    assert {"examples/demo.sh", "scripts/bootstrap.sh", ".ci/run", "e2e/tools/build.sh"} <= names


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shell_scripts_pass_shellcheck() -> None:
    # -x -P SCRIPTDIR: follow `source` of files beside each script, as bash would.
    cmd = ["shellcheck", "-x", "-P", "SCRIPTDIR", *map(str, shell_scripts())]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
