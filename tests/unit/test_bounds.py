"""Every float of the worker's settings is bounded: inf and nan are refused, with the range."""

import json

import pytest
from jobfleet import Backoff, ConfigError, load_settings
from pydantic import ValidationError

INF, NAN = float("inf"), float("nan")


def nested(path: str, value: object) -> dict[str, object]:
    out: dict[str, object] = {}
    node = out
    *parents, leaf = path.split(".")
    for name in parents:
        node[name] = node = {}  # type: ignore[assignment]
    node[leaf] = value
    return out


# Every float field of WorkerSettings and the models inside it (rate_limit needs its `max`).
FLOAT_FIELDS = [
    ("grace_period", {}),
    ("shutdown_margin", {}),
    ("queue.job_timeout", {}),
    ("queue.lease", {}),
    ("queue.backoff.base", {}),
    ("queue.backoff.cap", {}),
    ("queue.retention.completed_age", {}),
    ("queue.retention.dead_age", {}),
    ("queue.rate_limit.period", {"max": 5}),
    ("queue.circuit_breaker.failure_ratio", {}),
    ("queue.circuit_breaker.window", {}),
    ("queue.circuit_breaker.reset_timeout", {}),
]


@pytest.mark.parametrize("value", [INF, -INF, NAN, -1.0, 1e300], ids=repr)
@pytest.mark.parametrize(("path", "siblings"), FLOAT_FIELDS)
def test_float_settings_are_finite_and_in_range(path, siblings, value):
    data = nested(path, value)
    if siblings:
        parent = path.rsplit(".", 1)[0]
        node = data
        for name in parent.split("."):
            node = node[name]  # type: ignore[assignment]
        node.update(siblings)  # type: ignore[attr-defined]
    inline = json.dumps(data)  # Python's json writes Infinity / NaN, and reads them back
    with pytest.raises(ConfigError, match=rf"{path}: must be a finite number (from|above) ") as e:
        load_settings(env={"JOBFLEET_SETTINGS": inline})
    assert e.value.__context__ is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOBFLEET_GRACE_PERIOD": "inf"}, "grace_period: must be a finite number from 0 to"),
        ({"JOBFLEET_LEASE": "nan"}, "queue.lease: must be a finite number from 0.2 to 3600"),
        ({"JOBFLEET_BATCH_SIZE": "5000"}, "batch_size: must be a whole number from 1 to 1000"),
        ({"JOBFLEET_HTTP_PORT": "70000"}, "http_port: must be a whole number from 0 to 65535"),
    ],
)
def test_environment_numbers(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env=env)


@pytest.mark.parametrize("field", ["base", "cap"])
@pytest.mark.parametrize("value", [INF, NAN, -1.0])
def test_backoff(field, value):
    with pytest.raises(ValidationError, match="must be a finite number from 0 to"):
        Backoff(**{field: value})


@pytest.mark.parametrize("value", [INF, NAN, -1.0, 1e300])
def test_retry_later_delay(value):
    # Raised from a handler, it becomes that attempt's error instead of crashing the worker.
    from jobfleet import RetryLater

    with pytest.raises(ConfigError, match="delay: must be a finite number from 0 to"):
        RetryLater("later", delay=value)
    assert RetryLater("later", delay=2.5).delay == 2.5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": INF}, "timeout: must be a finite number above 0"),
        ({"timeout": NAN}, "timeout: must be a finite number above 0"),
        ({"max_wait": NAN}, "max_wait: must be a finite number above 0 and at most 86400"),
        ({"batch_size": 10**9}, "batch_size: must be a whole number from 1 to 10000"),
    ],
)
def test_handler_options(options, message):
    import jobfleet

    with pytest.raises(ConfigError, match=f"handler 'bounded': {message}"):
        jobfleet.handler("bounded", **options)
