"""Pure parts of the worker's signals: the error-type cap, the status document, and jobfleet
running without opentelemetry."""

from __future__ import annotations

import json
import subprocess
import sys

from jobfleet import metrics, status


def test_error_types_past_the_cap_become_other() -> None:
    labels = metrics.ErrorTypeLabels(cap=3)
    assert [labels.label(t) for t in ("A", "B", "A", "C", "D", "E", "B")] == [
        "A", "B", "A", "C", metrics.OTHER_ERROR_TYPE, metrics.OTHER_ERROR_TYPE, "B"
    ]  # fmt: skip
    assert metrics.ErrorTypeLabels().cap == metrics.MAX_ERROR_TYPES


def test_depth_gauges_take_the_inspect_reply() -> None:
    raw = {"waiting": "4", "delayed": "2", "active": "1", "dead": "9", "held": "3"}
    raw |= {"oldest_ms:0": "0", "oldest_ms:2": "1500"}
    metrics.report_depth("unit-depth", raw)
    got = {s: metrics.QUEUE_JOBS.labels("unit-depth", s)._value.get() for s in metrics.DEPTH_STATES}
    assert got == {"waiting": 4, "delayed": 2, "held": 3, "active": 1, "dead": 9}
    assert metrics.QUEUE_OLDEST_WAIT.labels("unit-depth")._value.get() == 1.5


def test_group_series_are_the_top_groups_and_other() -> None:
    from prometheus_client import REGISTRY

    def series() -> dict[str, float]:
        out = {}
        for metric in REGISTRY.collect():
            for s in metric.samples:
                if s.name == "jobfleet_group_jobs" and s.labels["queue"] == "unit-groups":
                    out[s.labels["group"]] = s.value
        return out

    base = {"waiting": "0", "groups": "5", "groups_held": "1", "group_jobs": "100"}
    metrics.report_depth("unit-groups", base | {"group:a": "60", "group:b": "30"})
    assert series() == {"a": 60, "b": 30, metrics.OTHER_GROUP: 10}
    # b left the top: its series goes, so a queue never has more than the top + '~other'.
    metrics.report_depth("unit-groups", base | {"group:a": "60", "group:c": "20"})
    assert series() == {"a": 60, "c": 20, metrics.OTHER_GROUP: 20}
    held = metrics.QUEUE_GROUPS.labels("unit-groups", "held")._value.get()
    assert held == 1


def test_a_tenant_named_other_keeps_its_own_series() -> None:
    """The aggregate's label is no possible group name, so a group called 'other' is neither
    merged into it nor dropped."""
    from jobfleet.settings import GROUP_NAME
    from prometheus_client import REGISTRY

    assert GROUP_NAME.match("other") and not GROUP_NAME.match(metrics.OTHER_GROUP)
    base = {"waiting": "0", "groups": "3", "groups_held": "0", "group_jobs": "50"}
    metrics.report_depth("unit-other", base | {"group:other": "30", "group:a": "15"})
    got = {
        s.labels["group"]: s.value
        for metric in REGISTRY.collect()
        for s in metric.samples
        if s.name == "jobfleet_group_jobs" and s.labels["queue"] == "unit-other"
    }
    assert got == {"other": 30, "a": 15, metrics.OTHER_GROUP: 5}


def test_redis_state_keeps_the_time_of_the_last_change() -> None:
    state = status.RedisState()
    state.set(True, 10.0)
    state.set(True, 20.0)
    assert (state.ok, state.since) == (True, 10.0)
    state.set(False, 30.0)
    state.set(False, 40.0)
    assert (state.ok, state.since) == (False, 30.0)


def test_status_document_is_json() -> None:
    doc = status.document(
        queue="q",
        worker_id="w",
        in_flight=2,
        concurrency=5,
        last_claim=None,
        redis=status.RedisState(),
        draining=True,
        stopping=False,
    )
    assert json.loads(json.dumps(doc))["redis"] == {"state": "down", "since": None}
    assert doc["draining"] is True and doc["jobs_in_flight"] == 2


def test_pod_status_sums_the_children_that_report() -> None:
    def child(in_flight: int) -> dict:
        return status.document(
            queue="q",
            worker_id=f"pod:{in_flight}:x",
            in_flight=in_flight,
            concurrency=5,
            last_claim=None,
            redis=status.RedisState(),
            draining=False,
            stopping=False,
        )

    children = [
        {"index": 0, "pid": 10, "state": "running", "status": child(2)},
        {"index": 1, "pid": 11, "state": "running", "status": child(3)},
        {"index": 2, "pid": None, "state": "restarting", "status": None},
    ]
    doc = status.pod_document(processes=3, stopping=False, children=children)
    assert (doc["jobs_in_flight"], doc["concurrency"], doc["processes"]) == (5, 10, 3)
    assert doc["draining"] is False
    assert json.loads(json.dumps(doc))["children"][2]["state"] == "restarting"


BLOCK_OTEL = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(name)
sys.meta_path.insert(0, Block())
import jobfleet
from jobfleet import tracing
from jobfleet.engine import EncodedJob
from jobfleet.worker import Worker
assert not tracing.AVAILABLE
assert tracing.Consumer.build("q", "w") is None
job = EncodedJob(id="1", name="n", payload="null", priority=2)
with tracing.publish("q", [job]):
    pass
assert job.trace == "" and tracing.producer_link("00-ab-cd-01") == []
print("ok")
"""


def test_jobfleet_imports_and_traces_nothing_without_opentelemetry() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_OTEL], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
