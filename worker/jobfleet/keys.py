"""Every Redis key jobfleet names: the one home of the wire format (as BullMQ's queue-keys).

A queue's keys share one prefix, ``jf:{<queue>}:``, whose hash tag puts the whole queue in one
Redis Cluster slot. Every script receives the queue's fixed keys in `SCRIPT_KEYS` order (the
``K_*`` locals of lua/lib.lua) and the prefix as ``ARGV[1]``.

Keys that carry an id or a name are built inside the scripts from that prefix (the ids of the
jobs a claim will take cannot be known in advance). Their suffixes are defined here, and the
Lua that builds them names this module:

====================================  =========================  ==================================
key (after the prefix)                built by                   holds
====================================  =========================  ==================================
``job:<id>`` (`JOB`)                  lib.lua ``job_key``        the job's HASH
``dedup:<key>`` (`DEDUP`)             enqueue.lua                the job id standing for a key
``wake:<worker-id>``                  drain.lua, `worker_wake`   one worker's own wake-up LIST
``hold:<name>`` (`HOLD`)              flow.lua, inspect.lua      jobs a limit or circuit holds
``rlw:<key>`` (`RATE_WINDOW`)         flow.lua                   one rate-limit sliding window
``cbw:<scope>`` (`CB_WINDOW`)         flow.lua                   one circuit's failure window
``gq:<group>`` (`GROUP_READY`)        lib.lua ``group_set``      a group's waiting jobs (ZSET)
``gring:<level>`` (`RING`)            lib.lua ``group_ring``     groups with work, by virtual time
``gbacklog`` (`GROUP_BACKLOG`)        lib.lua ``G_BACKLOG``      waiting jobs per group (ZSET)
``gheld`` (`GROUP_HELD`)              lib.lua ``G_HELD``         held groups by release time
``ginflight`` (`GROUP_ACTIVE`)        lib.lua ``G_INFLIGHT``     jobs in flight per group (HASH)
``glimits`` (`GROUP_LIMITS`)          lib.lua ``G_LIMITS``       per-group overrides (HASH)
``grw:<group>`` (`GROUP_RATE`)        flow.lua                   one group's rate window
====================================  =========================  ==================================

The group keys (issue #14) are fixed names but built from the prefix like the per-id keys:
they exist only once a grouped job arrives (meta ``grouped``), and a queue without groups
never sends them.

Outside `SCRIPT_KEYS`, read and written by Python only: ``cron`` (`CRON_SCHEDULES`, the
schedules a queue's Scheduler runs, published for `Client.cron_schedules`).

Outside any queue: `QUEUES`, the names of the queues ever used (``jobfleet stats``,
`Client.queues`; `Client.obliterate` takes a queue out).

Partitioned queues (docs/partitions.md): partition ``k`` of queue ``emails`` is the ordinary
queue ``emails#k`` (`partition_name`), keys ``jf:{emails#k}:...``, so each partition has a
hash tag (a Cluster slot) of its own. User queue names cannot hold ``#`` (`check_queue_name`),
so a partition never collides with a queue. The logical queue's descriptor, its number of
partitions as a decimal STRING, is ``jf:{emails}:partitions`` (`partitions_key`): read rarely,
so its own tag (the plain queue's slot) is fine. Only this module formats these names.
"""

from __future__ import annotations

from .bounds import MAX_PARTITIONS
from .errors import ConfigError
from .settings import check_queue_name

QUEUES = "jf:queues"  # SET: names of queues ever used, for `jobfleet stats` without --queue

# The keys every script receives, in KEYS order (lua/lib.lua maps them to K_READY ...).
SCRIPT_KEYS = (
    "ready",  # ZSET due jobs, score = priority band x 2^48 + sequence
    "delayed",  # ZSET run-at time of delayed jobs and retries
    "active",  # ZSET lease deadline per running job
    "dead",  # ZSET dead letters by time
    "done",  # ZSET completed jobs, for retention trimming
    "meta",  # HASH sequence, paused flag, cron cursors (`cron_field`)
    "stats",  # HASH totals
    "wake",  # LIST the doorbell idle workers BLPOP
    "tp",  # HASH 5 s throughput buckets
    "workers",  # ZSET live workers by registration expiry
    "holds",  # ZSET hold names by release time
    "cb",  # HASH circuit state per scope
    "drain",  # ZSET worker id -> expiry (ms): workers told to claim nothing (scale-in drains)
    "cancelled",  # ZSET cancelled jobs by time, trimmed like `done` (completed-style retention)
    # Never written nor read: a key that never exists, so that Redis Cluster refuses every
    # script of the queue (ASK, then TRYAGAIN) while the queue's slot is being migrated,
    # before the script starts. Otherwise a script could run at the old node, write, and
    # then fail at a per-id key already moved away, its first writes kept (see "Redis
    # Cluster" in docs/architecture.md). Last, so lib.lua's KEYS[1..14] stay as they are.
    "absent",
)

# Suffixes of the keys built per id or name (see the table above).
JOB = "job:"
DEDUP = "dedup:"
WORKER_WAKE = "wake:"
HOLD = "hold:"
RATE_WINDOW = "rlw:"
CB_WINDOW = "cbw:"
GROUP_READY = "gq:"
RING = "gring:"
GROUP_BACKLOG = "gbacklog"
GROUP_HELD = "gheld"
GROUP_ACTIVE = "ginflight"
GROUP_LIMITS = "glimits"
GROUP_RATE = "grw:"

# A queue's published cron schedules: HASH schedule name -> JSON {cron, timezone, job}.
CRON_SCHEDULES = "cron"

# Cron: a tick's job id and dedup key, and the meta field of a schedule's last tick.
CRON = "cron:"


# The descriptor of a partitioned queue (after the plain queue's prefix): K as a STRING.
PARTITIONS = "partitions"
PARTITION_MARK = "#"  # between a queue's name and a partition's number: `emails#3`


def partition_name(queue: str, index: int) -> str:
    """The name of partition `index` of the logical queue `queue` (an ordinary queue)."""
    check_queue_name(queue)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < MAX_PARTITIONS:
        raise ConfigError(f"partition: must be a whole number from 0 to {MAX_PARTITIONS - 1}")
    return f"{queue}{PARTITION_MARK}{index}"


def partition_names(queue: str, count: int) -> list[str]:
    """The names of the `count` partitions of `queue`, in order; `[queue]` when count is 1
    (an unpartitioned queue is its own single partition: same keys as ever)."""
    return [queue] if count == 1 else [partition_name(queue, i) for i in range(count)]


def logical_queue(name: str) -> str:
    """The logical queue a queue or partition name belongs to (`emails#3` -> `emails`)."""
    return name.partition(PARTITION_MARK)[0]


def check_engine_name(name: str) -> str:
    """A queue name, or a partition's (`<queue>#<index>`), as an Engine takes it."""
    if isinstance(name, str) and PARTITION_MARK in name:
        queue, _, index = name.partition(PARTITION_MARK)
        if index.isdigit() and index == str(int(index)) and int(index) < MAX_PARTITIONS:
            check_queue_name(queue)
            return name
    return check_queue_name(name)


def partitions_key(queue: str) -> str:
    """The descriptor of logical queue `queue`: how many partitions it has (absent: one)."""
    return f"jf:{{{check_queue_name(queue)}}}:{PARTITIONS}"


def queue_prefix(queue: str) -> str:
    """All keys of a queue share this prefix and its hash tag (one Redis Cluster slot)."""
    return f"jf:{{{check_engine_name(queue)}}}:"


def cron_tick(schedule: str, tick: int) -> str:
    """The job id and dedup key of one tick of `schedule` (tick in Unix seconds)."""
    return f"{CRON}{schedule}:{tick}"


def cron_field(schedule: str) -> str:
    """The field of the queue's meta hash holding the last tick enqueued for `schedule`."""
    return CRON + schedule


class QueueKeys:
    """The keys of one queue, built once: ``keys.ready``, ``keys.job(id)``, ...

    `script` is the KEYS list every script call sends, in `SCRIPT_KEYS` order; each fixed key
    is also an attribute of the same name.
    """

    __slots__ = (
        "absent",
        "active",
        "cancelled",
        "cb",
        "cron",
        "dead",
        "delayed",
        "done",
        "drain",
        "holds",
        "meta",
        "prefix",
        "queue",
        "ready",
        "script",
        "stats",
        "tp",
        "wake",
        "workers",
    )

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.prefix = queue_prefix(queue)
        self.script = [self.prefix + name for name in SCRIPT_KEYS]
        for name, key in zip(SCRIPT_KEYS, self.script, strict=True):
            setattr(self, name, key)
        self.cron = self.prefix + CRON_SCHEDULES

    def pattern(self) -> str:
        """A SCAN MATCH pattern for every key of the queue (glob characters escaped; queue
        names have none today, `check_queue_name`)."""
        return "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix) + "*"

    # Set in __init__ from SCRIPT_KEYS; declared for type checkers.
    ready: str
    delayed: str
    active: str
    dead: str
    done: str
    meta: str
    stats: str
    wake: str
    tp: str
    workers: str
    holds: str
    cb: str
    drain: str
    cancelled: str
    absent: str

    def job(self, job_id: str) -> str:
        """The HASH of job `job_id`."""
        return f"{self.prefix}{JOB}{job_id}"

    def group(self, group: str) -> str:
        """The ZSET of group `group`'s waiting jobs."""
        return f"{self.prefix}{GROUP_READY}{group}"

    def worker_wake(self, worker_id: str) -> str:
        """Worker `worker_id`'s own wake-up LIST (a stop, a timed wait's end, a drain)."""
        return f"{self.prefix}{WORKER_WAKE}{worker_id}"
