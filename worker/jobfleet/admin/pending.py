"""What h12-verbs adds to the library, as the issue's contract states it, until it lands.

Once they are on main: `ListState`, `ClearableState` and `CronInfo` come from jobfleet.stats
(its ListState adds "cancelled"); routes.py calls `call.client.jobs(...)` and the others
directly instead of `verb(...)`, `queue_stats` becomes `client.queues()`, the offset-cursor
branch of `dead_letters` goes (always `Client.jobs("dead")`), the `needs=` marks and the 501
go, and this module with them. Until then a route whose verb is missing answers 501.
"""

from __future__ import annotations

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
    # One at a time: a gather would open a pooled connection per queue.
    return [await client.inspect(queue=name) for name in await client.queues()]
