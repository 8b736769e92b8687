"""Partitioned queues: where a job goes, which partition a worker claims from, the logical view.

A partitioned queue is K ordinary queues (`keys.partition_name`: ``emails#0`` ...) plus a
descriptor holding K (`keys.partitions_key`); no script ever touches two of them
(docs/partitions.md). This module holds the decisions that make the K look like one queue:

- `place`: the partition of a job, a stable hash (CRC-32 of the UTF-8 key, modulo K: the
  same in every process and language, unlike Python's `hash`), or round robin without a key;
- `home_of` and `Tour`: the partition a worker calls home and the order it visits the others;
- `merge_stats`: one inspect reply for the logical queue from its partitions' replies;
- `check_descriptor`: a worker writes K at start and refuses another K.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence

import redis.asyncio as aioredis

from .errors import ConfigError
from .keys import partitions_key

# A worker stays on a partition that fills its claims for at most this many claims in a row,
# then moves to the next: a busy home never starves the others (docs/partitions.md).
STAY = 8
MIGRATION_DOC = "docs/partitions.md, 'Changing the number of partitions'"


def place(key: str, count: int) -> int:
    """The partition of a job placed by `key`: CRC-32 (zlib) of its UTF-8 bytes, modulo K."""
    return zlib.crc32(key.encode("utf-8")) % count


def home_of(worker_id: str, count: int) -> int:
    """A worker's home partition: a hash of its id, so a fleet spreads over the partitions."""
    return place(worker_id, count)


class Tour:
    """Which partition a worker claims from next (pure: fed the outcome of each claim).

    Targets are the K partitions and, last, the plain queue (jobs a producer wrote before any
    worker recorded K land there). A worker starts at home; a claim that comes back short moves
    it to the next target in turn, and so does the `STAY`-th full claim in a row. When
    `count` claims in a row found nothing, the tour is `dry`: the worker waits for work at home.
    """

    __slots__ = ("_dry", "_streak", "at", "count", "home", "stay")

    def __init__(self, count: int, home: int, stay: int = STAY) -> None:
        self.count = count
        self.home = home
        self.stay = stay
        self.at = home
        self._streak = 0  # full claims in a row at `at`
        self._dry = 0  # claims in a row that found nothing

    def claimed(self, got: int, wanted: int) -> None:
        """A claim at `at` for `wanted` jobs took `got`."""
        if wanted <= 0:
            return
        if got >= wanted:
            self._dry = 0
            self._streak += 1
            if self._streak >= self.stay:
                self._move()
            return
        self._dry = self._dry + 1 if got == 0 else 0
        self._move()

    @property
    def dry(self) -> bool:
        """Every target was visited and found empty: time to wait for work."""
        return self._dry >= self.count

    def rest(self) -> None:
        """The worker waits for work at home; its next tour starts there."""
        self.at, self._streak, self._dry = self.home, 0, 0

    def _move(self) -> None:
        self.at = (self.at + 1) % self.count
        self._streak = 0


# How the inspect fields of partitions combine into the logical queue's (the rest are summed).
_MAX_FIELDS = frozenset({"time_ms", "window_ms", "workers"})
_CB_ORDER = {"closed": 0, "half": 1, "open": 2}


def merge_stats(
    replies: Sequence[Mapping[str, str | int]], top_groups: int
) -> Mapping[str, str | int]:
    """One inspect reply for the logical queue from its partitions' replies.

    Counts, totals and window rates are summed; the oldest wait per priority is the largest;
    the queue is paused only when every partition is; `workers` is the most any partition has
    registered (a worker registers where it claims; `Client.workers` has the exact set); a
    circuit is in the worst state any partition reports; top groups are summed, then cut.
    Values come as text or integers (`Engine.inspect_many` leaves counts as Redis sent them).
    """
    if len(replies) == 1:
        return replies[0]
    out: dict[str, int] = {}
    texts: dict[str, str] = {}
    groups: dict[str, int] = {}
    for raw in replies:
        for key, value in raw.items():
            if key == "paused":
                texts[key] = "1" if str(value) == "1" and texts.get(key, "1") == "1" else "0"
            elif key.startswith("cb:"):
                _merge_circuit(texts, key, str(value))
            elif key.startswith("group:"):
                groups[key] = groups.get(key, 0) + int(value)
            elif key in _MAX_FIELDS or key.startswith("oldest_ms:"):
                out[key] = max(out.get(key, 0), int(value))
            else:
                out[key] = out.get(key, 0) + int(value)
    merged = {k: str(v) for k, v in out.items()}
    merged.update(texts)
    top = sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))[:top_groups]
    merged.update({k: str(v) for k, v in top})
    return merged


def _merge_circuit(texts: dict[str, str], key: str, value: str) -> None:
    attr = key.rpartition(":")[2]
    old = texts.get(key)
    if old is None:
        texts[key] = value
    elif attr == "state":
        texts[key] = max(old, value, key=lambda s: _CB_ORDER.get(s, 0))
    elif attr == "trips":
        texts[key] = str(int(old or 0) + int(value or 0))
    else:  # until: the latest
        texts[key] = str(max(int(old or 0), int(value or 0)))


def spread(indexes: Iterable[int]) -> dict[int, list[int]]:
    """Positions grouped by partition index, in order (how a batch splits over partitions)."""
    out: dict[int, list[int]] = {}
    for pos, index in enumerate(indexes):
        out.setdefault(index, []).append(pos)
    return out


async def check_descriptor(conn: aioredis.Redis, queue: str, count: int) -> bool:
    """Record that `queue` has `count` partitions, or refuse if Redis says another number;
    True when this call recorded it (the first worker of the partitioned queue).

    A worker of a partitioned queue writes the descriptor if there is none (SET NX); a worker
    of an unpartitioned queue only reads it (its keys are the same as ever). Raises ConfigError
    naming the migration doc when the numbers differ.
    """
    key = partitions_key(queue)
    if count > 1 and await conn.set(key, count, nx=True):
        return True
    raw = await conn.get(key)
    recorded = 1 if raw is None else int(raw)
    if recorded != count:
        raise ConfigError(
            f"queue {queue!r} has {recorded} partition{'s' if recorded != 1 else ''} in Redis, "
            f"this worker is configured for {count}: the number of partitions of a queue "
            f"cannot change in place; see {MIGRATION_DOC}"
        )
    return False
