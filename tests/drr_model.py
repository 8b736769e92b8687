"""A pure model of the claim script's deficit round robin over job groups (one priority
level), step for step as lua/flow.lua `drr_take` does it, and the fairness bound it keeps.

The integration test runs the real script on hypothesis-generated plans and compares the
order of service with this model's; `check_bound` then checks the model's record.
"""

from __future__ import annotations

from collections import defaultdict

Group = str | None  # None: the default group (jobs enqueued without one)


class DrrModel:
    def __init__(self, weights: dict[str, int]) -> None:
        self.weights = weights
        self.backlog: dict[Group, int] = defaultdict(int)
        self.ring: dict[str, float] = {}  # group -> virtual time, while it has work
        self.clock = 0.0  # 'gv<band>': virtual time of the last job served
        self.default_vt = 0.0  # 'dv<band>'
        self.served: dict[Group, int] = defaultdict(int)
        # Until the first grouped job (meta 'grouped'), claim takes the default group's jobs
        # straight from the ready set: no virtual time moves.
        self.grouped = False
        # After every job served: (served so far, backlog) per group.
        self.timeline: list[tuple[dict[Group, int], dict[Group, int]]] = []

    def weight(self, g: Group) -> int:
        return 1 if g is None else self.weights.get(g, 1)

    def enqueue(self, g: Group, k: int) -> None:
        self.grouped = self.grouped or g is not None
        if g is not None and self.backlog[g] == 0:
            self.ring[g] = self.clock + 1 / self.weight(g)  # lib.lua ring_join
        self.backlog[g] += k
        self._snapshot()

    def claim(self, n: int) -> list[Group]:
        out: list[Group] = []
        for _ in range(n):
            # Ring order: virtual time, then member bytes (how a ZSET orders equal scores).
            top = min(self.ring.items(), key=lambda kv: (kv[1], kv[0].encode()), default=None)
            dv = None
            if self.backlog[None] > 0 and self.grouped:
                if self.default_vt <= self.clock:  # idle until now: it rejoins
                    self.default_vt = self.clock + 1
                dv = self.default_vt
            if top is None and self.backlog[None] == 0:
                break
            if not self.grouped:
                g: Group = None
            elif top is None or (dv is not None and dv <= top[1]):
                g = None
                assert dv is not None
                self.default_vt, self.clock = dv + 1, dv
            else:
                g, v = top
                self.clock = v
                if self.backlog[g] > 1:
                    self.ring[g] = v + 1 / self.weight(g)
                else:
                    del self.ring[g]
            self.backlog[g] -= 1
            self.served[g] += 1
            out.append(g)
            self._snapshot()
        return out

    def _snapshot(self) -> None:
        self.timeline.append((dict(self.served), dict(self.backlog)))

    def check_bound(self) -> None:
        """Over any stretch in which two groups both had work all along, their service in
        jobs per weight differs by at most one turn of each (1/w_i + 1/w_j)."""
        groups = {g for _, backlog in self.timeline for g in backlog}
        for i in groups:
            for j in groups:
                if i is None or j is None or i >= j:
                    continue
                if not (isinstance(i, str) and isinstance(j, str)):
                    continue
                self._check_pair(i, j)
        for j in groups:  # the default group against each named group
            if j is not None:
                self._check_pair(None, j)

    def _check_pair(self, i: Group, j: Group) -> None:
        bound = 1 / self.weight(i) + 1 / self.weight(j) + 1e-9
        lo = hi = None
        for served, backlog in self.timeline:
            if backlog.get(i, 0) > 0 and backlog.get(j, 0) > 0:
                d = served.get(i, 0) / self.weight(i) - served.get(j, 0) / self.weight(j)
                lo = d if lo is None else min(lo, d)
                hi = d if hi is None else max(hi, d)
                assert hi - lo <= bound, (i, j, hi - lo, bound)
            else:
                lo = hi = None
