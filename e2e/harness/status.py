"""Pod status as a kubelet reports it, rendered from the harness's view of its containers."""

from __future__ import annotations

import datetime as dt
from typing import Any

Obj = dict[str, Any]

# Conditions the harness owns; others (PodScheduled, readiness gates, DisruptionTarget) are kept.
OWN_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")


def rfc3339(ts: float) -> str:
    """Kubernetes timestamp (second precision, UTC)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Conditions:
    """Keeps lastTransitionTime stable: it moves only when a condition's status flips."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, str]] = {}

    def render(self, values: dict[str, bool], now: float, reasons: dict[str, str]) -> list[Obj]:
        """The owned conditions in a fixed order."""
        out = []
        for ctype in OWN_CONDITIONS:
            status = "True" if values[ctype] else "False"
            prev = self._seen.get(ctype)
            if prev is None or prev[0] != status:
                self._seen[ctype] = (status, rfc3339(now))
            cond: Obj = {
                "type": ctype,
                "status": status,
                "lastProbeTime": None,
                "lastTransitionTime": self._seen[ctype][1],
            }
            if not values[ctype] and ctype in reasons:
                cond["reason"] = reasons[ctype]
            out.append(cond)
        return out


def merge_conditions(own: list[Obj], current: list[Obj] | None) -> list[Obj]:
    """Our conditions plus every foreign one already on the pod, in a stable order."""
    foreign = [c for c in current or [] if c.get("type") not in OWN_CONDITIONS]
    return foreign + own
