"""The opaque cursor of Client.jobs, and the checks made before anything is sent."""

import asyncio
import base64
import json

import jobfleet
import pytest
from jobfleet.cursor import Cursor


def test_round_trip():
    c = Cursor("emails", "waiting", "562949953421313", "id-\x1f-é", "42")
    text = c.encode()
    assert "=" not in text and "/" not in text and "+" not in text
    assert Cursor.decode(text, queue="emails", state="waiting") == c


def test_another_walk_is_refused():
    text = Cursor("emails", "waiting", "1", "a", "2").encode()
    with pytest.raises(jobfleet.ConfigError, match="'waiting' jobs of queue 'emails'"):
        Cursor.decode(text, queue="emails", state="delayed")
    with pytest.raises(jobfleet.ConfigError, match="not of the 'waiting' jobs of queue 'other'"):
        Cursor.decode(text, queue="other", state="waiting")


def forged(**fields: object) -> str:
    data = {"v": 1, "q": "q", "s": "dead", "p": "1", "i": "a", "m": "", **fields}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "!!!",
        "x" * 5000,
        base64.urlsafe_b64encode(b"[1,2]").decode(),
        forged(v=2),
        forged(p="1.5e3"),
        forged(p="1 or 1"),
        forged(m="-3"),
        forged(i=7),
    ],
)
def test_garbage_is_a_config_error(text):
    with pytest.raises(jobfleet.ConfigError, match="previous page's next_cursor"):
        Cursor.decode(text, queue="q", state="dead")


@pytest.mark.parametrize("limit", [0, -1, 1001, 1.5, float("nan"), "many", None])
def test_limit_is_checked_before_redis(limit):
    # No server on this port: a call that reached Redis would raise a connection error.
    client = jobfleet.Client("redis://127.0.0.1:1/0", queue="q")
    with pytest.raises(jobfleet.ConfigError, match=r"^limit: "):
        asyncio.run(client.jobs("waiting", limit=limit))  # type: ignore[arg-type]


def test_state_filters_and_clear_states_are_checked_before_redis():
    client = jobfleet.Client("redis://127.0.0.1:1/0", queue="q")
    with pytest.raises(jobfleet.ConfigError, match="state: must be one of waiting, delayed"):
        asyncio.run(client.jobs("running"))  # type: ignore[arg-type]
    with pytest.raises(jobfleet.ConfigError, match="name: must be a non-empty string"):
        asyncio.run(client.jobs("waiting", name=""))
    with pytest.raises(jobfleet.ConfigError, match="can only be cancelled"):
        asyncio.run(client.clear(states=["waiting", "active"]))
    with pytest.raises(jobfleet.ConfigError, match="none"):
        asyncio.run(client.clear(states=[]))


def test_errors_carry_what_callers_need():
    err = jobfleet.JobActive("m", job_id="j1")
    assert isinstance(err, jobfleet.JobStateError) and isinstance(err, jobfleet.JobfleetError)
    assert (err.job_id, err.state) == ("j1", "active")
    busy = jobfleet.QueueBusy("m", queue="q", active=3)
    assert not isinstance(busy, jobfleet.JobStateError) and busy.active == 3
    assert jobfleet.JobState.CANCELLED.final
