"""What h12-verbs adds to the library, as the issue's contract states it, until it lands.

When `Client.jobs` and friends exist this module shrinks to re-exports (`ListState`,
`CronInfo` from jobfleet) and `have` reports True for every verb.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..client import Client
from ..stats import QueueStats

ListState = Literal["waiting", "delayed", "held", "active", "completed", "dead"]
ClearableState = Literal["waiting", "delayed", "held"]


class CronInfo(BaseModel):
    """One cron schedule of a queue and its next tick."""

    name: str
    cron: str
    timezone: str
    job: str = Field(description="The handler name each tick enqueues.")
    next_tick: float | None = None
    last_tick: float | None = None


def have(verb: str) -> bool:
    """Whether `jobfleet.Client` has the method `verb` yet."""
    return callable(getattr(Client, verb, None))


def verb(client: Client, name: str) -> Any:
    """`client.<name>`, typed loosely while the method is not on Client yet."""
    return getattr(client, name)


async def queue_stats(client: Client) -> list[QueueStats]:
    """Stats of every queue: `Client.queues()` once it returns them (it returns names now)."""
    if have("queue_names"):
        return list(await verb(client, "queues")())
    names = await client.queues()
    return list(await asyncio.gather(*(client.inspect(queue=name) for name in names)))
