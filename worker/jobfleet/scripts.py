"""The Lua scripts of the engine, read from their files once and shared by every connection."""

from __future__ import annotations

import functools
import re
from importlib import resources

NAMES = (
    "enqueue",
    "enqueue_grouped",
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
    "group",
)
# Libraries a script needs besides lib.lua, in load order.
NEEDS = {
    "claim": ("flow",),
    "enqueue": ("enqueue_plain",),
    "enqueue_grouped": ("enqueue_groups",),
    **{verb: ("admin",) for verb in ("dead", "jobs", "remove", "retry", "cancel", "clear")},
}

# Scripts built from another script's file (with libraries of their own, NEEDS).
BUILT_FROM = {"enqueue_grouped": "enqueue"}

LIBRARIES = ("lib", "flow", "admin", "enqueue_plain", "enqueue_groups")

_FUNCTION = re.compile(r"local function (\w+)\(")
_NAME = re.compile(r"[A-Za-z_]\w*")
_COMMENT = re.compile(r"--.*$", re.M)


def _names(lua: str) -> set[str]:
    """The identifiers `lua` mentions outside comments (strings count: harmless)."""
    return set(_NAME.findall(_COMMENT.sub("", lua)))


@functools.cache
def source(name: str) -> str:
    """The full text of a script: the helpers it calls, then the script itself.

    A helper is defined anew on every call of a script (a closure per `local function`, and
    the garbage of it), so a script carries only the helpers it reaches: lib.lua whole costs
    a call about 14,000 instructions of Redis CPU, more than a HGET (bench/wire.py).
    """
    if name not in NAMES:
        raise KeyError(f"no Lua script named {name!r}")
    main = _read(BUILT_FROM.get(name, name))
    pieces = [p for lib in ("lib", *NEEDS.get(name, ())) for p in _pieces(_read(lib))]
    needed = _names(main)
    for helper, text in pieces:
        if helper is None:
            needed |= _names(text)
    # A helper can call only helpers defined above it, so one pass from the end is enough.
    keep = set()
    for helper, text in reversed(pieces):
        if helper is not None and helper in needed:
            keep.add(helper)
            needed |= _names(text)
    kept = [text for helper, text in pieces if helper is None or helper in keep]
    return "\n".join([*kept, main])


def _read(part: str) -> str:
    return (resources.files("jobfleet") / "lua" / f"{part}.lua").read_text()


def _pieces(library: str) -> list[tuple[str | None, str]]:
    """A library as pieces: (helper name, its text from the comment above it to its closing
    `end` at the start of a line) or (None, text outside any helper)."""
    pieces: list[tuple[str | None, str]] = []
    lines: list[str] = []  # the current piece; comments wait here for what follows them
    helper: str | None = None
    for line in library.splitlines():
        match = _FUNCTION.match(line)
        if match and helper is None:
            comments = 0
            while comments < len(lines) and lines[len(lines) - 1 - comments].startswith("--"):
                comments += 1
            outside = lines[: len(lines) - comments]
            if outside:
                pieces.append((None, "\n".join(outside)))
            lines, helper = lines[len(lines) - comments :], match.group(1)
        lines.append(line)
        if helper is not None and line == "end":
            pieces.append((helper, "\n".join(lines)))
            lines, helper = [], None
    if helper is not None:
        raise ValueError(f"helper {helper!r} has no closing 'end' at the start of a line")
    if lines:
        pieces.append((None, "\n".join(lines)))
    return pieces
