"""The Lua scripts of the engine, read from their files once and shared by every connection."""

from __future__ import annotations

import functools
from importlib import resources

NAMES = (
    "enqueue",
    "claim",
    "extend",
    "release",
    "progress",
    "overdue",
    "inspect",
    "dead",
    "workers",
    "pause",
    "drain",
    "jobs",
    "remove",
    "retry",
    "cancel",
    "clear",
    "obliterate",
)
# Libraries a script needs besides lib.lua, in load order.
NEEDS = {
    "claim": ("flow",),
    **{verb: ("admin",) for verb in ("dead", "jobs", "remove", "retry", "cancel", "clear")},
}


@functools.cache
def source(name: str) -> str:
    """The full text of a script: the shared helpers followed by the script itself."""
    if name not in NAMES:
        raise KeyError(f"no Lua script named {name!r}")
    lua = resources.files("jobfleet") / "lua"
    parts = ["lib", *NEEDS.get(name, ()), name]
    return "\n".join((lua / f"{part}.lua").read_text() for part in parts)
