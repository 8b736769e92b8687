"""When the worker asks OpenTelemetry for a tracer provider (jobfleet.tracing.Consumer.active):
until one is set, every time it is asked (once per claim); once seen, never again."""

from __future__ import annotations

from typing import Any

import pytest
from jobfleet import tracing


def test_a_provider_set_later_counts_and_once_seen_is_not_asked_for_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[int] = []
    provider: list[Any] = [None]  # what OpenTelemetry would answer: None, then a trace module

    def lookup() -> Any:
        asked.append(1)
        return provider[0]

    monkeypatch.setattr(tracing, "_trace", lookup)
    consumer = tracing.Consumer("q", "w1")
    assert [consumer.active(), consumer.active()] == [False, False]
    assert len(asked) == 2  # no provider yet: asked each time, so a later one is seen
    provider[0] = object()  # the application sets its provider after the worker started
    assert consumer.active() is True
    assert len(asked) == 3
    provider[0] = None  # (OpenTelemetry never unsets it; were it asked, it would say so)
    assert [consumer.active() for _ in range(5)] == [True] * 5
    assert len(asked) == 3  # remembered: the per-claim check costs nothing from then on
