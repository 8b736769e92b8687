"""What the operator's Redis reader makes of a Queue's URL before it connects: a raw '/', '?' or
'#' in a password is refused, and no trace of the password reaches an error, a status or an
Event. (The reader against a real redis-server: tests/integration/test_operator_reader.py.)"""

from __future__ import annotations

import jobfleet
import pytest
from jobfleet_operator.scaler import JobfleetReader
from leaks import chain_text, leaked

# Characters that end the host part of a URL when raw: such URLs are refused.
ENDS_HOST = ["/", "?", "#"]


def special_password(char: str) -> str:
    return f"Hx7mQ2vL{char}pwRt5"


@pytest.mark.parametrize("char", ENDS_HOST)
def test_raw_special_password_is_refused_without_a_trace_of_it(char: str) -> None:
    password = special_password(char)
    with pytest.raises(jobfleet.ConfigError, match="percent-encode the password") as err:
        JobfleetReader(f"redis://app:{password}@127.0.0.1:6379/0", None, None, "mail", 2.0)
    assert not leaked(chain_text(err.value), password), chain_text(err.value)


@pytest.mark.parametrize("char", ENDS_HOST)
async def test_raw_special_password_in_status_and_events(char: str) -> None:
    import json

    from jobfleet_operator.metrics import Metrics
    from jobfleet_operator.scaler import Scaler
    from jobfleet_operator.spec import QueueSpec
    from test_scaler import SPEC, Clock, FakeKube, body

    password = special_password(char)
    spec = {**SPEC, "redis": {"urlSecretRef": {"name": "redis-url", "key": "url"}}}
    kube = FakeKube()
    kube.secrets[("shop", "redis-url", "url")] = f"redis://app:{password}@127.0.0.1:6379/0"
    scaler = Scaler(
        kube,  # type: ignore[arg-type]
        Metrics(),
        body(spec),
        QueueSpec.model_validate(spec),
        identity="op-0",
        clock=Clock(),
    )
    await scaler.tick()
    written = json.dumps([kube.status_writes, kube.events])
    assert "percent-encode the password" in written
    assert not leaked(written, password), written
