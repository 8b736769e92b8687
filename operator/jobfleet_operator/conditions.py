"""Standard status conditions: set one, keep lastTransitionTime unless the status flips."""

from __future__ import annotations

from typing import Any, Literal

READY = "Ready"
SCALING = "Scaling"
SLA_MET = "SLAMet"
REDIS_REACHABLE = "RedisReachable"
ORDER = (READY, SCALING, SLA_MET, REDIS_REACHABLE)

Status = Literal["True", "False", "Unknown"]


def condition(
    type: str, status: Status, reason: str, message: str, generation: int | None, now: str
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": type,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def merge(
    existing: list[dict[str, Any]], updates: list[dict[str, Any]], drop: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The new condition list: updates replace same-type entries, keeping their transition time
    when the status did not change, so `kubectl describe` shows how long a state has lasted."""
    by_type = {c["type"]: dict(c) for c in existing if c.get("type") not in drop}
    for new in updates:
        old = by_type.get(new["type"])
        if old is not None and old.get("status") == new["status"]:
            new = {
                **new,
                "lastTransitionTime": old.get("lastTransitionTime", new["lastTransitionTime"]),
            }
        by_type[new["type"]] = new
    rank = {t: i for i, t in enumerate(ORDER)}
    return sorted(by_type.values(), key=lambda c: (rank.get(c["type"], len(ORDER)), c["type"]))


def same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Equal apart from timestamps (what decides whether a status write is needed)."""

    def key(cs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (c["type"], c["status"], c["reason"], c.get("message"), c.get("observedGeneration"))
            for c in cs
        ]

    return key(a) == key(b)
