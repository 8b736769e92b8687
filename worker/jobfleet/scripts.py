"""The Lua scripts of the engine, read from their files once and shared by every connection."""

from __future__ import annotations

import functools
from importlib import resources

NAMES = ("enqueue", "claim", "extend", "release", "progress", "inspect", "dead")


@functools.cache
def source(name: str) -> str:
    """The full text of a script: the shared helpers followed by the script itself."""
    if name not in NAMES:
        raise KeyError(f"no Lua script named {name!r}")
    lua = resources.files("jobfleet") / "lua"
    return (lua / "lib.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()
