"""Sliding-window counting for the rate-limit tests (queue keys and groups)."""

from __future__ import annotations


def max_in_window(starts_ms: list[int], window_ms: int) -> int:
    """The most starts inside any window (t - window, t]."""
    starts = sorted(starts_ms)
    best, lo = 0, 0
    for hi, t in enumerate(starts):
        while starts[lo] <= t - window_ms:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
