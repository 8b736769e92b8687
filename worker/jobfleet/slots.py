"""A worker's job slots, shared by its main loop (which runs jobs) and its waker (which waits)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .engine import ClaimedJob
from .waits import wait_event


@dataclass(slots=True)
class Running:
    """A job that holds a slot (and a lease this worker renews)."""

    job: ClaimedJob
    task: asyncio.Task[None] | None  # None while the job waits for its batch to fill
    lost: bool = False  # its outcome is no longer ours to report (lease lost, or cancelled)
    cancelled: bool = False  # cancelled while running (Client.cancel): it ends "cancelled"


class Slots:
    """`concurrency` slots: running jobs, slots lent to the waker, and the wake-ups between.

    Only the main loop lends slots (`reserve_for_waker`) and only the waker gives them back
    (`return_reserved`), so a slot is never counted twice nor claimed for twice at once.
    """

    def __init__(self, concurrency: int, per_claim: int, most: int | None = None) -> None:
        self.concurrency = concurrency
        self.per_claim = per_claim  # the most one claim asks for while no job runs
        self.most = per_claim if most is None else most  # ... and while some job runs
        self.running: dict[str, Running] = {}
        self.reserved = 0  # free slots the waker's pending claim may fill
        self.stopping = False  # a stop began: nothing more is lent, the waker ends
        self._line_empty = False  # the waker's last claim found no more ready jobs
        self._changed = asyncio.Event()  # for the main loop: a slot freed or came back
        self._lent = asyncio.Event()  # for the waker: slots were lent, or a stop began

    @property
    def free(self) -> int:
        return self.concurrency - len(self.running) - self.reserved

    # -- the main loop --------------------------------------------------------------------

    def to_claim(self, *, has_acks: bool) -> int:
        """How many jobs the main loop's claim asks for now (0: claim only to send acks)."""
        # While jobs run, they keep the handlers busy as this claim travels: ask for every
        # free slot (up to `most`), one claim where half-sized ones took two. With none
        # running, `per_claim` (half), so the next claim travels while those run.
        cap = self.most if self.running else self.per_claim
        want = 0 if self.stopping else min(self.free, cap)
        if self._line_empty:  # the waker just found it so: no need to look again yet
            self._line_empty = False
            return 0
        if self.reserved and not has_acks:
            return 0  # the waker is watching for new work; acks are a reason to call
        return want

    def reserve_for_waker(self) -> None:
        """Lend the free slots (up to one claim's worth) to the waker, unless it has some."""
        free = self.free
        if not self.stopping and self.reserved == 0 and free > 0:
            self.reserved = min(free, self.per_claim)
            self._lent.set()

    def occupy(self, running: Running) -> None:
        self.running[running.job.id] = running

    def free_slot(self, job_id: str) -> None:
        """A job ended: its slot is free, and the main loop may claim for it."""
        self.running.pop(job_id, None)
        self._changed.set()

    def forget(self, job_id: str) -> None:
        """A job that never started leaves its slot without waking the main loop (on a stop,
        which wakes it anyway, or a lost lease, whose slot the next turn sees)."""
        self.running.pop(job_id, None)

    async def wait(self, timeout: float) -> None:
        """Sleep until a job ends, the waker returns, or a stop begins (or `timeout`)."""
        await wait_event(self._changed, timeout)
        self._changed.clear()

    def stop(self) -> None:
        """A stop began: wake both sides; the waker hands back what it holds and ends."""
        self.stopping = True
        self._changed.set()
        self._lent.set()

    # -- the waker ------------------------------------------------------------------------

    async def lent_to_waker(self) -> int:
        """Wait until the main loop lends slots; how many (0: a stop began, end the waker)."""
        while True:
            await self._lent.wait()
            self._lent.clear()
            if self.stopping or self.reserved == 0:
                self.return_reserved()
                if self.stopping:
                    return 0
                continue
            return self.reserved

    def return_reserved(self) -> None:
        """The waker's claim is back (or failed): the slots are the main loop's again."""
        self.reserved = 0
        self._changed.set()

    def waker_claimed(self, took: int, asked: int) -> None:
        """The waker's claim took `took` of `asked`: fewer means the line is empty, so the
        main loop's next turn need not look again."""
        self._line_empty = took < asked
