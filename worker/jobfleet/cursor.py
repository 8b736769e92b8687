"""The opaque cursor of `Client.jobs`: where a walk through one state of one queue stands.

A cursor is the position (score, id) of the last job the previous page looked at, and the
walk's mark (the sequence number or time it began at, see lua/jobs.lua), as URL-safe
base64 of a small JSON object. It names its queue and state, so that a cursor is never
applied to another walk.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from .errors import ConfigError
from .settings import GROUP_NAME

VERSION = 1
MAX_CURSOR = 2048  # characters: far more than any position needs (ids are at most 200)
BAD = "cursor: not a cursor of Client.jobs; pass the previous page's next_cursor unchanged"


@dataclass(frozen=True, slots=True)
class Cursor:
    queue: str
    state: str
    score: str = ""  # '' = from the start of the walk; 'G<group>|<score>' inside a job group
    id: str = ""
    mark: str = ""  # '' = a new walk

    def encode(self) -> str:
        raw = json.dumps(
            {
                "v": VERSION,
                "q": self.queue,
                "s": self.state,
                "p": self.score,
                "i": self.id,
                "m": self.mark,
            },
            separators=(",", ":"),
        ).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, *, queue: str, state: str) -> Cursor:
        """The cursor `text` names, checked to belong to the walk of `state` in `queue`."""
        if not isinstance(text, str) or not text or len(text) > MAX_CURSOR:
            raise ConfigError(BAD)
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            data = json.loads(raw)
        except (binascii.Error, ValueError):
            raise ConfigError(BAD) from None
        fields = ("q", "s", "p", "i", "m")
        if (
            not isinstance(data, dict)
            or data.get("v") != VERSION
            or not all(isinstance(data.get(f), str) for f in fields)
            or (data["p"] and not _position(data["p"]))
            or (data["m"] and not data["m"].isdigit())
        ):
            raise ConfigError(BAD)
        if data["q"] != queue or data["s"] != state:
            raise ConfigError(
                f"cursor: it continues a walk of the {data['s']!r} jobs of queue "
                f"{data['q']!r}, not of the {state!r} jobs of queue {queue!r}"
            )
        return cls(queue, state, data["p"], data["i"], data["m"])


def _position(score: str) -> bool:
    """A score as lua/jobs.lua gives it: digits, or 'G<group>|<digits>' inside a job group."""
    if score.startswith("G"):
        group, sep, score = score[1:].rpartition("|")
        if not sep or not GROUP_NAME.match(group):
            return False
    return score.lstrip("-").isdigit()
