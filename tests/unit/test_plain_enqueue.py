"""The one-job path of `Client.enqueue` without options: what it checks by hand, and where it
leaves a call to the full checks (which raise the specific error)."""

from __future__ import annotations

import jobfleet
import pytest
from jobfleet import tracing
from jobfleet.engine import Engine
from jobfleet.job import Priority


@pytest.fixture
def client() -> jobfleet.Client:
    # No connection is made: redis-py connects on the first command.
    return jobfleet.Client("redis://127.0.0.1:1/0")


@pytest.mark.parametrize(
    ("name", "payload", "priority"),
    [
        ("email", {"to": "ada@example.com"}, Priority.NORMAL),
        ("e" * 200, None, "critical"),
        ("ünïcode", [1, "two", 3.5], 4),
        ("x", "a" * 10_000, " High "),
    ],
)
def test_a_plain_job_is_what_the_full_path_encodes(client, name, payload, priority):
    plain = client._plain(name, payload, priority)
    full = client.encode({"name": name, "payload": payload, "priority": priority, "delay": None})
    assert plain is not None
    assert len(plain.id) == 32 and plain.id != full.id
    plain.id = full.id
    # What travels to the script is the same (the full path fills in a dedup TTL that only a
    # dedup key would use).
    assert Engine._enqueue_args([plain]) == Engine._enqueue_args([full])
    assert plain.options() == ""


@pytest.mark.parametrize(
    ("name", "priority"),
    [
        ("", Priority.NORMAL),  # too short
        ("e" * 201, Priority.NORMAL),  # too long
        ("a\nb", Priority.NORMAL),  # a control character
        ("tab\there", Priority.NORMAL),
        (b"bytes", Priority.NORMAL),  # not a str: pydantic decides
        (jobfleet.JobState.WAITING, Priority.NORMAL),  # a str subclass: pydantic decides
        (7, Priority.NORMAL),
        ("x", "urgent"),  # unknown priority
        ("x", 9),  # out of range
        ("x", True),  # a bool is not a priority
        ("x", 2.0),  # not an int
        ("x", None),
    ],
)
def test_doubtful_input_goes_the_full_way(client, name, priority):
    assert client._plain(name, {}, priority) is None


def test_a_bad_payload_is_refused_on_the_plain_path_as_on_the_full_one(client):
    for payload in (float("nan"), {1, 2}, object()):
        with pytest.raises(jobfleet.PayloadError, match="payload of job 'x' is not JSON") as plain:
            client._plain("x", payload, Priority.NORMAL)
        with pytest.raises(jobfleet.PayloadError) as full:
            client.encode({"name": "x", "payload": payload, "delay": None})
        assert str(plain.value) == str(full.value)
    small = jobfleet.Client("redis://127.0.0.1:1/0", max_payload_bytes=1000)
    with pytest.raises(jobfleet.PayloadError, match="1002 bytes, over the limit of 1000 bytes"):
        small._plain("x", "a" * 1000, Priority.NORMAL)


def test_a_spec_with_an_option_given_keeps_it(client):
    # encode's own plain branch takes a JobSpec only when no option was given, even as None.
    assert client.encode(jobfleet.JobSpec(name="x", job_id="chosen")).chosen_id == "1"
    assert client.encode(jobfleet.JobSpec(name="x", delay=5)).delay_ms == 5000
    assert client.encode(jobfleet.JobSpec(name="x", priority="low")).priority == Priority.LOW


def test_untraced_publish_is_a_shared_no_op(monkeypatch):
    # No tracer provider in this process (another test in the same run may have set one:
    # OpenTelemetry's global provider cannot be unset).
    monkeypatch.setattr(tracing, "_trace", lambda: None)
    job = jobfleet.Client("redis://127.0.0.1:1/0")._plain("x", 1, Priority.NORMAL)
    assert job is not None
    first, second = tracing.publish("q", [job]), tracing.publish("q", [job])
    assert first is second
    with first:
        pass
    assert job.trace == ""
